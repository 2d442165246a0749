"""Justitia: order by the application's virtual finish tag F (clock eq. 2), preempt the largest F."""

from __future__ import annotations

import pytest
from core_policy_driver import Driver, assert_no_app_state

from justitia.core.policies.justitia import Justitia
from justitia.core.policy import AppInfo, Req
from justitia.policies import make_policy

CAP, IT = 1000.0, 0.02  # rate = 50,000 token·iterations per second


class ConstEstimator:
    """Estimates every application without a hint at a fixed cost (to model prediction error)."""

    name = "const"

    def __init__(self, value: float) -> None:
        self.value = value

    def estimate(self, app: AppInfo) -> float:
        return self.value if app.cost_hint is None else app.cost_hint


def oracle() -> Driver:
    return Driver(make_policy("justitia", CAP, IT))


def test_simultaneous_arrivals_are_shortest_first() -> None:
    d = oracle()
    costs = {"a": 300_000.0, "b": 100_000.0, "c": 200_000.0, "d": 250_000.0}
    reqs = {}
    for app_id, c in costs.items():
        d.app(app_id, 0.0, cost=c)
    for app_id in costs:
        reqs[app_id] = d.req(app_id, 0.0)
    assert d.order() == [reqs[a].req_id for a in sorted(costs, key=costs.get)]
    assert d.victim(reqs.values()) == reqs["a"].req_id
    assert {a: s.finish for a, s in d.p.apps.items()} == pytest.approx(costs)  # F = V(0) + C with V(0) = 0


def test_equal_F_apps_run_one_after_another() -> None:
    d = oracle()
    d.app("x", 0.0, cost=1_000.0)
    d.app("y", 0.0, cost=1_000.0)
    rs = [d.req(app, 0.0) for app in ("y", "x", "y", "x")]
    assert d.order() == [rs[1].req_id, rs[3].req_id, rs[0].req_id, rs[2].req_id]


def test_later_small_app_overtakes_only_when_its_F_is_smaller() -> None:
    d = oracle()
    d.app("A", 0.0, cost=1_000_000.0)
    a = d.req("A", 0.0)
    # V(4 s) = 4 · 50,000 = 200,000 while A alone is in the reference
    d.app("B", 4.0, cost=500_000.0)  # F_B = 700,000 < F_A = 1,000,000
    b = d.req("B", 4.0)
    d.app("C", 4.0, cost=850_000.0)  # F_C ≈ 1,050,000 > F_A although C is smaller than A
    c = d.req("C", 4.0)
    assert d.p.apps["B"].finish == pytest.approx(700_000.0)
    assert d.p.apps["C"].finish == pytest.approx(1_050_000.0)
    assert d.order() == [b.req_id, a.req_id, c.req_id]
    # SJF on the same events lets the later C jump A: the difference is virtual time
    s = Driver(make_policy("sjf", CAP, IT))
    s.app("A", 0.0, cost=1_000_000.0), s.req("A", 0.0)
    s.app("C", 4.0, cost=850_000.0), s.req("C", 4.0)
    assert s.order()[0].startswith("C")


def test_weights_scale_F() -> None:
    d = oracle()
    d.app("w1", 0.0, cost=100_000.0, weight=1.0)
    d.app("w2", 0.0, cost=100_000.0, weight=2.0)
    d.app("w4big", 0.0, cost=300_000.0, weight=4.0)
    r1, r2, r4 = d.req("w1", 0.0), d.req("w2", 0.0), d.req("w4big", 0.0)
    assert d.p.apps["w1"].finish == pytest.approx(100_000.0)
    assert d.p.apps["w2"].finish == pytest.approx(50_000.0)
    assert d.p.apps["w4big"].finish == pytest.approx(75_000.0)
    assert d.order() == [r2.req_id, r4.req_id, r1.req_id]


