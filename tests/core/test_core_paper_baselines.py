"""The paper's baselines: req-sjf (vLLM-SJF, per request) and justitia-c (Justitia with VTC's cost)."""

from __future__ import annotations

import pytest
from core_policy_driver import Driver, assert_no_app_state

from justitia.core.policies.justitia_c import KAPPA_START
from justitia.core.policies.req_sjf import DEFAULT_OUTPUT_TOKENS
from justitia.core.policy import AppInfo
from justitia.policies import make_policy


def _typed(d: Driver, app_id: str, t: float, app_type: str) -> None:
    d.at(t)
    d.p.app_arrived(AppInfo(app_id, t, app_type=app_type), t)


def test_req_sjf_orders_requests_by_predicted_cost_not_by_app() -> None:
    d = Driver(make_policy("req-sjf", 1000, 0.02))
    _typed(d, "a", 0.0, "x")
    long_a = d.req("a", 0.0, prompt=900)
    short_a = d.req("a", 0.0, prompt=10)
    _typed(d, "b", 1.0, "x")
    mid_b = d.req("b", 1.0, prompt=300)
    assert d.order() == [short_a.req_id, mid_b.req_id, long_a.req_id]  # apps interleave
    assert d.victim([long_a, mid_b]) == long_a.req_id
    o = DEFAULT_OUTPUT_TOKENS
    assert d.p.key(short_a)[0] == pytest.approx(10 * o + o * (o + 1) / 2)


def test_req_sjf_learns_each_types_output_length_online() -> None:
    d = Driver(make_policy("req-sjf", 1000, 0.02))
    _typed(d, "a", 0.0, "chatty")
    r = d.req("a", 0.0, prompt=100)
    d.serve(r, 1.0, decode=40)
    d.serve(r, 2.0, decode=20)
    d.finish(r, 2.0)
    assert d.p.output_estimate("chatty") == 60.0
    assert d.p.output_estimate("other") == DEFAULT_OUTPUT_TOKENS
    r2 = d.req("a", 3.0, prompt=100)
    assert d.p.key(r2)[0] == pytest.approx(100 * 60 + 60 * 61 / 2)
    d.finish_app("a", 4.0)
    assert_no_app_state(d.p)


def test_justitia_c_tags_with_p_plus_2d_so_long_decodes_look_cheap() -> None:
    # a: small compute cost (p + 2d) but a large KV cost; b: the other way round.
    both = [("a", 2_000.0, 50_000.0), ("b", 6_000.0, 20_000.0)]
    jc, j = Driver(make_policy("justitia-c", 1000, 0.02)), Driver(make_policy("justitia", 1000, 0.02))
    for app_id, compute, memory in both:
        for d in (jc, j):
            d.app(app_id, 0.0, cost=memory, features={"compute_cost": compute})
    ra, rb = jc.req("a", 0.0), jc.req("b", 0.0)
    assert jc.order() == [ra.req_id, rb.req_id]
    assert jc.p.apps["a"].finish == pytest.approx(KAPPA_START * 2_000.0)
    ja, jb = j.req("a", 0.0), j.req("b", 0.0)
    assert j.order() == [jb.req_id, ja.req_id]


def test_justitia_c_kappa_is_measured_from_service_and_fixed_per_app() -> None:
    d = Driver(make_policy("justitia-c", 1000, 0.02))
    d.app("a", 0.0, cost=1.0, features={"compute_cost": 100})
    r = d.req("a", 0.0, prompt=100)
    held = d.serve(r, 1.0, decode=10, prefill=100)  # 10·100 + 55 token·iterations for 100 + 20 tokens
    assert d.p.kappa == pytest.approx(held / 120)
    f_a = d.p.apps["a"].finish
    d.app("b", 1.0, cost=1.0, features={"compute_cost": 100})
    assert d.p.apps["a"].finish == f_a  # a's tag keeps the κ of its arrival
    d.finish_app("a", 2.0)
    d.finish_app("b", 2.0)
    assert not d.p._kappa


def test_justitia_c_refuses_a_predicted_cost() -> None:
    with pytest.raises(ValueError, match="estimator"):
        make_policy("justitia-c-typemean", 1000, 0.02)
