"""VTC (Sheng et al., OSDI'24) with the application as the client: VTC eqs. 1–2."""

from __future__ import annotations

import pytest
from core_policy_driver import Driver, assert_no_app_state

from justitia.core.policies.vtc import VTC


def make() -> Driver:
    return Driver(VTC(1000, 0.02))


def test_counter_charges_input_once_and_output_twice() -> None:
    d = make()
    d.app("A", 0.0)
    r = d.req("A", 0.0, prompt=100)
    d.serve(r, 0.1, decode=0, prefill=60)
    d.serve(r, 0.2, decode=10, prefill=40)
    assert d.p.apps["A"].counter == pytest.approx(100 + 2 * 10)
    # preempted and recomputed: prompt + generated tokens prefilled again, not charged again
    d.serve(r, 0.5, decode=1, prefill=110)
    assert d.p.apps["A"].counter == pytest.approx(120 + 2)


def test_prefers_least_served_and_preempts_most_served() -> None:
    d = make()
    d.app("A", 0.0)
    d.app("B", 0.0)
    a = d.req("A", 0.0)
    b = d.req("B", 0.1)
    assert d.order() == [a.req_id, b.req_id]  # tie on counters: arrival decides
    v0 = d.p.version
    d.serve(a, 1.0, decode=5)
    assert d.p.version > v0
    assert d.order() == [b.req_id, a.req_id]
    assert d.victim([a, b]) == a.req_id
    d.serve(b, 2.0, decode=6)
    assert d.order() == [a.req_id, b.req_id]


def test_weight_divides_the_counter() -> None:
    d = make()
    d.app("heavy", 0.0, weight=2.0)
    d.app("light", 0.0)
    h = d.req("heavy", 0.0)
    l_ = d.req("light", 0.0)
    d.serve(h, 1.0, decode=10)
    d.serve(l_, 1.0, decode=6)
    assert d.p.apps["heavy"].counter == pytest.approx(10.0) and d.p.apps["light"].counter == pytest.approx(12.0)
    assert d.order() == [h.req_id, l_.req_id]


def test_returning_client_is_lifted_to_min_active_counter() -> None:
    d = make()
    d.app("A", 0.0)
    d.app("B", 0.0)
    a1 = d.req("A", 0.0)
    b1 = d.req("B", 0.0)
    d.serve(a1, 1.0, decode=50)  # A: 100
    d.finish(a1, 1.0)  # A goes idle (e.g. a tool call between stages)
    d.serve(b1, 2.0, decode=200)  # B keeps being served while A is away: 400
    assert d.p.apps["A"].counter == pytest.approx(100)
    a2 = d.req("A", 3.0)  # A returns: may not spend the credit it "banked" while idle
    assert d.p.apps["A"].counter == pytest.approx(400)
    assert d.p.lifts == 1
    b2 = d.req("B", 3.5)
    # equal counters now: B's older request goes first (without the lift A's 100 would jump it)
    assert d.order([a2, b1, b2]) == [b1.req_id, a2.req_id, b2.req_id]
    # a second request of an already active app does not lift again
    d.serve(b1, 4.0, decode=10)
    d.req("A", 4.5)
    assert d.p.apps["A"].counter == pytest.approx(400)


def test_new_client_starts_at_min_active_not_zero_and_lift_never_lowers() -> None:
    d = make()
    d.app("A", 0.0)
    d.app("B", 0.0)
    a = d.req("A", 0.0)
    b = d.req("B", 0.0)
    d.serve(a, 1.0, decode=50)  # 100
    d.serve(b, 1.0, decode=150)  # 300
    d.app("C", 2.0)
    c = d.req("C", 2.0)
    assert d.p.apps["C"].counter == pytest.approx(100)  # min over the active apps A, B
    assert d.order() == [a.req_id, c.req_id, b.req_id]  # equal counters: A's request arrived first
    # B goes idle, returns while A (100) and C (100) are active: its 300 is kept, not lowered
    d.finish(b, 3.0)
    d.req("B", 4.0)
    assert d.p.apps["B"].counter == pytest.approx(300)


def test_lone_client_is_not_lifted() -> None:
    d = make()
    d.app("A", 0.0)
    d.app("B", 0.0)
    b = d.req("B", 0.0)
    d.serve(b, 1.0, decode=100)
    d.finish(b, 1.0)  # nobody is active now
    d.req("A", 2.0)
    assert d.p.apps["A"].counter == 0.0


def test_no_state_after_app_finished() -> None:
    d = make()
    for i in range(4):
        d.app(f"a{i}", float(i))
        r = d.req(f"a{i}", float(i), prompt=10)
        d.serve(r, i + 0.5, decode=3, prefill=10)
    d.req("a0", 5.0)
    for i in range(4):
        d.finish_app(f"a{i}", 10.0)
    assert_no_app_state(d.p)


def test_bad_prices_are_rejected() -> None:
    with pytest.raises(ValueError, match="output_weight"):
        VTC(1000, 0.02, output_weight=-1.0)
