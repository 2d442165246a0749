"""The cluster dispatcher: placement strategies, global tags, spill, faults, no state leaks."""

from __future__ import annotations

import copy

import pytest

from justitia.cluster import Dispatcher, make_placement
from justitia.core.clock import fair_finish_times
from justitia.core.cost import call_cost
from justitia.core.policy import AppInfo

M, IT = 1000.0, 0.02


def app(app_id: str, t: float, cost: float, weight: float = 1.0) -> AppInfo:
    return AppInfo(app_id=app_id, arrival_s=t, weight=weight, cost_hint=cost)


def test_round_robin_scatters_an_apps_calls_and_least_loaded_counts_requests() -> None:
    d = Dispatcher([M] * 3, IT, placement="round-robin")
    d.app_arrived(app("a", 0.0, 1e4), 0.0)
    assert [d.dispatch("a", 10, 0.0).replica for _ in range(4)] == [0, 1, 2, 0]
    ll = Dispatcher([M] * 3, IT, placement="least-loaded")
    ll.app_arrived(app("a", 0.0, 1e4), 0.0)
    first = [ll.dispatch("a", 10, 0.0) for _ in range(3)]
    assert [x.replica for x in first] == [0, 1, 2]
    ll.call_finished(first[1].call_id, 10, 5, 0.1)
    assert ll.dispatch("a", 10, 0.2).replica == 1  # the only replica with one request less


def test_affinity_homes_by_earliest_expected_finish_not_request_count() -> None:
    d = Dispatcher([M, M], IT, placement="affinity")
    d.app_arrived(app("big", 0.0, 1e6), 0.0)
    big = d.dispatch("big", 100, 0.0)
    for i in range(5):  # many small apps on the other replica: more requests, much less work
        d.app_arrived(app(f"s{i}", 0.0, 1e3), 0.0)
        assert d.dispatch(f"s{i}", 10, 0.0).replica != big.replica
    d.app_arrived(app("next", 0.0, 1e3), 0.0)
    assert d.dispatch("next", 10, 0.0).replica != big.replica
    assert all(d.dispatch("big", 100, 0.1).replica == big.replica for _ in range(10))
    assert big.finish_tag is None  # local Justitia: no global tag


def test_global_tags_are_the_clusters_fair_sharing_tags() -> None:
    d = Dispatcher([M, M], IT, placement="global")
    costs = {"a": 3e5, "b": 1e5}
    for a, c in costs.items():
        d.app_arrived(app(a, 0.0, c), 0.0)
    tags = {a: d.dispatch(a, 10, 0.0).finish_tag for a in costs}
    assert tags == pytest.approx(costs)  # F = V(0) + C/w, V(0) = 0, over the summed capacity
    assert d.reference.capacity_tokens == 2 * M
    # a later arrival starts at V(t): the clock runs at rate 2M/IT over the 2 active apps
    d.app_arrived(app("c", 1.0, 1e4), 1.0)
    assert d.finish_tag("c") == pytest.approx(1.0 * 2 * M / IT / 2 + 1e4)


def test_service_is_learned_from_completions_and_refines_the_tag() -> None:
    d = Dispatcher([M], IT, placement="global")
    d.app_arrived(app("a", 0.0, 100.0), 0.0)
    x = d.dispatch("a", 50, 0.0)
    d.call_finished(x.call_id, 50, 40, 0.01)
    got = call_cost(50, 40)
    assert got > 100.0
    assert d.finish_tag("a") == pytest.approx(2.0 * got)  # Justitia's refinement, refine_factor 2
    assert d.events == 2


def test_spill_sends_a_fan_out_beyond_the_home_replica_elsewhere_and_stay_does_not() -> None:
    for spill in (False, True):
        d = Dispatcher([M, M, M], IT, placement="global", spill=spill)
        d.app_arrived(app("wide", 0.0, 1e6), 0.0)
        reps = [d.dispatch("wide", 300, 0.0, expected_output=100) for _ in range(6)]  # 6 x 400 tokens
        home = reps[0].replica
        on_home = sum(r.replica == home for r in reps)
        if spill:
            assert on_home == 2 and sum(r.spilled for r in reps) == 4  # 2 x 400 <= M < 3 x 400
        else:
            assert on_home == 6 and not any(r.spilled for r in reps)


