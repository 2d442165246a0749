"""fcfs (request FIFO, vLLM's default) and app_fcfs (Parrot-style application FIFO)."""

from __future__ import annotations

import pytest
from core_policy_driver import Driver, assert_no_app_state

from justitia.core.policies.app_fcfs import AppFCFS
from justitia.core.policies.fcfs import FCFS


def test_fcfs_orders_requests_by_arrival_and_preempts_newest() -> None:
    d = Driver(FCFS(1000, 0.02))
    d.app("A", 0.0)
    a1 = d.req("A", 0.0)
    d.app("B", 1.0)
    b1 = d.req("B", 1.0)
    a2 = d.req("A", 2.0)  # A's second stage arrives after B's request
    assert d.order() == [a1.req_id, b1.req_id, a2.req_id]
    assert d.victim([a1, b1, a2]) == a2.req_id
    # same arrival time: the engine's sequence number decides
    c1, c2 = d.req("A", 3.0), d.req("A", 3.0)
    assert d.order([c2, c1]) == [c1.req_id, c2.req_id]


def test_app_fcfs_keeps_early_app_later_requests_ahead_of_later_app() -> None:
    d = Driver(AppFCFS(1000, 0.02))
    d.app("early", 0.0)
    e1 = d.req("early", 0.0)
    d.app("late", 1.0)
    l1 = d.req("late", 1.0)
    e2 = d.req("early", 5.0)  # next stage of the early app, after the late app's request
    assert d.order() == [e1.req_id, e2.req_id, l1.req_id]
    assert d.victim([l1, e2]) == l1.req_id
    # under request FCFS the same events put the late app's request first
    f = Driver(FCFS(1000, 0.02))
    f.app("early", 0.0), f.req("early", 0.0), f.app("late", 1.0), f.req("late", 1.0), f.req("early", 5.0)
    assert f.order()[1].startswith("late")


def test_app_fcfs_groups_simultaneous_apps_by_arrival_order() -> None:
    d = Driver(AppFCFS(1000, 0.02))
    d.app("X", 0.0)
    d.app("Y", 0.0)
    y1 = d.req("Y", 0.0)
    x1 = d.req("X", 0.5)
    y2 = d.req("Y", 1.0)
    x2 = d.req("X", 2.0)
    assert d.order() == [x1.req_id, x2.req_id, y1.req_id, y2.req_id]


@pytest.mark.parametrize("cls", [FCFS, AppFCFS])
def test_no_state_after_app_finished(cls: type) -> None:
    d = Driver(cls(1000, 0.02))
    for i in range(5):
        d.app(f"a{i}", float(i))
        d.req(f"a{i}", float(i))
    for i in range(5):
        d.finish_app(f"a{i}", 10.0 + i)
    assert_no_app_state(d.p)


def test_app_fcfs_unknown_app_is_a_clear_error() -> None:
    from justitia.core.policy import Req

    p = AppFCFS(1000, 0.02)
    with pytest.raises(KeyError, match="unknown application 'ghost'"):
        p.key(Req("r", "ghost", 0.0, 0))


@pytest.mark.parametrize("name,keeps", [("fcfs", True), ("app_fcfs", True), ("req-sjf", True), ("justitia", True),
                                        ("vtc", False), ("atlas", False)])
def test_set_capacity_bumps_version_only_if_a_key_can_move(name: str, keeps: bool) -> None:
    """The vLLM plugin pushes a new iteration time up to once a second; a policy whose keys read no
    capacity keeps ``version`` (no re-key of the queues), through SafePolicy too; ATLAS's starvation
    limit reads the iteration time, so it must bump."""
    from justitia.core.safe import SafePolicy
    from justitia.policies import make_policy

    for p in (make_policy(name, 1000, 0.02), SafePolicy(make_policy(name, 1000, 0.02))):
        v = p.version
        p.set_capacity(2000, 0.05)
        assert (p.version == v) is keeps
        assert p.capacity_tokens == 2000 and p.iteration_s == 0.05
