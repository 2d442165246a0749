"""The plugin as a drop-in for vLLM 0.32.0's Scheduler where vLLM's own tests probe it (issue 10 §4).

* Arrival order is vLLM's ``request.arrival_time`` (not the order ``add_request`` was called in): FCFS
  and every tie of a policy's key (all keys end with the request's arrival) follow vLLM's
  ``(priority, arrival_time, …)`` order of ``--scheduling-policy priority``.
* A scheduler built with ``object.__new__`` (vLLM's own unit tests set only vLLM's fields) runs
  ``update_from_output`` as vLLM's; a request the structured-output grammar rejects ends with
  ``FINISHED_ERROR`` and leaves no plugin state behind on a fully built scheduler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest

pytest.importorskip("vllm")

from vllm_helpers import config_dir, create_justitia_scheduler, create_scheduler, fake_output, make_request  # noqa: E402
from vllm.v1.core.sched.output import CachedRequestData, SchedulerOutput  # noqa: E402
from vllm.v1.outputs import ModelRunnerOutput  # noqa: E402
from vllm.v1.request import Request, RequestStatus  # noqa: E402

from justitia.vllm.scheduler import JustitiaScheduler  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return config_dir(tmp_path_factory.mktemp("cfg"))


def arriving(rid: str, arrival_time: float, priority: int = 0, **xargs: Any) -> Request:
    r = make_request(rid, max_tokens=2, priority=priority, **xargs)
    r.arrival_time = arrival_time
    return r


def scheduled_ids(s: JustitiaScheduler) -> list[str]:
    out = s.schedule()
    return [r.req_id for r in out.scheduled_new_reqs]


# ---------------------------------------------------------------------- arrival order = vLLM's arrival_time
@pytest.mark.parametrize("scheduling_policy", ["fcfs", "priority"])
def test_fcfs_orders_by_vllm_arrival_time_not_add_order(model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                        scheduling_policy: str) -> None:
    """vLLM's test_priority_scheduling_fcfs_fallback: added as 0, 1, 2, 3 with arrival times 4, 1, 3, 2."""
    create_justitia_scheduler(model_dir, monkeypatch, "fcfs")  # sets the environment
    s = create_scheduler(model_dir, JustitiaScheduler, scheduling_policy=scheduling_policy)
    for rid, t in zip("0123", (4.0, 1.0, 3.0, 2.0), strict=True):
        s.add_request(arriving(rid, t, priority=1))
    assert [r.request_id for r in s.waiting] == ["1", "3", "2", "0"]
    assert s.waiting[0].request_id == "1" and s.waiting[-1].request_id == "0"
    assert scheduled_ids(s) == ["1", "3", "2", "0"]


