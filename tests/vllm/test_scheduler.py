"""JustitiaScheduler inside vLLM 0.32.0's real scheduler, GPU-free (vLLM's own test style, DESIGN §3).

The KV manager, block pool, queues and preemption are vLLM's; only the model runner is faked (one token
per scheduled request per step). Each ordering test also runs under ``fcfs`` to show it can fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("vllm")

from justitia.vllm.testing import config_dir, create_justitia_scheduler, create_scheduler, make_request, step  # noqa: E402
from vllm.v1.request import RequestStatus  # noqa: E402

from justitia.core.cost import call_cost  # noqa: E402
from justitia.vllm.scheduler import JustitiaScheduler, PolicyRequestQueue  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return config_dir(tmp_path_factory.mktemp("cfg"))


def build(model_dir: Path, monkeypatch: pytest.MonkeyPatch, policy: str = "justitia", idle: float = 100.0,
          **kw: object) -> JustitiaScheduler:
    return create_justitia_scheduler(model_dir, monkeypatch, policy, idle, **kw)  # type: ignore[no-any-return]


def run_until_idle(s: JustitiaScheduler, max_steps: int = 500) -> list[str]:
    """Step until no request is left; return request ids in completion order."""
    done: list[str] = []
    for _ in range(max_steps):
        if not s.has_requests():
            break
        out, _ = step(s)
        done += sorted(out.finished_req_ids)
    # the last step's finished ids are reported by the next schedule()
    done += sorted(s.schedule().finished_req_ids)
    return done


def finish_order(model_dir: Path, monkeypatch: pytest.MonkeyPatch, policy: str) -> list[str]:
    s = build(model_dir, monkeypatch, policy, max_num_seqs=2)
    for i in range(6):  # the big application arrives first ...
        s.add_request(make_request(f"big{i}", prompt_len=32, max_tokens=12, app_id="big", app_cost_hint=1e6))
    step(s)  # ... and starts running
    for i in range(2):  # a small one arrives after it
        s.add_request(make_request(f"small{i}", prompt_len=16, max_tokens=4, app_id="small", app_cost_hint=100))
    return run_until_idle(s)


@pytest.mark.parametrize("policy", ["justitia", "fcfs"])
def test_small_app_after_big_one(model_dir: Path, monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
    order = finish_order(model_dir, monkeypatch, policy)
    assert sorted(order) == sorted([f"big{i}" for i in range(6)] + ["small0", "small1"])
    last_small = max(order.index("small0"), order.index("small1"))
    if policy == "justitia":
        # only the two big requests already running finish before the small application
        assert last_small == 3, order
    else:
        assert last_small == 7, order


@pytest.mark.parametrize("policy,victim", [("justitia", "b0"), ("fcfs", "a0")])
def test_preemption_victim_is_largest_key(model_dir: Path, monkeypatch: pytest.MonkeyPatch, policy: str,
                                          victim: str) -> None:
    # 4 usable blocks of 16 tokens; two 24-token prompts fit (2 blocks each) until both need a 3rd block
    s = build(model_dir, monkeypatch, policy, num_blocks=5, block_size=16)
    assert s.capacity_tokens == 4 * 16
    assert s.justitia_policy.capacity_tokens == 64
    s.add_request(make_request("b0", prompt_len=24, max_tokens=20, app_id="B", app_cost_hint=1e6))
    s.add_request(make_request("a0", prompt_len=24, max_tokens=20, app_id="A", app_cost_hint=10))
    preempted: list[str] = []
    for _ in range(15):
        out, n = step(s)
        preempted += sorted(out.preempted_req_ids)
        if preempted:
            break
    assert preempted == [victim]
    assert s.requests[victim].status == RequestStatus.PREEMPTED
    other = "a0" if victim == "b0" else "b0"
    assert s.requests[other].status == RequestStatus.RUNNING
    run_until_idle(s)
    assert s.justitia_stats()["tracked_requests"] == 0


def test_abort_cleans_state_after_idle_window(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build(model_dir, monkeypatch, idle=100.0)
    for i in range(3):
        s.add_request(make_request(f"x{i}", app_id="X", max_tokens=50))
    step(s)
    s.finish_requests(["x0", "x1"], RequestStatus.FINISHED_ABORTED)
    st = s.justitia_stats()
    assert st["tracked_requests"] == 1 and st["active_apps"] == 1 and st["idle_apps"] == 0
    s.finish_requests("x2", RequestStatus.FINISHED_ABORTED)
    st = s.justitia_stats()
    assert st["tracked_requests"] == 0 and st["idle_apps"] == 1 and st["policy_apps"] == 1
    s.schedule()  # within the idle window: the application is still alive
    assert s.justitia_stats()["active_apps"] == 1
    s.app_idle_s = 0.0
    s.schedule()
    st = s.justitia_stats()
    assert st == {**st, "active_apps": 0, "idle_apps": 0, "policy_apps": 0, "policy_state_entries": 0,
                  "apps_finished": 1}


def test_new_request_within_idle_window_keeps_app(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build(model_dir, monkeypatch, idle=100.0)
    s.add_request(make_request("s1", app_id="S", max_tokens=2))
    run_until_idle(s)
    f1 = s.justitia_policy.apps["S"].finish
    assert s.justitia_stats()["idle_apps"] == 1
    s.add_request(make_request("s2", app_id="S", max_tokens=2))  # second stage of the same application
    assert s.justitia_stats()["idle_apps"] == 0 and s.apps_seen == 1
    assert s.justitia_policy.apps["S"].finish == f1


def test_app_done_ends_app_when_its_last_request_finishes(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build(model_dir, monkeypatch, idle=1e9)
    s.add_request(make_request("d0", app_id="D", max_tokens=20))
    s.add_request(make_request("d1", app_id="D", max_tokens=3, app_done=1))  # vLLM turns JSON true into 1
    for _ in range(8):  # d1 (app_done) finishes first; d0 still runs: the app must stay
        step(s)
    assert s.requests["d0"].status == RequestStatus.RUNNING
    assert s.justitia_stats()["active_apps"] == 1
    run_until_idle(s)
    st = s.justitia_stats()
    assert st["active_apps"] == 0 and st["policy_apps"] == 0 and st["apps_finished"] == 1


def test_request_without_app_id_is_its_own_app(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build(model_dir, monkeypatch, idle=1e9)
    s.add_request(make_request("lone1", max_tokens=3))
    s.add_request(make_request("lone2", max_tokens=3))
    assert set(s.justitia_policy.apps) == {"lone1", "lone2"}
    run_until_idle(s)
    st = s.justitia_stats()
    assert st["apps_seen"] == 2 and st["apps_finished"] == 2 and st["policy_state_entries"] == 0


def test_no_state_leak_over_many_apps(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build(model_dir, monkeypatch, idle=1e9, max_num_seqs=8)
    for a in range(40):
        for i in range(3):
            s.add_request(make_request(f"m{a}-{i}", max_tokens=2 + i, app_id=f"m{a}", app_done=(i == 2)))
    s.finish_requests(["m5-0", "m7-1"], RequestStatus.FINISHED_ABORTED)
    run_until_idle(s)
    st = s.justitia_stats()
    assert st["apps_seen"] == 40 and st["apps_finished"] == 40
    assert st["tracked_requests"] == 0 and st["active_apps"] == 0 and st["policy_state_entries"] == 0
    assert len(s.waiting) == 0 and not s.running


def test_service_accounting_matches_cost_eq1(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build(model_dir, monkeypatch, idle=1e9)
    exact = call_cost(20, 9) + call_cost(33, 5)
    s.add_request(make_request("c0", prompt_len=20, max_tokens=9, app_id="C", app_cost_hint=exact))
    s.add_request(make_request("c1", prompt_len=33, max_tokens=5, app_id="C"))
    run_until_idle(s)
    pol = s.justitia_policy
    assert pol.apps["C"].served == exact
    assert pol.refinements == 0  # an exact hint is never exceeded
    assert s.iteration_s != 0.05 and pol.iteration_s == pytest.approx(s._sent_iteration_s)


def test_invalid_xargs_are_ignored_not_fatal(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build(model_dir, monkeypatch, idle=1e9)
    s.add_request(make_request("v0", app_id="V", weight=-3, app_cost_hint="lots", app_done="yes"))
    s.add_request(make_request("v1", app_id=""))  # blank id: its own application
    info = s.justitia_policy.apps["V"].info
    assert info.weight == 1.0 and info.cost_hint is None
    assert "v1" in s.justitia_policy.apps
    run_until_idle(s)
    assert s.justitia_stats()["tracked_requests"] == 0


@pytest.mark.parametrize("name", ["fcfs", "vtc", "sjf", "app_fcfs", "plas", "atlas", "justitia"])
def test_every_policy_runs_in_the_engine(model_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    s = build(model_dir, monkeypatch, name, idle=0.0, max_num_seqs=3, num_blocks=12)
    assert s.justitia_policy.name == name
    for a in range(4):
        for i in range(3):
            s.add_request(make_request(f"{a}.{i}", prompt_len=20, max_tokens=12, app_id=f"p{a}"))
    done = run_until_idle(s)
    assert len(done) == 12
    s.schedule()
    st = s.justitia_stats()
    assert st["active_apps"] == 0 and st["policy_state_entries"] == 0, st
    assert s.justitia_policy.fallbacks == 0


def test_bad_policy_name_is_a_clear_error(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="JUSTITIA_POLICY='nope'"):
        build(model_dir, monkeypatch, "nope")
    monkeypatch.setenv("JUSTITIA_APP_IDLE_S", "soon")
    monkeypatch.setenv("JUSTITIA_POLICY", "fcfs")
    with pytest.raises(ValueError, match="JUSTITIA_APP_IDLE_S"):
        create_scheduler(model_dir, JustitiaScheduler)


def test_queue_resorts_when_policy_version_changes(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = build(model_dir, monkeypatch, "vtc")
    q = s.waiting
    assert isinstance(q, PolicyRequestQueue)
    s.add_request(make_request("p0", app_id="P"))
    s.add_request(make_request("q0", app_id="Q"))
    s.add_request(make_request("p1", app_id="P"))
    assert [r.request_id for r in q] == ["p0", "q0", "p1"]
    pol = s.justitia_policy
    pol.served(s._reqs["p0"], 16, 1, 17.0, 0.1)  # P has now been served: Q goes first
    assert [r.request_id for r in q] == ["q0", "p0", "p1"]
    assert q.pop_request().request_id == "q0" and len(q) == 2
    q.remove_request(s.requests["p1"])
    assert [r.request_id for r in q] == ["p0"]


def test_trace_file_records_app_ids(model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import json

    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("JUSTITIA_POLICY", "justitia")
    monkeypatch.setenv("JUSTITIA_APP_IDLE_S", "0")
    monkeypatch.setenv("JUSTITIA_TRACE_FILE", str(trace))
    s = create_scheduler(model_dir, JustitiaScheduler)
    s.add_request(make_request("t0", app_id="T", max_tokens=2, app_done=True))
    run_until_idle(s)
    s.shutdown()
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds == ["start", "app_arrived", "request_arrived", "request_finished", "app_finished", "shutdown"]
    assert events[1]["app_id"] == "T" and events[3]["status"] == "FINISHED_LENGTH_CAPPED"
    assert events[-1]["stats"]["active_apps"] == 0


def test_predictor_features_come_from_xargs(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """first_stage_calls / hint_stages / hint_calls reach AppInfo.features under the predictor's keys."""
    from justitia.predict.features import FEATURE_NAMES, feature_vector

    s = build(model_dir, monkeypatch, idle=1e9)
    s.add_request(make_request("f0", prompt_len=40, app_id="F", app_type="mapreduce",
                               first_stage_calls=8, hint_stages=3, hint_calls=10))
    s.add_request(make_request("g0", prompt_len=24, app_id="G"))  # none given: defaults
    s.add_request(make_request("h0", app_id="H", first_stage_calls=-1, hint_stages=2.5, hint_calls=True))
    apps = {a: st.info for a, st in s.justitia_policy.apps.items()}
    f = apps["F"].features
    assert f["first_stage_calls"] == 8 and f["hint_stages"] == 3 and f["hint_calls"] == 10
    assert f["prompt_tokens_total"] == 8 * 40 and f["prompt_tokens_max"] == 40
    assert "first_calls" not in f
    g = apps["G"].features
    assert g["first_stage_calls"] == 1 and g["prompt_tokens_total"] == 24
    assert "hint_stages" not in g and "hint_calls" not in g
    h = apps["H"].features  # invalid values are dropped (with a warning), the defaults stay
    assert h["first_stage_calls"] == 1 and "hint_stages" not in h and "hint_calls" not in h
    names = list(FEATURE_NAMES)
    v = feature_vector(apps["F"])
    assert v[names.index("has_hint_stages")] == 1.0 and v[names.index("has_hint_calls")] == 1.0
    assert feature_vector(apps["G"])[names.index("has_hint_calls")] == 0.0
    run_until_idle(s)
    assert s.justitia_stats()["tracked_requests"] == 0


