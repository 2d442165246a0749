"""``justitia simulate --replicas N --placement P``: the simulated cluster side by side (DESIGN §7).

Every (placement, policy) pair serves the same workload on ``N`` simulated replicas
(:class:`~justitia.cluster.simcluster.SimCluster`); ``--load`` is relative to the cluster's rate
``N · M / iteration`` (``N`` times one engine's).

The cluster reference and its bound
-----------------------------------
The reference is the single server's (bench metrics), over the cluster: weighted GPS over applications on
the summed KV capacity ``N · M`` at ``N`` times one engine's measured rate — one global
:class:`~justitia.core.clock.FairClock`, fed the true costs. Two things a cluster cannot do that the
reference assumes, so the single-server allowance (bound eq. 3: ``C_max / M · it`` + own critical path)
grows by two terms, identical for every placement:

* **Per-replica packetisation.** Applications are the packets and each replica serves its own:
  the PGPS term is one *replica's*, ``C_max / M · it`` (not ``C_max / (N·M) · it``): an application
  may wait for the largest one on its replica.
* **Pinning.** An application on one replica can never hold more than that replica's memory: alone in
  the reference it would get ``N · M`` tokens, pinned only ``M``. Its service then takes up to
  ``C_i / M · it`` instead of ``C_i / (N·M) · it``, so the allowance grows by
  ``C_i · it · (1/M − 1/(N·M))`` (0 for ``N = 1``: the single-server bound).

* **Per-replica fragmentation.** Bound eq. 5's blocking term (bench metrics, "Fragmentation") is the
  cache an application's largest prompt ``p_i`` can leave unused while it waits first in line: on one
  replica it waits for room in *that replica's* ``M``, so the term is ``p_i / M · D_max``, not the
  ``p_i / (N·M) · D_max`` that evaluating over the pooled capacity gives (0 when ``p_i`` fits beside
  every other application's calls at once in ``M``).

    allowed_i = C_max / M · it + C_i · it · (1/M − 1/(N·M)) + critical_path_i
                + p_i / M · D_max                                                     (cluster bound)

For ``N = 1`` this is bound eq. 5 exactly. ``fair_bound_s`` in ``summary.json`` is the first term;
``apps_over_fair_bound`` counts apps past the whole allowance. Each policy entry adds ``replicas``, ``placement`` and ``replica_busy_imbalance``
(max / mean busy time of the replicas).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from justitia.apps.model import AppSpec
from justitia.bench.metrics import PolicyMetrics, evaluate, fragmentation_terms


def cluster_bound(m: PolicyMetrics, apps: Sequence[AppSpec], replica_tokens: float, replicas: int,
                  iteration_s: float, prefill_tokens_per_iter: int | None = None,
                  path_iteration_s: float | None = None) -> None:
    """Widen ``m``'s single-server allowances (evaluated over ``N · M`` with workload ``apps``, chunk
    ``prefill_tokens_per_iter`` and ``path_iteration_s`` as in :func:`~justitia.bench.metrics.evaluate`)
    to the cluster bound (module doc): one replica's packet term, the pinning term, and the
    fragmentation term over one replica's ``M`` in place of the pooled ``N · M``'s."""
    c_max = max((a.cost for a in m.apps), default=0.0)
    total = replica_tokens * replicas
    packet = c_max / replica_tokens * iteration_s
    path_it = iteration_s if path_iteration_s is None else path_iteration_s
    pooled = fragmentation_terms(apps, total, path_it, prefill_tokens_per_iter)
    pinned_frag = fragmentation_terms(apps, replica_tokens, path_it, prefill_tokens_per_iter)
    for a in m.apps:
        pinned = a.cost * iteration_s * (1.0 / replica_tokens - 1.0 / total)
        frag = pinned_frag.get(a.app_id, 0.0) - pooled.get(a.app_id, 0.0)
        a.allowed_delay_s += packet - m.fair_bound_s + pinned + frag
    m.fair_bound_s = packet


def run_cluster(apps: list[AppSpec], policies: list[str], placements: list[str], replicas: int, *, gpu: str,
                estimator: str, spill: bool, console: Any = None) -> tuple[list[PolicyMetrics], dict[str, Any]]:
    """Simulate every (placement, policy) pair; metrics against one cluster reference, and run facts."""
    from justitia.bench.experiment import build_policy, engine_config, measure_iteration_s, reference_rate
    from justitia.cluster.dispatcher import Dispatcher
    from justitia.cluster.simcluster import SimCluster
    from justitia.core.policy import split_policy_name

    config = engine_config(gpu)
    cap, _nominal = reference_rate(config)
    it_s, path_it = measure_iteration_s(apps, config)
    chunk = getattr(config, "max_num_batched_tokens", None)
    out: list[PolicyMetrics] = []
    facts: dict[str, Any] = {"iteration_s": it_s, "capacity_tokens": cap, "runs": {}}
    for placement, pol in runnable_pairs(placements, policies):
        suffix = split_policy_name(pol)[1] or estimator
        d = Dispatcher([cap] * replicas, it_s, placement=placement, estimator=suffix, spill=spill)
        t0 = time.perf_counter()
        result = SimCluster(apps, d, lambda _i, p=pol: build_policy(p, cap, it_s, estimator), config).run()
        wall = time.perf_counter() - t0
        name = pol if len(placements) == 1 else f"{placement}:{pol}"
        result.policy = name
        m = evaluate(result, apps, iteration_s=it_s, capacity_tokens=cap * replicas,
                     prefill_tokens_per_iter=chunk, path_iteration_s=path_it)
        cluster_bound(m, apps, cap, replicas, it_s, chunk, path_it)
        m.extra.update({"replicas": replicas, "placement": placement, "spill": spill})
        out.append(m)
        reqs = sum(a.num_calls for a in apps)
        facts["runs"][name] = {"wall_s": wall, "requests": reqs}
        if console is not None:
            console.print(f"{name}: {reqs:,} requests on {replicas} replicas simulated in {wall:.1f} s "
                          f"({reqs / wall:,.0f} requests/s)", highlight=False)
    return out, facts


def runnable_pairs(placements: list[str], policies: list[str]) -> list[tuple[str, str]]:
    """Every (placement, policy) pair, except a global-tag placement (``global``, ``global-late``) with a
    replica policy that cannot follow its tags."""
    from justitia.core.policy import split_policy_name

    from justitia.cluster.placement import make_placement

    pairs = [(pl, p) for pl in placements for p in policies
             if not make_placement(pl).global_tags or split_policy_name(p)[0] == "justitia"]
    if not pairs:
        raise ValueError(f"placement {' / '.join(repr(p) for p in placements)} hands each call the application's "
                         f"global finish tag, which only the justitia policy orders by; got --policies "
                         f"{','.join(policies)}")
    return pairs


def summary_with_cluster(workload: str, metrics: list[PolicyMetrics]) -> dict[str, Any]:
    """``summary.json``'s object, each policy entry with ``replicas``, ``placement``, ``replica_busy_imbalance``."""
    from justitia.bench.report import summary_dict

    s = summary_dict(workload, metrics)
    for m in metrics:
        s["policies"][m.policy].update({"replicas": int(m.extra["replicas"]), "placement": str(m.extra["placement"]),
                                        "replica_busy_imbalance": float(m.extra["replica_busy_imbalance"])})
    return s


