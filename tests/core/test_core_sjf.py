"""sjf: shortest remaining application cost first (SJF eq. 1)."""

from __future__ import annotations

import pytest
from core_policy_driver import Driver, assert_no_app_state

from justitia.core.policies.sjf import SJF
from justitia.core.policy import AppInfo
from justitia.policies import make_policy


class HalfEstimator:
    """A deliberately wrong estimator (half the hint), to see that SJF uses the estimator."""

    name = "half"

    def estimate(self, app: AppInfo) -> float:
        return (app.cost_hint or 0.0) / 2


def test_prefers_smallest_remaining_and_preempts_largest() -> None:
    d = Driver(make_policy("sjf", 1000, 0.02))  # oracle: the cost hint
    d.app("big", 0.0, cost=10_000.0)
    b = d.req("big", 0.0, prompt=100)
    d.app("small", 1.0, cost=3_000.0)
    s = d.req("small", 1.0, prompt=100)
    assert d.order() == [s.req_id, b.req_id]
    assert d.victim([b, s]) == b.req_id
    v0 = d.p.version
    held = d.serve(b, 2.0, decode=60)  # 60·100 + 60·61/2 = 7830 token·iterations
    assert held == 7830 and d.p.version > v0
    assert d.p.apps["big"].remaining == pytest.approx(10_000 - 7830)
    assert d.order() == [b.req_id, s.req_id]  # big now has less left than small


def test_remaining_never_negative_and_ties_go_to_earlier_app() -> None:
    d = Driver(make_policy("sjf", 1000, 0.02))
    d.app("a", 0.0, cost=100.0)
    d.app("b", 0.0, cost=100.0)
    ra = d.req("a", 0.0, prompt=10)
    rb = d.req("b", 0.0, prompt=10)
    d.serve(rb, 1.0, decode=20)  # 410 > 100
    assert d.p.apps["b"].remaining == 0.0
    assert d.order() == [rb.req_id, ra.req_id]
    d.serve(ra, 2.0, decode=20)
    assert d.order() == [ra.req_id, rb.req_id]  # both 0: application order


def test_uses_the_estimator() -> None:
    d = Driver(SJF(1000, 0.02, estimator=HalfEstimator()))
    d.app("a", 0.0, cost=1000.0)
    assert d.p.apps["a"].remaining == 500.0
    assert make_policy("sjf", 1000, 0.02).estimator.name == "oracle"  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_bad_estimate_is_a_clear_error(bad: float) -> None:
    est = HalfEstimator()
    est.estimate = lambda app: bad  # type: ignore[method-assign]
    p = SJF(1000, 0.02, estimator=est)
    with pytest.raises(ValueError, match="estimated cost of application 'a'"):
        p.app_arrived(AppInfo("a", 0.0), 0.0)
    assert_no_app_state(p)
    est.estimate = lambda app: -5.0  # type: ignore[method-assign]
    p.app_arrived(AppInfo("b", 0.0), 0.0)
    assert p.apps["b"].remaining == 0.0


def test_no_state_after_app_finished() -> None:
    d = Driver(make_policy("sjf", 1000, 0.02))
    for i in range(4):
        d.app(f"a{i}", float(i), cost=100.0 * (i + 1))
        r = d.req(f"a{i}", float(i))
        d.serve(r, i + 0.5, decode=2)
    for i in range(4):
        d.finish_app(f"a{i}", 10.0)
    assert_no_app_state(d.p)
