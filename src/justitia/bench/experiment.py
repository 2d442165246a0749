"""The side-by-side experiment behind ``justitia simulate`` (issue 2 §5).

One workload (seeded, identical for every policy) is served by the simulated engine under each policy;
every run is measured against the *same* fluid fair-sharing reference — capacity ``M`` and the
engine's nominal saturated iteration time, not each run's own — so delays and bounds compare across
policies (see :mod:`justitia.bench.metrics`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from justitia.apps.model import AppSpec
from justitia.bench.metrics import PolicyMetrics, evaluate
from justitia.sim.result import RunResult


@dataclass(slots=True)
class Comparison:
    """Everything one comparison produced, in the policies' order."""

    workload: str
    apps: list[AppSpec]
    capacity_tokens: float
    iteration_s: float
    offered_load: float
    results: list[RunResult] = field(default_factory=list)
    metrics: list[PolicyMetrics] = field(default_factory=list)


def parse_policies(text: str) -> list[str]:
    """``"fcfs, vtc,justitia"`` → ``["fcfs", "vtc", "justitia"]``; empty items and repeats are errors."""
    names = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise ValueError(f"--policies must be a comma-separated list of policy names, got {text!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"policy listed more than once: {', '.join(dup)}")
    return names


def build_policy(name: str, capacity_tokens: float, iteration_s: float, estimator: str = "oracle") -> Any:
    """A fresh policy by name. ``estimator`` applies to policies that need a cost (``justitia``, ``sjf``)
    unless the name carries its own (``justitia-mlp``); a non-oracle one shows in the policy's name."""
    from justitia.core.policy import make_policy

    policy = make_policy(name, capacity_tokens, iteration_s)
    if "-" not in name and getattr(policy, "needs_cost", False) and estimator != "oracle":
        policy = make_policy(f"{name}-{estimator}", capacity_tokens, iteration_s)
    return policy


def validate_policies(names: Sequence[str], estimator: str) -> None:
    """Fail fast (before simulating anything) on an unknown policy or estimator name."""
    from justitia.core.policy import make_estimator

    make_estimator(estimator)
    for n in names:
        build_policy(n, 1.0, 1.0, estimator)


def run_comparison(
    apps: Sequence[AppSpec],
    policies: Sequence[str],
    *,
    workload: str,
    gpu: str = "h100",
    estimator: str = "oracle",
    progress: bool = True,
    console: Any = None,
) -> Comparison:
    """Simulate ``apps`` under each policy and evaluate every run against one fair-sharing reference."""
    from justitia.apps.arrivals import offered_load
    from justitia.sim import engine as sim

    config = engine_config(gpu)
    cap, it_s = reference_rate(config)
    apps = list(apps)
    load = offered_load(apps, cap / it_s) if len(apps) > 1 and len({a.arrival_s for a in apps}) > 1 else math.inf
    comp = Comparison(workload=workload, apps=apps, capacity_tokens=cap, iteration_s=it_s, offered_load=load)
    validate_policies(policies, estimator)
    total_calls = sum(a.num_calls for a in apps)
    prefill_chunk = getattr(config, "max_num_batched_tokens", None)

    def one(name: str, cb: Callable[..., None] | None) -> None:
        policy = build_policy(name, cap, it_s, estimator)
        result = sim.simulate(apps, policy, config, progress=cb)
        result.policy = getattr(policy, "name", name)
        comp.results.append(result)
        comp.metrics.append(
            evaluate(result, apps, iteration_s=it_s, capacity_tokens=cap, prefill_tokens_per_iter=prefill_chunk)
        )

    if not progress:
        for name in policies:
            one(name, None)
        return comp

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TextColumn("calls"),
        TimeElapsedColumn(), console=console, transient=False,
    ) as bar:
        tasks = {n: bar.add_task(n, total=total_calls, start=False) for n in policies}
        for name in policies:
            task = tasks[name]
            bar.start_task(task)

            def cb(done: int, total: int | None = None, _task: Any = task) -> None:
                bar.update(_task, completed=done, **({"total": total} if total else {}))

            one(name, cb)
            bar.update(task, completed=bar.tasks[task].total)
    return comp


GPU_PRESETS = {"h100": "h100-llama2-7b", "a100": "a100-llama2-7b"}


