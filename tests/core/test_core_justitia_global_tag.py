"""Justitia on a cluster replica: order by the dispatcher's global finish tag (DESIGN §7)."""

from __future__ import annotations

import pytest
from core_policy_driver import Driver, assert_no_app_state

from justitia.policies import make_policy

CAP, IT = 1000.0, 0.02


def test_global_tags_override_local_costs() -> None:
    d = Driver(make_policy("justitia", CAP, IT))
    # locally "big" is 100x "small", but the cluster says "big" finishes first
    d.app("small", 0.0, cost=1_000.0, features={"finish_tag": 900.0})
    d.app("big", 0.0, cost=100_000.0, features={"finish_tag": 50.0})
    rs, rb = d.req("small", 0.0), d.req("big", 0.0)
    assert d.order() == [rb.req_id, rs.req_id]
    assert d.victim([rs, rb]) == rs.req_id
    assert d.p.finish_tag("big") == 50.0


def test_without_tags_keys_are_exactly_the_single_server_ones() -> None:
    plain, tagged = Driver(make_policy("justitia", CAP, IT)), Driver(make_policy("justitia", CAP, IT))
    for drv in (plain, tagged):
        drv.app("a", 0.0, cost=5_000.0)
        drv.app("b", 0.1, cost=1_000.0, features={"other": 1})
    for drv in (plain, tagged):
        ra, rb = drv.req("a", 0.2), drv.req("b", 0.2)
        drv.serve(ra, 0.3, decode=200)  # past the estimate: refinement moves "a"
    assert [plain.p.key(r) for r in plain.reqs.values()] == [tagged.p.key(r) for r in tagged.reqs.values()]
    assert plain.p.refinements == 1


def test_refinement_does_not_move_a_global_tag_but_a_new_tag_does() -> None:
    d = Driver(make_policy("justitia", CAP, IT))
    d.app("a", 0.0, cost=100.0, features={"finish_tag": 10.0})
    r = d.req("a", 0.0)
    d.serve(r, 0.1, decode=100)  # served >> estimate
    assert d.p.finish_tag("a") == 10.0
    v = d.p.version
    d.p.set_finish_tag("a", 42.0)
    assert d.p.key(r)[0] == 42.0 and d.p.version == v + 1
    d.finish_app("a", 0.2)
    assert_no_app_state(d.p, allow=("clock", "apps_finished"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "7", True])
def test_bad_tag_is_refused_naming_the_app(bad: object) -> None:
    d = Driver(make_policy("justitia", CAP, IT))
    with pytest.raises(ValueError, match="'x'"):
        d.app("x", 0.0, cost=1.0, features={"finish_tag": bad})
    assert_no_app_state(d.p, allow=("clock", "apps_finished"))
