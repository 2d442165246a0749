"""Faults inside vLLM 0.32.0's real scheduler, GPU-free (issue 6 §3; vLLM's own test style).

The scheduler, KV block pool, queues and aborts are vLLM's; only the model runner is faked
(:mod:`justitia.vllm.testing`). vLLM turns a client disconnect or a cancelled request into
``EngineCore.abort_requests`` → ``Scheduler.finish_requests(ids, FINISHED_ABORTED)``, which is what
these tests call. Checked after each fault: per-request and per-application state is released (at
once, or after the idle window), every KV block returns to the pool, and the virtual clock stays
consistent (``V`` finite and non-decreasing, ``Σ w`` equal to the weights of the applications in the
reference, the reference drains once time passes).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm")

from vllm.v1.request import RequestStatus  # noqa: E402

from justitia.core.policy import Req  # noqa: E402
from justitia.vllm.scheduler import JustitiaScheduler  # noqa: E402
from justitia.vllm.testing import config_dir, create_justitia_scheduler, make_request, step  # noqa: E402

NUM_BLOCKS = 200
ABORTED = RequestStatus.FINISHED_ABORTED


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return config_dir(tmp_path_factory.mktemp("cfg"))


def build(model_dir: Path, monkeypatch: pytest.MonkeyPatch, policy: str = "justitia", idle: float = 1e9,
          **kw: Any) -> JustitiaScheduler:
    kw.setdefault("num_blocks", NUM_BLOCKS)
    return create_justitia_scheduler(model_dir, monkeypatch, policy, idle, **kw)  # type: ignore[no-any-return]


class ClockWatch:
    """Samples the Justitia policy's fair-sharing clock and checks its invariants every time."""

    def __init__(self, s: JustitiaScheduler) -> None:
        self.s = s
        self.clock = s.justitia_policy.clock  # delegated through SafePolicy
        self.vs: list[float] = []

    def check(self) -> None:
        c = self.clock
        assert math.isfinite(c.v) and c.v >= 0
        assert not self.vs or c.v >= self.vs[-1], "virtual time went backwards"
        self.vs.append(c.v)
        w_in = sum(e.weight for e in c._apps.values() if e.active)
        assert math.isclose(c.wsum, w_in, abs_tol=1e-9), (c.wsum, w_in)
        for app_id, e in c._apps.items():
            assert math.isfinite(e.finish) and e.finish >= e.start, app_id

    def drained(self) -> bool:
        self.clock.advance(self.clock.now + 1e9)
        return len(self.clock) == 0 and self.clock.wsum == 0


def run(s: JustitiaScheduler, watch: ClockWatch | None = None, max_steps: int = 2000) -> set[str]:
    """Step until idle; return the ids of every request scheduled on the way."""
    scheduled: set[str] = set()
    for _ in range(max_steps):
        if not s.has_requests():
            break
        _, tokens = step(s)
        scheduled.update(tokens)
        if watch is not None:
            watch.check()
    s.schedule()
    return scheduled


def free_blocks(s: JustitiaScheduler) -> int:
    return s.kv_cache_manager.block_pool.get_num_free_blocks()


def all_blocks_free(s: JustitiaScheduler) -> bool:
    return free_blocks(s) == NUM_BLOCKS - 1  # the pool keeps one null block


def expire_idle(s: JustitiaScheduler, idle_s: float) -> None:
    s.app_idle_s = idle_s
    time.sleep(idle_s * 1.5)
    s.schedule()


def zero_state(s: JustitiaScheduler) -> dict[str, int]:
    st = s.justitia_stats()
    return {k: st[k] for k in ("active_apps", "idle_apps", "tracked_requests", "policy_apps", "policy_state_entries")}


