"""The fair-sharing clock (clock eqs. 1–2) against a brute-force fluid GPS simulation.

The brute force steps real time by ``DT`` and splits ``rate·DT`` token·iterations among the active
applications in proportion to their weights; an application leaves when its remaining work is done.
All event times lie on the ``DT`` grid, so the only discretisation error is the capacity left unused
in the step in which an application finishes (≤ DT per departure).
"""

from __future__ import annotations

import random

import pytest

from justitia.core.clock import FairClock, fair_finish_times

CAP, IT = 10.0, 1.0  # rate = 10 token·iterations per second
RATE = CAP / IT
DT = 1e-3
TOL = 1.5e-2


def projected_finish_time(clock: FairClock, app_id: str) -> float | None:
    """Real time at which ``app_id`` would leave the reference if no other application arrived: walk
    the clock's finish tags in order (skipping stale heap entries left by ``update_cost``)."""
    e = clock._apps.get(app_id)
    if e is None:
        return None
    t, v, wsum = clock.now, clock.v, clock.wsum
    seen: set[str] = set()
    for f, _, other in sorted(clock._heap):
        o = clock._apps.get(other)
        if o is None or o.finish != f or f > e.finish or other in seen:
            continue
        seen.add(other)
        t += (f - v) * wsum / clock.rate
        v = f
        wsum -= o.weight
    return t


def brute_gps(apps: dict[str, tuple[float, float, float]], events: list[tuple[float, str, str, float]] = ()) -> dict[str, float]:
    """Departure times of weighted fluid GPS. ``apps``: id -> (arrival, cost, weight).
    ``events``: (time, "update"|"remove", id, new_cost) applied at that time."""
    arrivals = sorted((round(a / DT), aid) for aid, (a, _, _) in apps.items())
    evs = sorted((round(t / DT), kind, aid, c) for t, kind, aid, c in events)
    remaining: dict[str, float] = {}
    received: dict[str, float] = {}
    out: dict[str, float] = {}
    step = 0
    while arrivals or evs or remaining:
        while arrivals and arrivals[0][0] <= step:
            _, aid = arrivals.pop(0)
            remaining[aid] = apps[aid][1]
            received[aid] = 0.0
        while evs and evs[0][0] <= step:
            _, kind, aid, c = evs.pop(0)
            if aid not in remaining:
                continue
            if kind == "remove":
                del remaining[aid]
            else:
                remaining[aid] = c - received[aid]
                if remaining[aid] <= 0:
                    out[aid] = step * DT
                    del remaining[aid]
        t = step * DT
        for aid in [a for a, r in remaining.items() if r <= 0]:  # zero-cost arrivals leave at once
            out[aid] = t
            del remaining[aid]
        if remaining:
            wsum = sum(apps[a][2] for a in remaining)
            for aid in list(remaining):
                share = RATE * DT * apps[aid][2] / wsum
                if remaining[aid] <= share:
                    out[aid] = t + DT * remaining[aid] / share
                    received[aid] += remaining[aid]
                    del remaining[aid]
                else:
                    remaining[aid] -= share
                    received[aid] += share
        step += 1
    return out


def random_apps(rng: random.Random, n: int) -> dict[str, tuple[float, float, float]]:
    return {
        f"a{i}": (round(rng.uniform(0, 4), 3), float(rng.randint(1, 30)), rng.choice([0.5, 1.0, 2.0, 3.0]))
        for i in range(n)
    }


def run_clock(apps: dict[str, tuple[float, float, float]], events: list[tuple[float, str, str, float]] = ()) -> dict[str, float]:
    clock = FairClock(CAP, IT)
    out: dict[str, float] = {}
    todo = sorted([(a, 0, "arrive", aid, c) for aid, (a, c, _) in apps.items()]
                  + [(t, 1, kind, aid, c) for t, kind, aid, c in events])
    for t, _, kind, aid, c in todo:
        out.update(clock.advance(t))
        if kind == "arrive":
            clock.arrive(aid, t, c, apps[aid][2])
        elif aid in clock:
            if kind == "remove":
                clock.remove(aid)
            else:
                clock.update_cost(aid, c)
    out.update(clock.advance(1e9))
    assert len(clock) == 0 and clock.wsum == 0.0
    return out


def assert_same_departures(got: dict[str, float], want: dict[str, float]) -> None:
    assert got.keys() == want.keys()
    for aid in want:
        assert got[aid] == pytest.approx(want[aid], abs=TOL), aid


@pytest.mark.parametrize("seed", range(12))
def test_clock_matches_brute_force_gps(seed: int) -> None:
    rng = random.Random(seed)
    apps = random_apps(rng, rng.randint(2, 5))
    want = brute_gps(apps)
    assert_same_departures(run_clock(apps), want)
    assert_same_departures(fair_finish_times([(a, t, c, w) for a, (t, c, w) in apps.items()], CAP, IT), want)


