"""The side-by-side experiment behind ``justitia simulate`` (issue 2 §5).

One workload (seeded, identical for every policy) is served by the simulated engine under each policy;
every run is measured against the *same* fluid fair-sharing reference — capacity ``M`` and one
reference iteration time, not each run's own — so delays and bounds compare across policies (see
:mod:`justitia.bench.metrics`).

The reference's service rate (``reference="measured"``, the default). The fluid reference serves
``M / iteration_s`` token·iterations per second. The engine's *nominal* iteration
(:func:`justitia.sim.config.nominal_iteration_s`: a decode-only iteration reading all ``M`` KV tokens)
overstates what the engine delivers: real saturated iterations also compute prefill chunks (prompt
tokens cost time but no token·iterations, cost eq. 1) and the cache is never 100 % full (block
rounding, admission needing the whole prompt to fit, recompute after preemption). On ``paper-mix`` /
H100 the engine delivers ~0.7 of the nominal rate, so a nominal reference runs ahead of *every*
policy and the delay "beyond fair" grows with time for reasons no scheduler controls. So we measure
the rate once per comparison — the workload (up to :data:`CALIBRATION_APPS` of its apps) all arriving
at t=0 under ``fcfs``, a saturated engine: ``rate = Σ cost / busy time`` — and use
``iteration_s = M / rate`` for the reference, the bound and the policies' own clocks (the vLLM
plugin likewise runs its clock on the measured iteration time). ``reference="nominal"`` keeps the
nominal iteration.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from justitia.apps.model import AppSpec
from justitia.bench.defaults import DEFAULT_APPS, DEFAULT_LOAD
from justitia.bench.metrics import PolicyMetrics, evaluate
from justitia.sim.result import RunResult


CALIBRATION_APPS = 600
REFERENCES = ("measured", "nominal")


@dataclass(slots=True)
class Comparison:
    """Everything one comparison produced, in the policies' order.

    ``iteration_s`` is the reference's (measured or nominal, see the module docstring);
    ``offered_load`` is relative to ``M / nominal_iteration_s`` (as ``--load``), ``effective_load``
    relative to ``M / iteration_s``.
    """

    workload: str
    apps: list[AppSpec]
    capacity_tokens: float
    iteration_s: float
    offered_load: float
    nominal_iteration_s: float = 0.0
    path_iteration_s: float = 0.0  # real iteration time used for critical paths (bound eq. 2)
    reference: str = "measured"
    effective_load: float = 0.0
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
    from justitia.policies import make_policy, with_estimator

    return make_policy(with_estimator(name, estimator), capacity_tokens, iteration_s)


def validate_policies(names: Sequence[str], estimator: str) -> None:
    """Fail fast (before simulating anything) on an unknown policy or estimator name."""
    from justitia.predict.estimators import make_estimator

    make_estimator(estimator)
    for n in names:
        build_policy(n, 1.0, 1.0, estimator)


def measure_iteration_s(apps: Sequence[AppSpec], config: Any, seed: int = 0) -> tuple[float, float]:
    """``(M / rate, saturated iteration)``: ``rate = Σ cost / busy time`` of a saturated engine — (up to
    :data:`CALIBRATION_APPS` of) ``apps`` all arriving at t=0, served by ``fcfs`` (module docstring) —
    and the mean real duration of its iterations while the cache was ≥ 90 % full (for critical paths)."""
    import dataclasses
    import random

    from justitia.sim import engine as sim

    cap, nominal = reference_rate(config)
    sample = list(apps)
    if len(sample) > CALIBRATION_APPS:
        sample = random.Random(seed).sample(sample, CALIBRATION_APPS)
    burst = [dataclasses.replace(a, arrival_s=0.0) for a in sample]
    result = sim.simulate(burst, build_policy("fcfs", cap, nominal), config)
    busy = float(result.extra.get("busy_s", result.makespan_s)) or result.makespan_s
    rate = sum(a.cost for a in burst) / busy
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"could not measure the engine's service rate (busy {busy!r} s)")
    sat = float(result.extra.get("saturated_iteration_s", 0.0))
    if not (sat > 0 and math.isfinite(sat)):  # the cache never filled: every iteration counts
        sat = busy / result.iterations if result.iterations else nominal
    return cap / rate, sat


def run_comparison(
    apps: Sequence[AppSpec],
    policies: Sequence[str],
    *,
    workload: str,
    gpu: str = "h100",
    estimator: str = "oracle",
    reference: str = "measured",
    progress: bool = True,
    console: Any = None,
    preempt_for_admission: bool = False,
) -> Comparison:
    """Simulate ``apps`` under each policy and evaluate every run against one fair-sharing reference.
    ``preempt_for_admission`` switches the engine's mode for the policies' runs; the calibration (the
    reference's rate) always runs vLLM's default engine, so both modes share one reference."""
    from justitia.apps.arrivals import offered_load
    from justitia.sim import engine as sim

    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; choose one of: {', '.join(REFERENCES)}")
    validate_policies(policies, estimator)
    config = engine_config(gpu)
    run_config = config.replace(preempt_for_admission=True) if preempt_for_admission else config
    cap, nominal = reference_rate(config)
    apps = list(apps)
    spread = len(apps) > 1 and len({a.arrival_s for a in apps}) > 1
    load = offered_load(apps, cap / nominal) if spread else math.inf
    comp = Comparison(workload=workload, apps=apps, capacity_tokens=cap, iteration_s=nominal, offered_load=load,
                      nominal_iteration_s=nominal, path_iteration_s=nominal, reference=reference)
    total_calls = sum(a.num_calls for a in apps)
    prefill_chunk = getattr(config, "max_num_batched_tokens", None)

    def calibrate() -> None:
        if reference == "measured":
            comp.iteration_s, comp.path_iteration_s = measure_iteration_s(apps, config)
        comp.effective_load = load * comp.iteration_s / nominal

    def one(name: str, cb: Callable[..., None] | None) -> None:
        policy = build_policy(name, cap, comp.iteration_s, estimator)
        result = sim.simulate(apps, policy, run_config, progress=cb)
        result.policy = policy.name
        comp.results.append(result)
        comp.metrics.append(evaluate(result, apps, iteration_s=comp.iteration_s, capacity_tokens=cap,
                                     prefill_tokens_per_iter=prefill_chunk, path_iteration_s=comp.path_iteration_s))

    if not progress:
        calibrate()
        for name in policies:
            one(name, None)
        return comp

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TextColumn("calls"),
        TimeElapsedColumn(), console=console, transient=False,
    ) as bar:
        cal = bar.add_task("calibrate", total=1) if reference == "measured" else None
        tasks = {n: bar.add_task(n, total=total_calls, start=False) for n in policies}
        calibrate()
        if cal is not None:
            bar.update(cal, completed=1)
        for name in policies:
            task = tasks[name]
            bar.start_task(task)

            def cb(done: int, total: int | None = None, _task: Any = task) -> None:
                bar.update(_task, completed=done, **({"total": total} if total else {}))

            one(name, cb)
            bar.update(task, completed=bar.tasks[task].total)
    return comp


GPU_PRESETS = {"h100": "h100-llama2-7b", "a100": "a100-llama2-7b", "a100-40gb": "a100-40gb-llama-7b"}


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
    workload: str, n_apps: int | None, load: float | None, seed: int, gpu: str, density: float | None = None
) -> tuple[str, list[AppSpec]]:
    """The applications to serve and the workload's display name.

    A named workload gets ``n_apps`` (default 400) applications re-timed to ``load`` (default 0.9).
    With ``density`` (the paper's 1×/2×/3×; ``paper-suite``'s default is 1 unless ``load`` is given)
    it gets ``n_apps`` (default 300) applications at Mooncake submission times, ``300 / (18 min /
    density)`` per second, not re-timed. A JSONL file is replayed with its own arrival times unless
    ``load`` is given explicitly; ``n_apps`` keeps its first applications by arrival.
    """
    from justitia.apps.arrivals import scale_to_load
    from justitia.apps.workloads import WORKLOADS, load_workload

    if n_apps is not None and n_apps < 1:
        raise ValueError(f"--apps must be a positive integer, got {n_apps}")
    if load is not None and not (math.isfinite(load) and load > 0):
        raise ValueError(f"--load must be a positive number, got {load}")
    named = workload in WORKLOADS
    if density is not None and load is not None:
        raise ValueError("--density and --load both set the arrivals: give one")
    if workload == "paper-suite" and load is None and density is None:
        density = 1.0
    if density is not None:
        from justitia.apps.arrivals import PAPER_AGENTS, density_rate
        from justitia.apps.workloads import make_workload

        if not named:
            raise ValueError(f"--density needs a named workload, got the file {workload!r}")
        if not (math.isfinite(density) and density > 0):
            raise ValueError(f"--density must be a positive number, got {density}")
        n = PAPER_AGENTS if n_apps is None else n_apps
        return workload, make_workload(workload, n, seed, rate=density_rate(density), arrivals="mooncake")
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


def plot_subtitle(comp: Comparison) -> str:
    """The plots' subtitle: workload, apps and load. A simulated comparison's offered load is relative
    to the nominal rate and its effective load to the reference's; a real one (``justitia bench``) has
    only the measured rate, so its offered load is already relative to it (``effective_load`` 0)."""
    head = f"{comp.workload}: {len(comp.apps)} apps, load {comp.offered_load:.2f}"
    if comp.effective_load > 0:
        return f"{head} ({comp.effective_load:.2f} of the {comp.reference} service rate)"
    return f"{head} (of the {comp.reference} service rate)"


def write_outputs(comp: Comparison, out: Path, plots: bool = True) -> list[Path]:
    from justitia.bench.report import write_apps_csv, write_summary

    out.mkdir(parents=True, exist_ok=True)
    paths = [write_summary(out / "summary.json", comp.workload, comp.metrics), write_apps_csv(out / "apps.csv", comp.metrics)]
    if plots:
        from justitia.bench.plots import plot_act_cdf, plot_slowdown

        sub = plot_subtitle(comp)
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
    name, apps = prepare_workload(args.workload, args.apps, args.load, args.seed, args.gpu,
                                  getattr(args, "density", None))
    out = Path(args.out) if args.out else Path("results") / name
    calls = sum(a.num_calls for a in apps)
    console.print(f"[bold]{name}[/bold]: {len(apps)} applications, {calls} calls, seed {args.seed}, "
                  f"GPU {args.gpu}, estimator {args.estimator}")
    comp = run_comparison(apps, policies, workload=name, gpu=args.gpu, estimator=args.estimator,
                          reference=args.reference, console=console,
                          preempt_for_admission=bool(getattr(args, "preempt_for_admission", False)))
    console.print(
        f"KV capacity M = {comp.capacity_tokens:,.0f} tokens; iteration: nominal {comp.nominal_iteration_s * 1e3:.1f} ms, "
        f"reference ({comp.reference}) {comp.iteration_s * 1e3:.1f} ms, saturated {comp.path_iteration_s * 1e3:.1f} ms; offered load {comp.offered_load:.2f} "
        f"(vs M/nominal), {comp.effective_load:.2f} vs the reference rate; "
        f"fair bound C_max/M × iteration = {comp.metrics[0].fair_bound_s:.2f} s",
        highlight=False,
    )
    print_table(comp.metrics, title=f"{name} — {len(apps)} apps", console=console)
    floor = sum(a.critical_path_s for a in comp.metrics[0].apps) / len(apps)
    base = next((m for m in comp.metrics if m.policy == "fcfs"), None)
    if base is not None and 0 < floor < base.mean_act_s:  # else the engine was not saturated: no floor
        console.print(f"Floor: the apps' mean critical path at the saturated iteration is {floor:.1f} s = "
                      f"{floor / base.mean_act_s:.2f}× fcfs's mean ACT; no policy gets far below it while the "
                      "engine stays saturated.", style="dim", highlight=False)
    for p in write_outputs(comp, out, plots=not args.no_plots):
        console.print(f"wrote {p}")
    return 0
