"""The simulated cluster: N engines behind the dispatcher (whole-app and per-stage modes) and its bound."""

from __future__ import annotations

import json

import pytest

from justitia.apps.arrivals import scale_to_load
from justitia.apps.workloads import make_workload
from justitia.bench.experiment import build_policy, engine_config, reference_rate
from justitia.apps.model import AppSpec, Call, Stage
from justitia.bench.metrics import evaluate, fragmentation_blocking_s, fragmentation_terms
from justitia.cli import main
from justitia.cluster import Dispatcher
from justitia.cluster.sim_experiment import cluster_bound, run_cluster
from justitia.cluster.simcluster import SimCluster
from justitia.sim.engine import simulate
from justitia.sim.result import AppRecord, RunResult

CFG = engine_config("h100")
M, IT = reference_rate(CFG)


def _apps(n: int, replicas: int, load: float = 1.5) -> list:
    return sorted(scale_to_load(make_workload("paper-mix", n, 3), load, replicas * M / IT), key=lambda a: a.arrival_s)


def _run(apps: list, replicas: int, placement: str, policy: str, spill: bool = False) -> tuple:
    d = Dispatcher([M] * replicas, IT, placement=placement, spill=spill)
    res = SimCluster(apps, d, lambda _i: build_policy(policy, M, IT), CFG).run()
    return res, d


@pytest.mark.parametrize("placement", ["affinity", "global"])
def test_one_replica_cluster_is_the_single_engine(placement: str) -> None:
    apps = _apps(60, 1)
    single = {r.app_id: r.completion_s for r in simulate(apps, build_policy("justitia", M, IT), CFG).apps}
    res, d = _run(apps, 1, placement, "justitia")
    got = {r.app_id: r.completion_s for r in res.apps}
    assert got == pytest.approx(single, rel=1e-9, abs=1e-9)
    assert d.stats() == dict.fromkeys(d.stats(), 0)


def test_round_robin_scatters_calls_and_every_app_completes() -> None:
    apps = _apps(80, 3)
    res, d = _run(apps, 3, "round-robin", "fcfs")
    assert sorted(r.app_id for r in res.apps) == sorted(a.app_id for a in apps)
    assert all(r.completion_s >= r.arrival_s for r in res.apps)
    assert d.stats() == dict.fromkeys(d.stats(), 0)
    assert 1.0 <= res.extra["replica_busy_imbalance"] < 1.5
    assert res.output_tokens == sum(c.output_tokens for a in apps for c in a.calls())


def test_global_tags_reach_the_replicas_and_spill_runs() -> None:
    apps = _apps(80, 2, load=2.0)
    res, _ = _run(apps, 2, "global", "justitia", spill=True)
    assert len(res.apps) == len(apps)
    with pytest.raises(ValueError, match="only the justitia policy"):
        _run(apps[:3], 2, "global", "fcfs")


def test_cluster_bound_is_the_single_server_bound_for_one_replica_and_widens_with_n() -> None:
    apps = _apps(40, 1)
    res = simulate(apps, build_policy("fcfs", M, IT), CFG)
    m1 = evaluate(res, apps, iteration_s=IT, capacity_tokens=M)
    before = [a.allowed_delay_s for a in m1.apps]
    cluster_bound(m1, apps, M, 1, IT)
    assert [a.allowed_delay_s for a in m1.apps] == pytest.approx(before)
    m4 = evaluate(res, apps, iteration_s=IT, capacity_tokens=4 * M)
    cluster_bound(m4, apps, M, 4, IT)
    c_max = max(a.cost for a in apps)
    assert m4.fair_bound_s == pytest.approx(c_max / M * IT)
    specs = {a.app_id: a for a in apps}
    for a in m4.apps:  # packet term of one replica + pinning term + own critical path + one replica's blocking
        frag = fragmentation_blocking_s(specs[a.app_id], apps, M, IT)
        assert a.allowed_delay_s == pytest.approx(c_max / M * IT + a.cost * IT * (1 / M - 1 / (4 * M))
                                                  + a.critical_path_s + frag + IT)  # + the step in progress


def test_fragmentation_terms_match_bound_eq5_per_app() -> None:
    apps = _apps(30, 2)
    for cap in (M, 4 * M, 1e9):
        fast = fragmentation_terms(apps, cap, IT, 512)
        for a in apps:
            assert fast[a.app_id] == pytest.approx(fragmentation_blocking_s(a, apps, cap, IT, 512))