def test_priority_band_then_arrival_time(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM's test_priority_scheduling_mixed_priority_and_arrival: (priority, arrival_time) order."""
    create_justitia_scheduler(model_dir, monkeypatch, "fcfs")
    s = create_scheduler(model_dir, JustitiaScheduler, scheduling_policy="priority")
    for rid, prio, t in zip("0123", (2, 1, 1, 0), (1.0, 3.0, 2.0, 4.0), strict=True):
        s.add_request(arriving(rid, t, priority=prio))
    assert scheduled_ids(s) == ["3", "2", "1", "0"]


def test_one_at_a_time_leaves_the_rest_in_arrival_order(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM's test_priority_scheduling_equal_priority_preemption: one seat, equal priorities."""
    create_justitia_scheduler(model_dir, monkeypatch, "fcfs")
    s = create_scheduler(model_dir, JustitiaScheduler, scheduling_policy="priority", max_num_seqs=1)
    for rid, t in zip("012", (3.0, 1.0, 2.0), strict=True):
        s.add_request(arriving(rid, t, priority=2))
    assert scheduled_ids(s) == ["1"]
    assert [(r.request_id, r.arrival_time) for r in s.waiting] == [("2", 2.0), ("0", 3.0)]


@pytest.mark.parametrize("policy", ["justitia", "vtc"])
def test_policy_key_ties_follow_arrival_time(model_dir: Path, monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
    """Requests of one application tie on the policy's own order (same virtual finish / counter);
    the tie goes to the earlier vLLM arrival, whatever order they were added in."""
    s = create_justitia_scheduler(model_dir, monkeypatch, policy, max_num_seqs=1)
    for rid, t in (("late", 5.0), ("early", 1.0), ("mid", 3.0)):
        s.add_request(arriving(rid, t, app_id="A", app_cost_hint=100))
    assert [r.request_id for r in s.waiting] == ["early", "mid", "late"]
    assert scheduled_ids(s) == ["early"]


def test_real_wall_clock_arrivals_keep_add_order(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests built one after another (vLLM stamps ``time.time()``) keep their order, and the
    plugin's arrival instant is vLLM's, on the plugin clock (not later than the add)."""
    s = create_justitia_scheduler(model_dir, monkeypatch, "fcfs")
    reqs = [make_request(f"r{i}") for i in range(5)]
    for r in reversed(reqs[2:]):
        s.add_request(r)  # r4, r3, r2 added first ...
    for r in reqs[:2]:
        s.add_request(r)
    assert [r.request_id for r in s.waiting] == [f"r{i}" for i in range(5)]  # ... yet served by arrival
    now = s._now()
    for r in reqs:
        arrival = s.tracker.reqs[r.request_id].arrival_s
        assert now - 60.0 < arrival <= now


# ---------------------------------------------------------------------- structured output: grammar rejects a token
def _fsm_output(rid: str) -> tuple[SchedulerOutput, ModelRunnerOutput]:
    out = SchedulerOutput(scheduled_new_reqs=[], scheduled_cached_reqs=CachedRequestData.make_empty(),
                          num_scheduled_tokens={rid: 1}, total_num_scheduled_tokens=1, scheduled_encoder_inputs={},
                          scheduled_spec_decode_tokens={}, finished_req_ids=set(), free_encoder_mm_hashes=[])
    mro = ModelRunnerOutput(req_ids=[rid], req_id_to_index={rid: 0}, sampled_token_ids=[[123]])
    return out, mro


def test_scheduler_built_without_init_updates_as_vllm() -> None:
    """vLLM's test_abort_request_when_structured_output_fsm_cannot_advance builds the scheduler with
    ``object.__new__`` and sets only vLLM's fields: the plugin's hook must not need its own."""
    s = object.__new__(JustitiaScheduler)
    req = make_request("0", prompt_len=2, max_tokens=4)
    req.structured_output_request = Mock()
    req.status = RequestStatus.RUNNING
    req.num_computed_tokens = req.num_tokens
    for name in ("perf_metrics", "connector", "ec_connector", "finished_req_ids_dict", "aux_output_connector"):
        setattr(s, name, None)
    s.structured_output_manager = Mock()
    s.structured_output_manager.accept_tokens.return_value = False
    s.requests = {"0": req}
    s.running = [req]
    s.waiting = Mock()
    s.kv_cache_manager = Mock()
    s.kv_cache_manager.take_events.return_value = None
    s.kv_cache_manager.estimate_cached_tokens.return_value = 0
    s.kv_event_publisher = Mock()
    s.finished_req_ids = set()
    s.grammar_compile_error_reqs = set()
    s.encoder_cache_mismatch_reqs = set()
    s.vllm_config = Mock()
    s.return_sampling_mask = s.recompute_kv_load_failures = s.defer_block_free = False
    s.make_stats = Mock(return_value=None)
    s.max_model_len = 128

    def free(r: Request, delay_free_blocks: bool = False) -> tuple[None, None]:
        s.finished_req_ids.add(r.request_id)
        s.requests.pop(r.request_id, None)
        return None, None

    s._free_request = Mock(side_effect=free)  # type: ignore[method-assign]
    outputs = s.update_from_output(*_fsm_output("0"))
    assert req.status == RequestStatus.FINISHED_ERROR and not s.running and "0" not in s.requests
    assert outputs[0].outputs[0].new_token_ids == [123]


@pytest.mark.parametrize("policy", ["justitia", "fcfs"])
def test_grammar_rejection_ends_the_request_and_its_app(model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                        policy: str) -> None:
    """On a fully built scheduler: the rejected request ends FINISHED_ERROR, the other one runs on,
    and the plugin forgets the rejected one (its own application ends, no entry is left)."""
    s = create_justitia_scheduler(model_dir, monkeypatch, policy)
    bad, good = make_request("bad", max_tokens=6), make_request("good", max_tokens=6)
    s.add_request(bad)
    s.add_request(good)
    out = s.schedule()
    s.update_from_output(out, fake_output(out))
    assert s.tracker.stats()["tracked_requests"] == 2
    real_accept = s.structured_output_manager.accept_tokens
    s.structured_output_manager.accept_tokens = lambda r, toks: r is not bad and real_accept(r, toks)
    out = s.schedule()
    s.update_from_output(out, fake_output(out))
    assert bad.status == RequestStatus.FINISHED_ERROR and good.status == RequestStatus.RUNNING
    assert s.running == [good] and "bad" not in s.requests
    st = s.justitia_stats()
    assert st["tracked_requests"] == 1 and st["apps_finished"] == 1 and st["active_apps"] == 1
    assert s.justitia_policy.fallbacks == 0
    for _ in range(10):
        if not s.has_requests():
            break
        out = s.schedule()
        s.update_from_output(out, fake_output(out))
    s.schedule()
    st = s.justitia_stats()
    assert st["tracked_requests"] == 0 and st["plugin_request_entries"] == 0 and st["apps_finished"] == 2