def test_trace_records_preemption_victim_and_step_profile(model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    """The trace names each victim (largest key) with the tokens it loses, and the shutdown line
    carries the step-time profile whose counts match the steps run."""
    import json

    trace = tmp_path / "trace.jsonl"
    build(model_dir, monkeypatch, "justitia")  # sets the environment
    monkeypatch.setenv("JUSTITIA_TRACE_FILE", str(trace))
    s = create_scheduler(model_dir, JustitiaScheduler, num_blocks=5, block_size=16)
    s.add_request(make_request("b0", prompt_len=24, max_tokens=20, app_id="B", app_cost_hint=1e6))
    s.add_request(make_request("a0", prompt_len=24, max_tokens=20, app_id="A", app_cost_hint=10))
    run_until_idle(s)
    s.shutdown()
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    pre = [e for e in events if e["event"] == "preempted"]
    assert pre and pre[0]["req_id"] == "b0" and pre[0]["app_id"] == "B"
    assert pre[0]["computed_tokens"] >= 24  # its prompt was computed, and is lost
    prof = events[-1]["profile"]
    assert 20 <= prof["steps"] <= s.steps  # one token per request per step: >= 20 steps for 20 tokens
    assert prof["reqs"] >= prof["steps"] and prof["tokens"] >= 2 * 24 + 2 * 20 - 2
    assert prof["random_steps"] == prof["steps"]  # make_request keeps vLLM's default temperature 1.0
    assert prof["exec_s"] >= 0 and prof["plugin_s"] >= 0