def engine_config(gpu: str) -> Any:
    """The engine configuration preset for ``gpu`` (Llama-2-7B)."""
    from justitia.sim.config import preset

    if gpu not in GPU_PRESETS:
        raise ValueError(f"unknown GPU {gpu!r}; choose one of: {', '.join(GPU_PRESETS)}")
    return preset(GPU_PRESETS[gpu])


def reference_rate(config: Any) -> tuple[float, float]:
    """``(M, iteration_s)`` of the fair-sharing reference: whole-block KV capacity and the engine's
    nominal saturated iteration time (the same for every policy of a comparison)."""
    from justitia.sim.config import nominal_iteration_s

    return float(config.kv_capacity), float(nominal_iteration_s(config))


def prepare_workload(
    workload: str, n_apps: int | None, load: float | None, seed: int, gpu: str
) -> tuple[str, list[AppSpec]]:
    """The applications to serve and the workload's display name.

    A named workload gets ``n_apps`` (default 400) applications re-timed to ``load`` (default 0.9).
    A JSONL file is replayed with its own arrival times unless ``load`` is given explicitly; ``n_apps``
    keeps its first applications by arrival.
    """
    from justitia.apps.arrivals import scale_to_load
    from justitia.apps.workloads import WORKLOADS, load_workload
    from justitia.bench.simulate_cli import DEFAULT_APPS, DEFAULT_LOAD

    if n_apps is not None and n_apps < 1:
        raise ValueError(f"--apps must be a positive integer, got {n_apps}")
    if load is not None and not (math.isfinite(load) and load > 0):
        raise ValueError(f"--load must be a positive number, got {load}")
    named = workload in WORKLOADS
    if named:
        n_apps = DEFAULT_APPS if n_apps is None else n_apps
        load = DEFAULT_LOAD if load is None else load
        name = workload
    else:
        name = Path(workload).stem
    apps = load_workload(workload, n_apps, seed)
    if load is not None:
        cap, it_s = reference_rate(engine_config(gpu))
        apps = scale_to_load(apps, load, cap / it_s)
        apps.sort(key=lambda a: (a.arrival_s, a.app_id))
    return name, apps


def write_outputs(comp: Comparison, out: Path, plots: bool = True) -> list[Path]:
    from justitia.bench.report import write_apps_csv, write_summary

    out.mkdir(parents=True, exist_ok=True)
    paths = [write_summary(out / "summary.json", comp.workload, comp.metrics), write_apps_csv(out / "apps.csv", comp.metrics)]
    if plots:
        from justitia.bench.plots import plot_act_cdf, plot_slowdown

        sub = f"{comp.workload}: {len(comp.apps)} apps, load {comp.offered_load:.2f}"
        paths.append(plot_act_cdf(comp.metrics, out / "act_cdf.png", title=f"ACT CDF — {sub}"))
        paths.append(plot_slowdown(comp.metrics, out / "slowdown.png", title=sub))
    return paths


def main_from_args(args: argparse.Namespace) -> int:
    """Handler of ``justitia simulate`` (:mod:`justitia.bench.simulate_cli`)."""
    from rich.console import Console

    from justitia.bench.report import print_table

    console = Console()
    policies = parse_policies(args.policies)
    validate_policies(policies, args.estimator)
    name, apps = prepare_workload(args.workload, args.apps, args.load, args.seed, args.gpu)
    out = Path(args.out) if args.out else Path("results") / name
    calls = sum(a.num_calls for a in apps)
    console.print(f"[bold]{name}[/bold]: {len(apps)} applications, {calls} calls, seed {args.seed}, "
                  f"GPU {args.gpu}, estimator {args.estimator}")
    comp = run_comparison(apps, policies, workload=name, gpu=args.gpu, estimator=args.estimator, console=console)
    console.print(
        f"KV capacity M = {comp.capacity_tokens:,.0f} tokens, nominal iteration {comp.iteration_s * 1e3:.2f} ms, "
        f"offered load {comp.offered_load:.2f}; fair bound (C_max/M × iteration) = "
        f"{comp.metrics[0].fair_bound_s:.2f} s"
    )
    print_table(comp.metrics, title=f"{name} — {len(apps)} apps", console=console)
    for p in write_outputs(comp, out, plots=not args.no_plots):
        console.print(f"wrote {p}")
    return 0
