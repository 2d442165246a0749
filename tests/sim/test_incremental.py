"""The simulator's incremental API: add_app / run_until / finish, the listener, next_event_s / idle."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any

import pytest
from sim_helpers import random_apps, small_config

from justitia.apps.arrivals import scale_to_load
from justitia.apps.model import AppSpec, Call, Stage
from justitia.apps.workloads import make_workload
from justitia.sim.config import EngineConfig, nominal_iteration_s, preset
from justitia.sim.engine import Simulator, make_simulation_policy


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int, int, int, float]] = []
        self.apps: list[tuple[str, float]] = []

    def call_finished(self, app_id: str, stage: int, call_index: int, prompt_tokens: int, output_tokens: int,
                      now: float) -> None:
        self.calls.append((app_id, stage, call_index, prompt_tokens, output_tokens, now))

    def app_finished(self, app_id: str, now: float) -> None:
        self.apps.append((app_id, now))


def _fields(res: Any) -> dict[str, Any]:
    d = dataclasses.asdict(res)
    del d["wall_s"]
    return d


def _incremental(apps: list[AppSpec], name: str, cfg: EngineConfig, listener: Any = None) -> Simulator:
    sim = Simulator([], make_simulation_policy(name, cfg), cfg, trace=True, listener=listener)
    for a in sorted(apps, key=lambda a: a.arrival_s):
        sim.run_until(a.arrival_s)
        assert sim.now >= a.arrival_s  # stopped at the first boundary at or after the arrival
        sim.add_app(a)
        assert not sim.idle
    sim.run_until(math.inf)
    return sim


def _sliced(apps: list[AppSpec], name: str, cfg: EngineConfig, dt: float = 0.137) -> Simulator:
    """All apps given up front, time advanced in slices of ``dt`` that fall on no event."""
    sim = Simulator(apps, make_simulation_policy(name, cfg), cfg)
    t = 0.0
    while not sim.idle:
        t += dt
        sim.run_until(t)
        assert sim.time_s == t and (sim.now >= t or sim.idle)
    return sim


def _paper_mix(cfg: EngineConfig, n: int = 120, load: float = 2.0) -> list[AppSpec]:
    return scale_to_load(make_workload("paper-mix", n, 5), load, cfg.kv_capacity / nominal_iteration_s(cfg))


@pytest.mark.parametrize("name", ["fcfs", "justitia", "vtc"])
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("pfa", [False, True])
def test_incremental_equals_whole_run(name: str, seed: int, pfa: bool) -> None:
    cfg = small_config(capacity=2048, preempt_for_admission=pfa)
    apps = random_apps(seed)
    whole = Simulator(apps, make_simulation_policy(name, cfg), cfg, trace=True)
    expected = whole.run()
    sim = _incremental(apps, name, cfg)
    got = sim.finish()
    assert _fields(got) == _fields(expected)
    assert sim.requests == whole.requests and sim.preemption_log == whole.preemption_log
    assert expected.preemptions > 0 and expected.extra["decode_advances"] > 0  # the cases that could differ


@pytest.mark.parametrize("name", ["fcfs", "justitia"])
def test_incremental_equals_whole_run_on_a_preset(name: str) -> None:
    cfg = preset("h100-llama2-7b")
    apps = _paper_mix(cfg)
    expected = Simulator(apps, make_simulation_policy(name, cfg), cfg).run()
    assert _fields(_incremental(apps, name, cfg).finish()) == _fields(expected)


def test_listener_sees_every_call_and_app_once() -> None:
    cfg = small_config(capacity=2048)
    apps = random_apps(3)
    rec = Recorder()
    sim = _incremental(apps, "justitia", cfg, listener=rec)
    res = sim.finish()
    keys = Counter((c[0], c[1], c[2]) for c in rec.calls)
    expected = {(a.app_id, si, j) for a in apps for si, s in enumerate(a.stages) for j in range(len(s.calls))}
    assert set(keys) == expected and all(v == 1 for v in keys.values())
    spec = {(a.app_id, si, j): (c.prompt_tokens, c.output_tokens)
            for a in apps for si, s in enumerate(a.stages) for j, c in enumerate(s.calls)}
    finish = {r["req_id"]: r["finish_s"] for r in sim.requests}
    for app_id, si, j, p, o, now in rec.calls:
        assert (p, o) == spec[(app_id, si, j)]
        assert now == finish[f"{app_id}/{si}.{j}"]
    assert [t for *_, t in rec.calls] == sorted(t for *_, t in rec.calls)  # in completion order
    done = dict(rec.apps)
    assert len(rec.apps) == len(done) == len(apps)
    assert {r.app_id: r.completion_s for r in res.apps} == done
    # an app finishes with its last call
    last_call = {}
    for app_id, *_, now in rec.calls:
        last_call[app_id] = now
    assert last_call == done


def test_listener_methods_are_optional() -> None:
    cfg = small_config(capacity=2048)

    class OnlyApps:
        def __init__(self) -> None:
            self.n = 0

        def app_finished(self, app_id: str, now: float) -> None:
            self.n += 1

    obs = OnlyApps()
    apps = random_apps(1, n=5)
    Simulator(apps, make_simulation_policy("fcfs", cfg), cfg, listener=obs).run()
    assert obs.n == 5


def test_slicing_time_does_not_change_a_single_step_run() -> None:
    """Without decode advances, run_until at arbitrary times (not events) changes nothing."""
    cfg = small_config(capacity=2048, macro_steps=False)
    apps = random_apps(2)
    expected = Simulator(apps, make_simulation_policy("justitia", cfg), cfg).run()
    assert _fields(_sliced(apps, "justitia", cfg).finish()) == _fields(expected)


def test_slicing_time_with_decode_advances_changes_only_rounding() -> None:
    cfg = small_config(capacity=2048)
    apps = random_apps(2)
    expected = Simulator(apps, make_simulation_policy("fcfs", cfg), cfg).run()
    got = _sliced(apps, "fcfs", cfg).finish()
    assert [a.app_id for a in got.apps] == [a.app_id for a in expected.apps]
    for a, b in zip(got.apps, expected.apps):
        assert a.completion_s == pytest.approx(b.completion_s, rel=1e-9)
    assert got.iterations == expected.iterations


def test_next_event_idle_and_clock() -> None:
    cfg = small_config(capacity=2048)
    sim = Simulator([], make_simulation_policy("fcfs", cfg), cfg)
    assert sim.idle and sim.next_event_s == math.inf and sim.time_s == 0.0
    sim.run_until(2.0)  # an idle engine's clock moves to the target
    assert sim.now == 2.0 and sim.time_s == 2.0
    app = AppSpec("a", 5.0, "chat", (Stage((Call(100, 50),)), Stage((Call(20, 10),), delay_s=1.0)))
    sim.add_app(app)
    assert not sim.idle and sim.next_event_s == 5.0
    sim.run_until(5.0)  # the arrival is due but nothing has run yet
    assert sim.now == 5.0 and sim.finished == 0
    sim.run_until(5.0 + 1e-9)
    assert sim.next_event_s == sim.now > 5.0  # first call running
    rec_calls = sim.finished
    while sim.finished == rec_calls:
        sim.run_until(sim.now + 1e-6)
    # the first stage is done; the second is released after its 1 s delay
    assert sim.next_event_s == pytest.approx(sim.last_finish_s + 1.0) and not sim.idle
    sim.run_until(math.inf)
    assert sim.idle and sim.next_event_s == math.inf
    res = sim.finish()
    assert [r.app_id for r in res.apps] == ["a"] and res.makespan_s == res.apps[0].completion_s


def test_bad_incremental_use_is_a_clear_error() -> None:
    cfg = small_config(capacity=2048)
    sim = Simulator([], make_simulation_policy("fcfs", cfg), cfg)
    sim.run_until(3.0)
    with pytest.raises(ValueError, match="'late' arrives at 1.0 s, before the engine's current time 3.0 s"):
        sim.add_app(AppSpec("late", 1.0, "chat", (Stage((Call(10, 10),)),)))
    with pytest.raises(ValueError, match="NaN"):
        sim.run_until(math.nan)
    sim.add_app(AppSpec("x", 3.0, "chat", (Stage((Call(10, 500),)),)))
    with pytest.raises(ValueError, match="duplicate app_id 'x'"):
        sim.add_app(AppSpec("x", 4.0, "chat", (Stage((Call(10, 10),)),)))
    sim.run_until(3.01)
    with pytest.raises(RuntimeError, match="0 of 1 requests finished"):
        sim.finish()
    with pytest.raises(ValueError, match="no applications"):
        Simulator([], make_simulation_policy("fcfs", cfg), cfg).run()


def test_listener_may_add_apps_as_calls_finish() -> None:
    """A driver that releases a follow-up application when a call finishes (as a cluster tier routing
    work would) sees it served, arriving at the completion time."""
    cfg = small_config(capacity=2048)

    class FollowUp:
        def __init__(self) -> None:
            self.sim: Simulator | None = None
            self.added: dict[str, float] = {}

        def call_finished(self, app_id: str, stage: int, call_index: int, prompt_tokens: int,
                          output_tokens: int, now: float) -> None:
            if not app_id.startswith("next-"):
                self.added[f"next-{app_id}"] = now
                assert self.sim is not None
                self.sim.add_app(AppSpec(f"next-{app_id}", now, "chat", (Stage((Call(prompt_tokens, 5),)),)))

    obs = FollowUp()
    sim = obs.sim = Simulator([], make_simulation_policy("justitia", cfg), cfg, listener=obs)
    apps = random_apps(4, n=8, max_stages=1, max_calls=1)
    for a in apps:
        sim.run_until(a.arrival_s)
        sim.add_app(a)
    sim.run_until(math.inf)
    res = sim.finish()
    got = {r.app_id: r for r in res.apps}
    assert len(got) == 16 and set(obs.added) == {f"next-{a.app_id}" for a in apps}
    for app_id, t in obs.added.items():
        assert got[app_id].arrival_s == t and got[app_id].completion_s > t