def test_replica_down_rehomes_apps_and_it_rejoins() -> None:
    d = Dispatcher([M, M], IT, placement="global")
    d.app_arrived(app("a", 0.0, 1e4), 0.0)
    x = d.dispatch("a", 10, 0.0)
    assert d.replica_down(x.replica) == ["a"]
    assert d.call_failed(x.call_id, 0.1) == "a"
    y = d.dispatch("a", 10, 0.2)
    assert y.replica != x.replica
    assert d.replicas[x.replica].outstanding_work == 0.0
    d.replica_up(x.replica)
    d.app_arrived(app("b", 0.3, 1e4), 0.3)
    assert d.dispatch("b", 10, 0.3).replica == x.replica  # the empty, rejoined replica
    d.replica_down(0)
    d.replica_down(1)
    with pytest.raises(RuntimeError, match="no replica is up"):
        d.dispatch("b", 10, 0.4)


def test_no_state_leaks_and_the_reference_matches_the_fluid_one() -> None:
    d = Dispatcher([M, M], IT, placement="global")
    arrivals = [("a", 0.0, 5e5), ("b", 0.5, 2e5), ("c", 0.7, 9e5)]
    for a, t, c in arrivals:
        d.app_arrived(app(a, t, c), t)
    # the global clock's departures are the fluid reference's over the summed capacity
    fair = fair_finish_times([(a, t, c, 1.0) for a, t, c in arrivals], 2 * M, IT)
    ref = copy.deepcopy(d.reference.clock)
    assert dict(ref.advance(1e3)) == pytest.approx(fair)
    calls = [d.dispatch(a, 100, 1.0) for a, _, _ in arrivals for _ in range(2)]
    for c in calls[:4]:
        d.call_finished(c.call_id, 100, 10, 2.0)
    assert d.end_idle_apps(3.0, idle_s=0.5) == ["a", "b"]
    d.app_finished("c", 3.0)  # ended with calls in flight (aborted)
    assert d.stats() == dict.fromkeys(d.stats(), 0)
    assert all(r.outstanding_work == 0.0 for r in d.replicas)


def test_bad_input_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown placement 'rr'"):
        make_placement("rr")
    with pytest.raises(ValueError, match="capacity of replica 1"):
        Dispatcher([M, 0.0], IT)
    d = Dispatcher([M], IT)
    with pytest.raises(KeyError, match="'ghost'"):
        d.dispatch("ghost", 1, 0.0)
    d.app_arrived(app("a", 0.0, 1.0), 0.0)
    with pytest.raises(ValueError, match="already known"):
        d.app_arrived(app("a", 0.0, 1.0), 0.0)
    with pytest.raises(KeyError, match="call 99"):
        d.call_finished(99, 1, 1, 0.0)


def test_app_done_ends_the_app_once_its_last_call_in_flight_returns() -> None:
    d = Dispatcher([M, M], IT, placement="global")
    d.app_arrived(app("a", 0.0, 1e4), 0.0)
    x, y = d.dispatch("a", 10, 0.0), d.dispatch("a", 10, 0.0)
    d.call_finished(y.call_id, 10, 5, 0.1)
    d.app_done("a", 0.1)  # y carried app_done, but x is still running
    assert "a" in d.apps and d.finish_tag("a") is not None
    d.call_finished(x.call_id, 10, 5, 0.2)
    assert "a" not in d.apps and d.stats() == dict.fromkeys(d.stats(), 0)
    d.app_arrived(app("b", 0.3, 1e4), 0.3)
    z = d.dispatch("b", 10, 0.3)
    d.call_failed(z.call_id, 0.4)
    d.app_done("b", 0.4)  # nothing in flight: ends at once
    assert d.stats() == dict.fromkeys(d.stats(), 0)


def test_late_binding_parks_calls_and_binds_in_global_tag_order() -> None:
    d = Dispatcher([M, M], IT, placement="global-late")
    costs = {"big": 9e5, "mid": 3e5, "small": 1e5}  # tags over 2M at V(0) = 0: their costs
    parked = {}
    for a, c in costs.items():
        d.app_arrived(app(a, 0.0, c), 0.0)
        dec = d.dispatch(a, 600, 0.0)
        assert dec.parked and dec.replica == -1
        parked[a] = dec.call_id
    # both replicas report full memory with work running: nobody can take the head
    for r in (0, 1):
        d.replica_report(r, free_tokens=100.0, waiting=0, running=3)
    assert d.bind(0.0) == [] and d.queued_apps == 3
    # replica 1 frees room for one 600-token app: the smallest tag goes first, then nothing more fits
    d.replica_report(1, free_tokens=700.0, waiting=0, running=3)
    got = d.bind(0.1)
    assert [(x.call_id, x.replica, x.parked) for x in got] == [(parked["small"], 1, False)]
    assert got[0].finish_tag == pytest.approx(1e5)
    assert d.call_app(got[0].call_id) == "small"
    # an empty replica takes the head (then 400 free < 600: not "big"); one with requests waiting takes nobody
    d.replica_report(0, free_tokens=M, waiting=0, running=0)
    d.replica_report(1, free_tokens=M, waiting=2, running=3)
    assert [d.call_app(x.call_id) for x in d.bind(0.2)] == ["mid"]
    assert d.queued_apps == 1 and d.queue_wait_s == pytest.approx(0.1 + 0.2)
    # once bound, an app's next calls go to its replica at once (sticky, with its global tag)
    nxt = d.dispatch("mid", 50, 0.3)
    assert not nxt.parked and nxt.replica == 0 and nxt.finish_tag == pytest.approx(3e5)


