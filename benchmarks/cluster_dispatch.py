"""Cluster dispatcher cost: microseconds per request at 64 replicas, and the global clock's events/s.

Prints CPU-time figures (the host is shared; wall time is noise there), asserts nothing (speed targets live here, not in tests). Target: ≤ 50 µs per request
(dispatch + completion, amortised over the application's arrival and end) at 64 replicas.

Workload: ``paper-mix`` applications (real call lengths), replayed through :class:`Dispatcher` in
arrival order with ``--window`` applications in flight at once (each application's calls are
dispatched at its arrival and complete ``--window`` applications later), so the global reference
holds about that many active applications — the steady state of a loaded cluster.

The clock figure is the raw :class:`~justitia.core.clock.FairClock` (one event = an arrival or a
departure) with the same number of active applications, and the dispatcher's own reference events
(arrivals, completions, ends) per CPU second.

    PYTHONPATH=src python benchmarks/cluster_dispatch.py
    PYTHONPATH=src python benchmarks/cluster_dispatch.py --replicas 8,64,512 --apps 20000
    PYTHONPATH=src python benchmarks/cluster_dispatch.py --simulate 64x100000 --placements global-late
"""

from __future__ import annotations

import argparse
import random
import time
from collections import deque

from justitia.apps.model import AppSpec
from justitia.apps.workloads import make_workload
from justitia.cluster import Dispatcher, placement_names
from justitia.core.clock import FairClock
from justitia.core.policy import AppInfo

M_REPLICA, ITERATION_S = 2_000_000.0, 0.025  # an H100-sized KV cache, a decode iteration


def replay(apps: list[AppSpec], replicas: int, placement: str, window: int, spill: bool) -> tuple[float, int, int]:
    """Run the dispatcher over ``apps``; return (CPU seconds, requests, reference events)."""
    d = Dispatcher([M_REPLICA] * replicas, ITERATION_S, placement=placement, spill=spill)
    live: deque[tuple[str, list[tuple[int, int, int]]]] = deque()
    requests = 0
    t0 = time.process_time()
    for i, spec in enumerate(apps):
        now = spec.arrival_s
        d.app_arrived(AppInfo(spec.app_id, now, spec.weight, spec.type, spec.cost), now)
        calls = []
        for c in spec.calls():
            x = d.dispatch(spec.app_id, c.prompt_tokens, now, c.output_tokens)
            calls.append((x.call_id, c.prompt_tokens, c.output_tokens))
        requests += len(calls)
        live.append((spec.app_id, calls))
        d.bind(now)  # late binding (global-late): bind from the global queue; a no-op for the others
        if len(live) > window or i == len(apps) - 1:
            while live and (len(live) > window or i == len(apps) - 1):
                app_id, done = live.popleft()
                while d.apps[app_id].parked:  # late binding: its calls must be bound before they complete
                    if not d.bind(now):
                        raise RuntimeError(f"{app_id} cannot be bound: the window holds more than the cluster")
                for cid, p, o in done:
                    d.call_finished(cid, p, o, now)
                d.app_finished(app_id, now)
    wall = time.process_time() - t0
    assert d.stats() == dict.fromkeys(d.stats(), 0), d.stats()
    return wall, requests, d.events


def simulate_cluster(replicas: int, requests: int, placement: str, load: float, seed: int) -> tuple[int, int, float]:
    """Simulate paper-mix with about ``requests`` calls on ``replicas`` simulated H100 replicas (justitia
    replicas) at cluster ``load``; return (apps, calls, wall seconds of the simulation alone)."""
    from justitia.apps.arrivals import scale_to_load
    from justitia.bench.experiment import build_policy, engine_config, measure_iteration_s, reference_rate
    from justitia.cluster.simcluster import SimCluster

    probe = make_workload("paper-mix", 1000, seed)
    per_app = sum(a.num_calls for a in probe) / len(probe)
    apps = make_workload("paper-mix", int(requests / per_app), seed)
    config = engine_config("h100")
    cap, nominal = reference_rate(config)
    apps = sorted(scale_to_load(apps, load, replicas * cap / nominal), key=lambda a: (a.arrival_s, a.app_id))
    it_s, _ = measure_iteration_s(apps, config)
    d = Dispatcher([cap] * replicas, it_s, placement=placement)
    t0 = time.perf_counter()
    res = SimCluster(apps, d, lambda _i: build_policy("justitia", cap, it_s), config).run()
    wall = time.perf_counter() - t0
    assert len(res.apps) == len(apps) and d.stats() == dict.fromkeys(d.stats(), 0)
    return len(apps), sum(a.num_calls for a in apps), wall


def clock_events_per_s(active: int, events: int, seed: int = 0) -> float:
    """Raw FairClock: arrivals and departures per second with ``active`` apps in the reference."""
    rng = random.Random(seed)
    clock = FairClock(M_REPLICA * 64, ITERATION_S)
    rate = clock.rate
    mean_cost = 2e6
    t = 0.0
    for i in range(active):
        clock.arrive(f"w{i}", t, rng.expovariate(1 / mean_cost))
    n = 0
    t0 = time.process_time()
    i = active
    while n < events:
        t += rng.expovariate(rate / mean_cost)  # arrivals at the service rate: the set stays ~constant
        n += len(clock.advance(t))
        clock.arrive(f"w{i}", t, rng.expovariate(1 / mean_cost))
        i += 1
        n += 1
    return n / (time.process_time() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", default="8,64", help="comma-separated replica counts")
    ap.add_argument("--apps", type=int, default=10_000)
    ap.add_argument("--window", type=int, default=2_000, help="applications in flight at once")
    ap.add_argument("--placements", default=",".join(placement_names()))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--simulate", default="",
                    help="instead: time the simulated cluster, e.g. 64x100000 (replicas x requests) for --placements")
    ap.add_argument("--load", type=float, default=2.0, help="with --simulate: cluster load")
    args = ap.parse_args(argv)
    if args.simulate:
        n, reqs = (int(x) for x in args.simulate.lower().split("x"))
        for name in args.placements.split(","):
            n_apps, calls, wall = simulate_cluster(n, reqs, name, args.load, args.seed)
            print(f"{name}: {n_apps:,} apps / {calls:,} requests on {n} replicas at load {args.load} simulated in "
                  f"{wall:.1f} s wall ({calls / wall:,.0f} requests/s)", flush=True)
        return 0
    apps = sorted(make_workload("paper-mix", args.apps, args.seed), key=lambda a: a.arrival_s)
    print(f"paper-mix, {args.apps} apps, {sum(a.num_calls for a in apps)} requests, window {args.window} apps")
    print(f"{'replicas':>8} {'placement':>12} {'spill':>5} {'us/request':>10} {'ref events/s':>13}")
    for n in (int(x) for x in args.replicas.split(",")):
        for name in args.placements.split(","):
            for spill in (False, True) if name in ("affinity", "global") else (False,):
                wall, reqs, events = replay(apps, n, name, args.window, spill)
                print(f"{n:>8} {name:>12} {'yes' if spill else 'no':>5} {wall / reqs * 1e6:>10.1f} {events / wall:>13,.0f}")
    for active in (1_000, 10_000, 100_000):
        print(f"FairClock alone, {active:>7,} active apps: {clock_events_per_s(active, 200_000):>12,.0f} events/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
