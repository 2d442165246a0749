"""Why three of vLLM 0.32.0's scheduler tests fail under ``JUSTITIA_POLICY=justitia`` (and not under fcfs).

Run after ``benchmarks/vllm_scheduler_suite.sh`` has fetched vLLM's tests into WORK (default
``/tmp/justitia-vllm-suite``); it imports vLLM's own test helpers from there, nothing is copied::

    PYTHONPATH=src:benchmarks:WORK HF_HUB_OFFLINE=1 JUSTITIA_POLICY=justitia \\
        .venv/bin/python benchmarks/vllm_suite_justitia_checks.py

1. ``test_fcfs_mixed_blocked_types_remote_load_drains_first`` and
2. ``test_async_load_reservation_prevents_wedge_e2e`` assert *which* request vLLM's FCFS admits first.
   Printed here: the policy keys under the plugin and what the first ``schedule()`` did. Under Justitia
   the request whose application has the earlier virtual finish time ``F`` (paper §4.3) goes first:
   the 1-token ``tail`` before the 20-token ``regular``; ``b`` (5 blocks) before ``a`` (8 blocks), whose
   load the reservation gate then holds back — the test's no-wedge property with the roles swapped.
3. ``test_reset_prefix_cache_with_inflight_output_under_kv_pressure[3]`` asserts that every request
   ends with ``num_stale_output_tokens == 0``. vLLM drains that counter only for requests still in
   ``scheduler.requests``: a request preempted (KV pressure) while the output already in flight
   finishes it keeps the undrained rest. Shown here on vLLM's *own* AsyncScheduler, no plugin: the
   victim is preempted the way ``schedule()`` does it at the first step it has >= N outputs. Under
   Justitia the victim is the running request with the largest key (in that test request 7, the
   latest arrival, at 22/24 outputs with 12 tokens in flight), under vLLM's FCFS the last admitted.
4. The four ``test_priority_scheduling_*`` tie-break tests (added in one order, ``arrival_time`` in
   another, equal priority): the bands hold, and inside a band Justitia orders by ``F``. Each request
   is its own application of equal cost, so ``F = V(a) + c`` grows with the fair-sharing virtual time
   ``V`` at which the engine received it; vLLM's ``arrival_time`` decides only exact ties of the
   policy's key (requests of one application; ``tests/vllm/test_request_queue_vllm_order.py``).
"""

from __future__ import annotations

import os
import time
from typing import Any
from unittest.mock import Mock

import vllm_suite_patch  # noqa: F401  (puts the plugin in vLLM's place when JUSTITIA_SUITE=plugin)
from tests.v1.core import test_async_scheduler as async_tests
from tests.v1.core.utils import create_requests, create_scheduler, mock_kv
from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.request import RequestStatus


def _keys(s: Any, queue: Any) -> list[tuple[str, Any]]:
    return [(r.request_id, getattr(s, "_keys", {}).get(r)) for r in queue]


def mixed_blocked_types() -> None:
    s = create_scheduler(max_num_batched_tokens=20)
    s._update_waiting_for_remote_kv = Mock()
    reqs = {rid: create_requests(num_requests=1, num_tokens=n, req_ids=[rid])[0]
            for rid, n in (("grammar", 1), ("remote", 1), ("stream", 1), ("regular", 20), ("tail", 1))}
    reqs["grammar"].status = RequestStatus.WAITING_FOR_STRUCTURED_OUTPUT_GRAMMAR
    reqs["grammar"].structured_output_request = Mock(grammar=None)
    reqs["remote"].status = RequestStatus.WAITING_FOR_REMOTE_KVS
    reqs["stream"].status = RequestStatus.WAITING_FOR_STREAMING_REQ
    for r in reqs.values():
        s.add_request(r)
    print(f"[1] {type(s).__name__}: waiting (request, key) = {_keys(s, s.waiting)}")
    out = s.schedule()
    print(f"[1] first schedule(): scheduled {dict(out.num_scheduled_tokens)}; still waiting "
          f"{[r.request_id for r in s.waiting]} (vLLM's test expects ['grammar', 'stream', 'tail'])")


def async_load_reservation() -> None:
    bs = 16
    s = create_scheduler(block_size=bs, num_blocks=10, max_num_seqs=4, max_num_batched_tokens=bs * 16,
                         use_kv_connector=mock_kv(matched_tokens=bs * 4, is_async=True))
    [a] = create_requests(num_requests=1, num_tokens=bs * 8, block_size=bs, req_ids=["a"])
    [b] = create_requests(num_requests=1, num_tokens=bs * 5, block_size=bs, req_ids=["b"])
    s.add_request(a)
    s.add_request(b)
    print(f"[2] {type(s).__name__}: waiting (request, key) = {_keys(s, s.waiting)}")
    s.schedule()
    held = s.kv_cache_manager.coordinator.single_type_managers[0].req_to_blocks
    for r in (a, b):
        print(f"[2] after step 1: {r.request_id}: {r.status.name}, holds blocks: {r.request_id in held}")


def priority_band_ties() -> None:
    from tests.v1.core.test_scheduler import create_requests_with_priority, create_scheduler_with_priority

    s = create_scheduler_with_priority()
    for r in create_requests_with_priority(num_requests=4, priorities=[1, 1, 1, 1],
                                           arrival_times=[4.0, 1.0, 3.0, 2.0]):
        s.add_request(r)
    print(f"[4] {type(s).__name__}: waiting (request, arrival_time, key) = "
          f"{[(r.request_id, r.arrival_time, getattr(s, '_keys', {}).get(r)) for r in s.waiting]}")
    print(f"[4] first schedule(): {[r.req_id for r in s.schedule().scheduled_new_reqs]} "
          "(vLLM's test_priority_scheduling_fcfs_fallback expects ['1', '3', '2', '0'])")


def stale_share_on_vllms_own_scheduler(pp: int = 3) -> None:
    for min_out in range(16, 24):
        s = async_tests._create_async_pp_scheduler(num_spec=3, pp_size=pp, num_blocks=50)
        assert type(s) is AsyncScheduler, "run this part without JUSTITIA_SUITE=plugin"
        reqs = create_requests(num_requests=2, num_tokens=8, max_tokens=24, ignore_eos=True)
        for r in reqs:
            s.add_request(r)
        victim, done = reqs[1], []

        def before_step(step: int, engine: Any, s: Any = s, victim: Any = victim, done: list = done,
                        min_out: int = min_out) -> None:
            if not done and victim in s.running and victim.num_output_tokens >= min_out:
                s.running.remove(victim)  # what schedule() does to its victim: running.pop() + _preempt_request
                s._preempt_request(victim, time.monotonic())
                done.append((victim.num_output_tokens, victim.num_stale_output_tokens))

        async_tests.PipelinedEngine(s, queue_size=pp + 1,
                                    accept_drafts=lambda step, rid, n: (step + int(rid)) % (n + 1)).run(before_step=before_step)
        print(f"[3] vLLM AsyncScheduler pp={pp}: victim preempted at (outputs, stale)={done[0] if done else None}"
              f" -> finished {victim.is_finished()}, num_stale_output_tokens left = {victim.num_stale_output_tokens}")


if __name__ == "__main__":
    if os.environ.get("JUSTITIA_SUITE") == "plugin":
        mixed_blocked_types()
        async_load_reservation()
        priority_band_ties()
    else:
        stale_share_on_vllms_own_scheduler()