def test_late_binding_without_reports_uses_the_dispatchers_own_token_count() -> None:
    d = Dispatcher([M], IT, placement="global-late")
    for a, c in (("a", 1e4), ("b", 2e4)):
        d.app_arrived(app(a, 0.0, c), 0.0)
        d.dispatch(a, 600, 0.0, expected_output=100)
    (x,) = d.bind(0.0)  # the empty replica takes "a" (700 tokens in flight); "b"'s 600 do not fit in 300
    assert d.call_app(x.call_id) == "a" and d.bind(0.0) == []
    d.call_finished(x.call_id, 600, 100, 1.0)
    (y,) = d.bind(1.0)
    assert d.call_app(y.call_id) == "b"


def test_late_binding_loses_no_call_and_leaks_no_state() -> None:
    d = Dispatcher([M, M, M], IT, placement="global-late")
    rng = __import__("random").Random(7)
    pending: list[int] = []
    answered = 0
    calls = 0
    for i in range(40):
        a = f"a{i}"
        d.app_arrived(app(a, i * 0.1, rng.uniform(1e3, 1e5)), i * 0.1)
        for _ in range(rng.randint(1, 4)):
            d.dispatch(a, rng.randint(50, 400), i * 0.1, expected_output=rng.randint(1, 100))
            calls += 1
        pending += [x.call_id for x in d.bind(i * 0.1)]
        if i % 3 == 0:
            for cid in pending[:3]:
                d.call_finished(cid, 100, 10, i * 0.1)
                answered += 1
            del pending[:3]
    t = 5.0
    while pending or d.queued_apps:
        for cid in pending:
            d.call_finished(cid, 100, 10, t)
            answered += 1
        pending = [x.call_id for x in d.bind(t)]
        t += 0.1
    assert answered == calls
    assert d.bound_apps == 40
    d.end_idle_apps(t + 10.0, idle_s=1.0)
    assert d.stats() == dict.fromkeys(d.stats(), 0)
    d.app_arrived(app("gone", t, 1e3), t)
    d.dispatch("gone", 10, t)
    for r in range(3):
        d.replica_report(r, 0.0, 5, 5)
    d.app_done("gone", t)  # a parked call is pending: the app does not end yet
    assert "gone" in d.apps
    d.app_finished("gone", t)  # aborted while queued
    assert d.bind(t) == [] and d.stats() == dict.fromkeys(d.stats(), 0)
    with pytest.raises(ValueError, match="replica 0 reported"):
        d.replica_report(0, -1.0, 0, 0)


def test_late_binding_is_not_blocked_by_waiting_work_with_larger_tags() -> None:
    d = Dispatcher([M], IT, placement="global-late")
    d.app_arrived(app("small", 0.0, 1e3), 0.0)
    d.dispatch("small", 100, 0.0)
    tag = d.finish_tag("small")
    assert tag == pytest.approx(1e3)
    # requests wait on the replica: of unknown tag, or with a smaller one -> they are ahead: no bind
    for waiting_tag in (None, tag / 2, tag):
        d.replica_report(0, free_tokens=500.0, waiting=4, running=9, waiting_tag=waiting_tag)
        assert d.bind(0.1) == []
    # only larger tags wait: the replica's Justitia would admit "small" first, so it binds (if it fits)
    d.replica_report(0, free_tokens=50.0, waiting=4, running=9, waiting_tag=tag * 10)
    assert d.bind(0.2) == []  # 100 prompt tokens do not fit in 50
    d.replica_report(0, free_tokens=500.0, waiting=4, running=9, waiting_tag=tag * 10)
    (x,) = d.bind(0.3)
    assert x.replica == 0 and d.call_app(x.call_id) == "small"