def main_from_args(args: argparse.Namespace) -> int:
    """``justitia simulate`` with ``--replicas``."""
    import json

    from rich.console import Console

    from justitia.apps.arrivals import scale_to_load
    from justitia.bench.experiment import engine_config, parse_policies, prepare_workload, reference_rate, validate_policies
    from justitia.bench.report import print_table, write_apps_csv
    from justitia.bench.defaults import DEFAULT_APPS, DEFAULT_LOAD
    from justitia.cluster.placement import make_placement

    console = Console()
    n = int(args.replicas)
    if n < 1:
        raise ValueError(f"--replicas must be >= 1, got {n}")
    policies = parse_policies(args.policies)
    placements = [p.strip() for p in str(args.placement).split(",")]
    for p in placements:
        make_placement(p)
    validate_policies(policies, args.estimator)
    runnable_pairs(placements, policies)
    n_apps = args.apps if args.apps is not None else DEFAULT_APPS * n
    name, apps = prepare_workload(args.workload, n_apps, args.load, args.seed, args.gpu)
    load = args.load if args.load is not None else DEFAULT_LOAD
    cap, nominal = reference_rate(engine_config(args.gpu))
    apps = sorted(scale_to_load(apps, load, n * cap / nominal), key=lambda a: (a.arrival_s, a.app_id))
    console.print(f"[bold]{name}[/bold]: {len(apps)} applications, {sum(a.num_calls for a in apps)} calls, "
                  f"{n} replicas, placement {', '.join(placements)}, load {load} of the cluster, seed {args.seed}")
    metrics, facts = run_cluster(apps, policies, placements, n, gpu=args.gpu, estimator=args.estimator,
                                 spill=bool(args.spill), console=console)
    print_table(metrics, title=f"{name} — {len(apps)} apps on {n} replicas", console=console)
    for m in metrics:
        wait = m.extra.get("mean_bind_wait_s")
        console.print(f"{m.policy}: replica busy imbalance (max/mean) {m.extra['replica_busy_imbalance']:.3f}"
                      + (f"; mean wait in the global queue before binding {wait:.2f} s" if wait is not None else ""),
                      highlight=False)
    out = Path(args.out) if args.out else Path("results") / f"{name}-x{n}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary_with_cluster(name, metrics), indent=2) + "\n")
    write_apps_csv(out / "apps.csv", metrics)
    console.print(f"wrote {out / 'summary.json'}, {out / 'apps.csv'}")
    return 0