def test_cluster_bound_by_hand() -> None:
    # 2 replicas of M = 100 tokens, it = 1 s; a: one call 60 prompt + 10 output (cost eq. 1: 60*10 + 10*11/2 = 655),
    # b: one call 30 + 50 (30*50 + 50*51/2 = 2775). Critical paths (no chunk): 1 + o - 1 = o iterations.
    a = AppSpec("a", 0.0, "t", (Stage((Call(60, 10),)),))
    b = AppSpec("b", 0.0, "t", (Stage((Call(30, 50),)),))
    assert (a.cost, b.cost) == (655.0, 2775.0)
    res = RunResult(policy="p", apps=[AppRecord("a", "t", 0.0, 10.0, a.cost, 1.0, 1, a.cost),
                                      AppRecord("b", "t", 0.0, 50.0, b.cost, 1.0, 1, b.cost)],
                    capacity_tokens=200.0, iteration_s=1.0, makespan_s=50.0, prompt_tokens=90, output_tokens=60,
                    preemptions=0, iterations=50, wall_s=0.0)
    m = evaluate(res, [a, b], iteration_s=1.0, capacity_tokens=200.0)
    cluster_bound(m, [a, b], 100.0, 2, 1.0)
    got = {x.app_id: x.allowed_delay_s for x in m.apps}
    packet = 2775 / 100
    # a: 60 + 80 held by b > 100 -> blocked for b's longest call (50 iterations) x 60/100 of the cache;
    # over the pooled 200 it would fit (0). b: 30 + 70 <= 100 fits -> 0.
    assert got["a"] == pytest.approx(packet + 655 * (1 / 100 - 1 / 200) + 10 + 50 * 0.6 + 1)  # + step in progress
    assert got["b"] == pytest.approx(packet + 2775 * (1 / 100 - 1 / 200) + 50 + 0.0 + 1)


def test_simulate_replicas_writes_the_summary_with_cluster_fields(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "x"
    assert main(["simulate", "--replicas", "2", "--placement", "round-robin,global", "--policies", "fcfs,justitia",
                 "--apps", "40", "--load", "1.5", "--out", str(out), "--no-plots"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert list(s["policies"]) == ["round-robin:fcfs", "round-robin:justitia", "global:justitia"]
    for name, e in s["policies"].items():
        assert e["replicas"] == 2 and e["placement"] == name.split(":")[0] and e["replica_busy_imbalance"] >= 1.0
        assert e["apps"] == 40
    assert main(["simulate", "--replicas", "2", "--placement", "global", "--policies", "fcfs", "--apps", "4",
                 "--out", str(out)]) == 2  # global needs justitia replicas: a clear error


def test_late_binding_answers_every_call_on_one_replica_per_app_in_global_tag_order() -> None:
    apps = _apps(150, 3, load=4.0)
    d = Dispatcher([M] * 3, IT, placement="global-late")
    order: list[tuple[float, float]] = []  # (tag of each bound app, smallest tag still queued after the bind)
    inner = d.bind

    def bind(now: float) -> list:
        got = inner(now)
        first = {d.call_app(x.call_id): x.finish_tag for x in got}
        rest = [d.finish_tag(a) for a, s in d.apps.items() if s.queued_at is not None]
        order.extend((t, min(rest, default=float("inf"))) for t in first.values())
        return got

    d.bind = bind  # type: ignore[method-assign]
    sim = SimCluster(apps, d, lambda _i: build_policy("justitia", M, IT), CFG)
    res = sim.run()
    assert sorted(r.app_id for r in res.apps) == sorted(a.app_id for a in apps)
    assert res.output_tokens == sum(c.output_tokens for a in apps for c in a.calls())
    homes = [a.app_id for e in sim.engines for a in e.apps]
    assert sorted(homes) == sorted(a.app_id for a in apps)  # each app whole on exactly one replica
    assert d.stats() == dict.fromkeys(d.stats(), 0) and d.bound_apps == len(apps)
    assert len(order) == len(apps)
    assert all(tag <= left for tag, left in order)  # nobody still waiting had a smaller tag
    assert d.queue_wait_s > 0  # at load 4.0 some apps did wait in the global queue
    assert res.extra["mean_bind_wait_s"] == pytest.approx(d.queue_wait_s / len(apps))


@pytest.mark.parametrize(("seed", "replicas"), [(1, 3), (2, 3), (3, 3), (4, 1), (5, 1)])
def test_global_placements_keep_every_app_within_the_cluster_bound_with_oracle_costs(seed: int, replicas: int) -> None:
    apps = sorted(scale_to_load(make_workload("paper-mix", 36, seed), 1.8, replicas * M / IT),
                  key=lambda a: a.arrival_s)
    metrics, _ = run_cluster(apps, ["justitia"], ["global", "global-late"], replicas, gpu="h100",
                             estimator="oracle", spill=False)
    for m in metrics:
        assert len(m.apps) == len(apps)
        assert m.apps_over_fair_bound == 0, (m.policy, seed)


def test_global_late_is_in_the_simulate_help_and_refuses_spill(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    assert "global-late" in capsys.readouterr().out
    with pytest.raises(ValueError, match="does not spill"):
        _run(_apps(4, 2), 2, "global-late", "justitia", spill=True)


def test_the_ray_cluster_refuses_late_binding_before_starting_anything() -> None:
    assert main(["cluster", "--replicas", "2", "--port", "18601", "--placement", "global-late"]) == 2