def test_refinement_raises_an_under_estimated_apps_F() -> None:
    d = Driver(Justitia(CAP, IT, estimator=ConstEstimator(10_000.0)))
    d.app("under", 0.0)  # truly much bigger than 10,000
    d.app("other", 0.0)
    u = d.req("under", 0.0, prompt=200)
    o = d.req("other", 0.0, prompt=200)
    assert d.order() == [u.req_id, o.req_id]  # equal F: earlier application arrival/request first
    f0, v0 = d.p.apps["under"].finish, d.p.version
    d.serve(u, 0.1, decode=40)  # 40·200 + 820 = 8,820: still within the estimate
    assert d.p.apps["under"].finish == f0 and d.p.refinements == 0
    d.serve(u, 0.2, decode=10)  # 8,820 + 10·240 + 55 = 11,275 > 10,000
    assert d.p.refinements == 1 and d.p.version > v0
    assert d.p.apps["under"].estimated == pytest.approx(2 * 11_275)
    assert d.p.apps["under"].finish == pytest.approx(d.p.apps["under"].start + 2 * 11_275)
    assert d.order() == [o.req_id, u.req_id]
    # without refinement it keeps its small tag forever
    n = Driver(Justitia(CAP, IT, estimator=ConstEstimator(10_000.0), refine=False))
    n.app("under", 0.0), n.app("other", 0.0)
    nu, no = n.req("under", 0.0, prompt=200), n.req("other", 0.0, prompt=200)
    n.serve(nu, 0.2, decode=50)
    assert n.order() == [nu.req_id, no.req_id]


def test_refinement_after_leaving_the_reference_readmits_with_original_start() -> None:
    d = Driver(Justitia(CAP, IT, estimator=ConstEstimator(1_000.0)))
    d.app("u", 0.0)
    r = d.req("u", 0.0, prompt=100)
    d.at(1.0)  # u left the reference at V = F = 1,000 (0.02 s); V stays there while nobody is in it
    assert "u" not in d.p.clock and d.p.clock.v == pytest.approx(1_000.0)
    d.serve(r, 1.0, decode=20)  # 2,210 > 1,000 → re-tag to 4,420 from S = 0
    assert "u" in d.p.clock
    assert d.p.apps["u"].finish == pytest.approx(4_420.0)
    # an app already behind its fair finish even at the new cost stays out and keeps its (small) F
    e = Driver(Justitia(CAP, IT, estimator=ConstEstimator(1_000.0)))
    e.app("u", 0.0), e.app("long", 0.0, cost=1e9)
    ru = e.req("u", 0.0, prompt=100)
    e.at(1.0)  # V(1 s) = 1,000 + (1 − 0.04)·50,000 ≫ 4,420
    assert "u" not in e.p.clock and "long" in e.p.clock
    e.serve(ru, 1.0, decode=20)
    assert "u" not in e.p.clock and e.p.apps["u"].finish == pytest.approx(1_000.0)


def test_no_state_after_app_finished() -> None:
    d = oracle()
    for i in range(5):
        d.app(f"a{i}", 0.1 * i, cost=5_000.0 * (i + 1))
        r = d.req(f"a{i}", 0.1 * i, prompt=50)
        d.serve(r, 0.1 * i + 0.05, decode=20)
    for i in range(5):
        d.finish_app(f"a{i}", 1.0 + i)
    assert_no_app_state(d.p)
    d.at(1e6)  # the reference keeps finished apps only until V reaches their F
    assert len(d.p.clock) == 0 and d.p.clock.wsum == 0.0


def test_unknown_app_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown application 'ghost'"):
        oracle().p.key(Req("r", "ghost", 0.0, 0))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_estimate_is_a_clear_error_and_leaves_no_state(bad: float) -> None:
    p = Justitia(CAP, IT, estimator=ConstEstimator(bad))
    with pytest.raises(ValueError, match="estimated cost of application 'a'"):
        p.app_arrived(AppInfo("a", 0.0), 0.0)
    assert_no_app_state(p)
    assert len(p.clock) == 0


def test_bad_refine_factor_is_rejected() -> None:
    with pytest.raises(ValueError, match="refine_factor"):
        Justitia(CAP, IT, refine_factor=1.0)