# ---------------------------------------------------------------------- client disconnects mid-stream
def test_client_disconnect_mid_stream_releases_request_then_app(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build(model_dir, monkeypatch)
    watch = ClockWatch(s)
    s.add_request(make_request("a0", prompt_len=40, max_tokens=200, app_id="A", app_cost_hint=1e5))
    s.add_request(make_request("b0", prompt_len=40, max_tokens=30, app_id="B", app_cost_hint=1e5))
    for _ in range(10):  # both are streaming tokens
        step(s)
        watch.check()
    assert s.requests["a0"].status == RequestStatus.RUNNING and len(s.requests["a0"].output_token_ids) >= 9
    served_a = s.justitia_policy.apps["A"].served
    held = free_blocks(s)
    s.finish_requests(["a0"], ABORTED)  # the client went away: vLLM aborts its request
    assert free_blocks(s) > held  # a0's KV blocks are back in the pool at once
    st = s.justitia_stats()
    assert st["tracked_requests"] == 1 and st["idle_apps"] == 1 and st["active_apps"] == 2
    # The aborted app keeps the service it got; nothing more is charged to it.
    assert s.justitia_policy.apps["A"].served == served_a > 0
    assert run(s, watch) == {"b0"}  # the aborted request is never scheduled again
    expire_idle(s, 0.05)  # the idle window passes: A and B end, all their state goes
    watch.check()
    assert zero_state(s) == dict.fromkeys(zero_state(s), 0)
    assert s.justitia_stats()["apps_finished"] == 2 and all_blocks_free(s)
    assert watch.drained()


# ---------------------------------------------------------------------- an app cancelled with calls in flight
def test_app_cancelled_with_many_calls_in_flight(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build(model_dir, monkeypatch, max_num_seqs=8)
    watch = ClockWatch(s)
    for i in range(4):
        s.add_request(make_request(f"b{i}", prompt_len=24, max_tokens=20, app_id="B", app_cost_hint=2e4))
    cancel = [f"c{i}" for i in range(40)]
    for rid in cancel:
        s.add_request(make_request(rid, prompt_len=24, max_tokens=60, app_id="C", app_cost_hint=1e4))
    for _ in range(5):
        step(s)
        watch.check()
    running_c = [r.request_id for r in s.running if r.request_id.startswith("c")]
    waiting_c = [r.request_id for r in s.waiting if r.request_id.startswith("c")]
    assert running_c and waiting_c  # calls both running and waiting when the app is cancelled
    f_b = s.justitia_policy.apps["B"].finish
    s.finish_requests(cancel, ABORTED)
    s.finish_requests(cancel[:5], ABORTED)  # a second abort of the same ids is harmless
    s.finish_requests(["never-existed"], ABORTED)
    assert not any(r.request_id.startswith("c") for r in s.running)
    assert not any(r.request_id.startswith("c") for r in s.waiting)
    st = s.justitia_stats()
    assert st["tracked_requests"] == sum(1 for i in range(4) if f"b{i}" in s.requests)
    assert s.justitia_policy.apps["B"].finish == f_b  # the other app's tag is untouched
    left_b = {r for r in s.requests if r.startswith("b")}
    assert run(s, watch) == left_b  # B completes; no cancelled call is scheduled again
    assert not s.requests
    assert all_blocks_free(s)
    expire_idle(s, 0.05)
    assert zero_state(s) == dict.fromkeys(zero_state(s), 0)
    assert watch.drained()


# ---------------------------------------------------------------------- apps that never send app_done
def test_apps_without_app_done_end_after_the_idle_window(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build(model_dir, monkeypatch, max_num_seqs=16)
    watch = ClockWatch(s)
    for a in range(60):
        for i in range(2):
            s.add_request(make_request(f"n{a}-{i}", prompt_len=8, max_tokens=3, app_id=f"N{a}"))
    run(s, watch)
    st = s.justitia_stats()
    assert st["tracked_requests"] == 0 and st["idle_apps"] == 60 and st["active_apps"] == 60
    s.schedule()  # still inside the window: nothing ends early
    assert s.justitia_stats()["active_apps"] == 60
    expire_idle(s, 0.05)
    assert zero_state(s) == dict.fromkeys(zero_state(s), 0)
    assert s.justitia_stats()["apps_finished"] == 60 and all_blocks_free(s)
    assert watch.drained()


# ---------------------------------------------------------------------- a policy that raises inside the engine
def test_policy_exception_inside_the_engine_falls_back_and_recovers(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build(model_dir, monkeypatch, max_num_seqs=4)
    inner = s.justitia_policy.inner
    real_key = inner.key
    broken = {"on": True}

    def key(req: Req) -> Any:
        if broken["on"] and req.app_id == "X":
            raise ZeroDivisionError("injected")
        return real_key(req)

    monkeypatch.setattr(inner, "key", key)
    for i in range(6):
        s.add_request(make_request(f"x{i}", max_tokens=10, app_id="X", app_cost_hint=1e3))
        s.add_request(make_request(f"y{i}", max_tokens=10, app_id="Y", app_cost_hint=1e3))
    for _ in range(5):
        step(s)
    assert s.justitia_policy.fallbacks > 0
    broken["on"] = False
    n = s.justitia_policy.fallbacks
    run(s)
    assert s.justitia_policy.fallbacks == n  # healthy again: no further fallbacks
    assert not s.requests and not s.has_requests()  # all 12 requests served, none lost
    assert s.justitia_stats()["tracked_requests"] == 0 and all_blocks_free(s)


# ---------------------------------------------------------------------- the Prometheus series from the scheduler
def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels or None) or 0.0


def test_scheduler_feeds_the_prometheus_series(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from justitia.core.cost import call_cost

    s = build(model_dir, monkeypatch, num_blocks=12, max_num_seqs=8)  # 11 usable blocks of 16 tokens
    cost0 = sample("justitia_served_cost_total", app_type="mtype")
    act0 = sample("justitia_app_completion_seconds_count", app_type="mtype")
    pre0 = sample("justitia_preemptions_total")
    for i in range(3):
        s.add_request(make_request(f"m{i}", prompt_len=16, max_tokens=8, app_id="M", app_type="mtype",
                                   app_done=(i == 2)))
    for i in range(6):  # these outgrow the 11 blocks together: vLLM must preempt
        s.add_request(make_request(f"p{i}", prompt_len=30, max_tokens=40, app_id="P", app_type="ptype",
                                   app_done=(i == 5)))
    preempted: dict[str, int] = {}
    for _ in range(2000):
        if not s.has_requests():
            break
        step(s)
        for rid, r in s.requests.items():
            preempted[rid] = max(preempted.get(rid, 0), r.num_preemptions)
    assert not s.has_requests()
    n_pre = sum(preempted.values())
    assert n_pre > 0 and sample("justitia_preemptions_total") - pre0 == n_pre
    # M arrived first with small calls: it runs unpreempted, so its served cost is exactly cost eq. 1.
    assert not any(preempted.get(f"m{i}") for i in range(3))
    assert sample("justitia_served_cost_total", app_type="mtype") - cost0 == 3 * call_cost(16, 8)
    assert sample("justitia_served_cost_total", app_type="ptype") > 6 * call_cost(30, 40) * 0.99
    assert sample("justitia_app_completion_seconds_count", app_type="mtype") - act0 == 1
    assert sample("justitia_active_apps") == 0  # written when the engine went idle
    assert sample("justitia_virtual_time") == s.justitia_policy.clock.v > 0
