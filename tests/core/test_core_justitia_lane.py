"""justitia-lane: Justitia's order (F, clock eq. 2) plus a background lane of ``width`` calls for the
application with the largest remaining estimated cost, keyed right behind the head application."""

from __future__ import annotations

import pytest
from core_policy_driver import Driver, assert_no_app_state

from justitia.core.policies.justitia_lane import JustitiaLane
from justitia.policies import make_policy

CAP, IT = 1000.0, 0.02


def lane(width: int = 1, position: str = "second") -> Driver:
    from justitia.core.estimators import OracleEstimator

    return Driver(JustitiaLane(CAP, IT, OracleEstimator(), width=width, position=position))  # type: ignore[arg-type]


def three_apps(d: Driver) -> dict[str, list]:
    """head (smallest F), mid, big (largest remaining cost), all arriving at 0 with 3 calls each."""
    reqs: dict[str, list] = {}
    for app_id, cost in (("head", 10_000.0), ("mid", 50_000.0), ("big", 500_000.0)):
        d.app(app_id, 0.0, cost=cost)
    for app_id in ("head", "mid", "big"):
        reqs[app_id] = [d.req(app_id, 0.0) for _ in range(3)]
    return reqs


def ids(reqs: list) -> list[str]:
    return [r.req_id for r in reqs]


def test_the_lane_call_runs_right_behind_the_head_app_the_rest_in_justitia_order() -> None:
    d = lane()
    r = three_apps(d)
    assert d.p.head_app == "head" and d.p.lane_app == "big"
    # Justitia alone: head, mid, big. The lane moves big's oldest call between head and mid.
    assert d.order() == ids(r["head"]) + [r["big"][0].req_id] + ids(r["mid"]) + ids(r["big"][1:])
    justitia = Driver(make_policy("justitia", CAP, IT))
    three_apps(justitia)
    assert justitia.order() == ids(r["head"]) + ids(r["mid"]) + ids(r["big"])
    # preempted first: the tail of the order, never the lane call before another app's calls
    assert d.victim(r["big"][:1] + r["mid"]) == r["mid"][-1].req_id
    assert d.victim(r["big"][:1] + r["head"]) == r["big"][0].req_id


def test_front_position_puts_the_lane_call_first() -> None:
    d = lane(position="front")
    r = three_apps(d)
    assert d.order()[0] == r["big"][0].req_id
    assert d.order()[1:4] == ids(r["head"])


def test_the_width_bounds_the_lane_and_a_finished_lane_call_hands_its_slot_on() -> None:
    d = lane(width=2)
    r = three_apps(d)
    assert d.order()[3:5] == ids(r["big"][:2])  # two lane calls behind the head's three
    d.finish(r["big"][0], 0.1)
    assert d.order()[3:5] == ids(r["big"][1:3])  # the next call of big took the free slot
    assert d.order()[5:] == ids(r["mid"])


def test_the_lane_sticks_until_its_app_ends_and_never_goes_to_the_head() -> None:
    d = lane()
    r = three_apps(d)
    d.app("bigger", 0.2, cost=900_000.0)  # a larger app arrives: the lane stays with big
    d.req("bigger", 0.2)
    assert d.p.lane_app == "big"
    d.finish_app("big", 0.3)
    assert d.p.lane_app == "bigger"
    for x in r["head"]:
        d.finish(x, 0.4)  # head is between stages: mid leads now
    assert d.p.head_app == "mid"
    d.finish_app("bigger", 0.5)
    # only head (idle) and mid remain: mid is the head, so the lane goes to head, which has no call
    assert d.p.lane_app == "head" and d.p.head_app == "mid"
    d.finish_app("head", 0.6)
    d.finish_app("mid", 0.7)
    assert d.p.lane_app is None and d.p.head_app is None
    assert_no_app_state(d.p)


def test_a_lane_app_between_stages_gets_its_next_stage_call_into_the_lane_at_once() -> None:
    d = lane()
    r = three_apps(d)
    for x in r["big"]:
        d.finish(x, 0.1)
    nxt = d.req("big", 0.2, stage=1)
    assert d.p.lane_app == "big"
    assert d.order() == ids(r["head"]) + [nxt.req_id] + ids(r["mid"])


def test_changed_apps_names_the_apps_whose_keys_the_lane_moved() -> None:
    d = lane()
    r = three_apps(d)
    d.p.changed_apps()  # the first report is "everything"
    d.finish(r["big"][0], 0.1)
    assert d.p.changed_apps() == {"big"}
    for x in r["head"]:
        d.finish(x, 0.2)  # the head changes to mid: big's lane call is keyed behind mid now
    assert "big" in (d.p.changed_apps() or set())
    assert d.order()[0:2] == [r["mid"][0].req_id, r["mid"][1].req_id]
    assert d.order()[3] == r["big"][1].req_id


def test_with_one_app_the_order_is_justitias() -> None:
    d = lane()
    d.app("solo", 0.0, cost=5_000.0)
    reqs = [d.req("solo", 0.0) for _ in range(4)]
    assert d.order() == ids(reqs)


@pytest.mark.parametrize("kwargs,match", [({"width": 0}, "width"), ({"position": "third"}, "position")])
def test_bad_options_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        JustitiaLane(CAP, IT, None, **kwargs)  # type: ignore[arg-type]


def test_in_the_simulator_the_lane_runs_a_big_apps_sequential_tail_under_the_others() -> None:
    """A map-reduce (6 wide calls, then one long reduce) among 12 smaller apps on a scarce KV cache:
    Justitia serves it last, so its reduce runs alone at the end; the lane overlaps it with the others."""
    from justitia.apps.model import AppSpec, Call, Stage
    from justitia.bench.metrics import evaluate
    from justitia.runner.calibrate import sim_config
    from justitia.sim.engine import simulate
    from justitia.sim.latency import LinearLatency

    apps = [AppSpec("big", 0.5, "mapreduce", (Stage(tuple(Call(300, 40) for _ in range(6))), Stage((Call(300, 80),))))]
    apps += [AppSpec(f"m{i}", 0.1 * i, "sc", (Stage(tuple(Call(200, 60) for _ in range(3))),)) for i in range(12)]
    cfg = sim_config(LinearLatency(0.1, 0.0, 0.0, 0.0), 2048)  # one step = 0.1 s, as the step clock
    runs = {}
    for name in ("justitia", "justitia-lane"):
        res = simulate(apps, make_policy(name, cfg.kv_capacity, 0.1), cfg)
        metrics = evaluate(res, apps, iteration_s=0.1, capacity_tokens=cfg.kv_capacity)
        assert metrics.apps_over_fair_bound == 0
        runs[name] = (res.iterations, {a.app_id: a.completion_s for a in res.apps})
    (steps_j, done_j), (steps_l, done_l) = runs["justitia"], runs["justitia-lane"]
    assert done_j["big"] == max(done_j.values())  # Justitia: the big app ends the stream ...
    assert done_l["big"] < done_j["big"] - 10.0  # ... the lane finishes it 100+ steps earlier
    assert steps_l < 0.9 * steps_j  # and the stream takes fewer engine steps