def test_weights_matter_in_the_reference() -> None:
    # two apps of equal cost arriving together: weight 3 gets 3/4 of the rate and leaves first
    apps = {"heavy": (0.0, 30.0, 3.0), "light": (0.0, 30.0, 1.0)}
    got = run_clock(apps)
    assert got["heavy"] == pytest.approx(4.0)  # 30 / (10 · 3/4)
    assert got["light"] == pytest.approx(6.0)  # 60 / 10
    assert_same_departures(got, brute_gps(apps))


@pytest.mark.parametrize("seed", range(8))
def test_update_cost_and_remove_match_brute_force(seed: int) -> None:
    rng = random.Random(1000 + seed)
    apps = random_apps(rng, rng.randint(3, 5))
    ids = sorted(apps)
    upd, rem = rng.sample(ids, 2)
    t_u = round(apps[upd][0] + rng.uniform(0, 1.5), 3)
    new_cost = apps[upd][1] * rng.choice([0.1, 0.5, 1.5, 3.0])
    t_r = round(apps[rem][0] + rng.uniform(0, 1.5), 3)
    events = [(t_u, "update", upd, new_cost), (t_r, "remove", rem, 0.0)]
    got, want = run_clock(apps, events), brute_gps(apps, events)
    assert_same_departures(got, want)


@pytest.mark.parametrize("seed", range(6))
def test_readmit_at_departure_equals_larger_cost_from_the_start(seed: int) -> None:
    """Re-admitting an app with its original start tag the moment it leaves (Justitia's refinement)
    is GPS with the larger cost from the start."""
    rng = random.Random(2000 + seed)
    apps = random_apps(rng, rng.randint(2, 5))
    target = sorted(apps)[0]
    a0, c0, w0 = apps[target]
    c1 = c0 * rng.choice([1.5, 2.0, 4.0])
    clock = FairClock(CAP, IT)
    out: dict[str, float] = {}
    start = None
    readmitted = False
    for t, aid in sorted((a, aid) for aid, (a, _, _) in apps.items()):
        while not readmitted and start is not None and target in clock:
            t_dep = projected_finish_time(clock, target)
            if t_dep is None or t_dep > t:
                break
            out.update(clock.advance(t_dep))
            if target not in clock:  # it left: re-admit with S and the new cost
                assert out.pop(target) == pytest.approx(t_dep)
                f = clock.arrive(target, clock.now, c1, w0, start=start)
                assert f == pytest.approx(start + c1 / w0)
                readmitted = True
        out.update(clock.advance(t))
        clock.arrive(aid, t, apps[aid][1], apps[aid][2])
        if aid == target:
            start = clock.v
    if not readmitted:
        t_dep = projected_finish_time(clock, target)
        out.update(clock.advance(t_dep))
        out.pop(target)
        clock.arrive(target, clock.now, c1, w0, start=start)
    out.update(clock.advance(1e9))
    assert_same_departures(out, brute_gps({**apps, target: (a0, c1, w0)}))


def test_readmit_start_is_clamped_and_projected_finish_is_exact_without_arrivals() -> None:
    clock = FairClock(CAP, IT)
    clock.arrive("a", 0.0, 20.0)
    clock.arrive("b", 0.0, 40.0, weight=2.0)
    assert projected_finish_time(clock, "a") == pytest.approx(6.0)  # 20 at a third of 10/s
    assert projected_finish_time(clock, "b") == pytest.approx(6.0)
    clock.update_cost("a", 10.0)  # leaves a stale heap entry behind
    assert projected_finish_time(clock, "b") == pytest.approx(3.0 + 20.0 / 10.0)  # b has 20 left at t=3
    deps = clock.advance(100.0)
    assert [d[0] for d in deps] == ["a", "b"]
    assert deps[0][1] == pytest.approx(3.0) and deps[1][1] == pytest.approx(5.0)
    # a start tag in the (virtual) future is clamped to V; no start means S = V
    v = clock.v
    f = clock.arrive("c", 100.0, 5.0, start=v + 50.0)
    assert f == pytest.approx(v + 5.0)


def test_clock_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="capacity_tokens"):
        FairClock(0, 1.0)
    with pytest.raises(ValueError, match="iteration_s"):
        FairClock(10, float("nan"))
    clock = FairClock(CAP, IT)
    clock.arrive("a", 0.0, 1.0)
    with pytest.raises(ValueError, match="already in the fair-sharing reference"):
        clock.arrive("a", 0.0, 1.0)
    with pytest.raises(ValueError, match="weight"):
        clock.arrive("b", 0.0, 1.0, weight=0.0)
    with pytest.raises(ValueError, match="cost"):
        clock.arrive("b", 0.0, -1.0)
    with pytest.raises(ValueError, match="cost"):
        clock.update_cost("a", float("inf"))
    with pytest.raises(KeyError, match="not in the fair-sharing reference"):
        clock.update_cost("zzz", 1.0)
