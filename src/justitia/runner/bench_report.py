"""The report of one ``justitia bench`` comparison: one fair reference for all runs, tables and files.

Every run is measured against the same fluid fair-sharing reference (clock eq. 2): ``M`` = the
server's KV tokens, ``iteration_s`` = the engine's step time pooled over the runs (busy time / steps,
see :mod:`justitia.runner.bench`). A step-clocked comparison (``--clock steps``) is judged on its
step-clocked times (steps converted at the pooled step time, :func:`justitia.runner.stepclock.step_view`);
its wall-clock times are evaluated and printed beside them. Files: those of ``justitia simulate``
(``summary.json``, ``apps.csv``, plots) plus ``calls.csv``, ``bench.json`` and ``measured_<policy>.jsonl``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from justitia.runner.bench_plan import BenchPlan


def common_apps(runs: Sequence[Any]) -> set[str]:
    """The applications that finished under every policy (a failed app is compared nowhere)."""
    ids = [{a.app_id for a in r.result.apps} for r in runs]
    return set.intersection(*ids) if ids else set()


def restrict(runs: Sequence[Any], keep: set[str]) -> list[Any]:
    """Copies of ``runs`` whose result and measured specs hold only the applications in ``keep``."""
    out = []
    for r in runs:
        res = dataclasses.replace(r.result, apps=[a for a in r.result.apps if a.app_id in keep])
        out.append(dataclasses.replace(r, result=res, measured=[s for s in r.measured if s.app_id in keep]))
    return out


def pooled_step_s(runs: Sequence[Any]) -> float:
    """The engine's step time while busy, pooled over all runs: Σ busy time / Σ engine steps.

    Falls back to the pooled inter-token latency (an over-estimate under preemption) only for a server
    that does not count its steps."""
    steps = sum(r.stats.steps for r in runs)
    if steps > 0:
        return sum(r.busy_s for r in runs) / steps
    n = sum(r.stats.itl_count for r in runs)
    if n <= 0:
        raise ValueError("no engine steps measured (vllm:iteration_tokens_total and "
                         "vllm:inter_token_latency_seconds are both empty)")
    return sum(r.stats.itl_sum_s for r in runs) / n


def evaluate_runs(runs: Sequence[Any]) -> tuple[float, float, list[Any]]:
    """One reference for all runs: ``(M, iteration_s, metrics per run)`` (module docstring)."""
    from justitia.bench.metrics import evaluate

    caps = {r.stats.capacity_tokens for r in runs if math.isfinite(r.stats.capacity_tokens)}
    if len(caps) > 1:
        raise ValueError(f"servers of one comparison had different KV capacities: {sorted(caps)}")
    if not caps:
        raise ValueError("the server's /metrics did not report its KV cache size (vllm:cache_config_info)")
    cap = caps.pop()
    it_s = pooled_step_s(runs)
    metrics = [evaluate(r.result, r.measured, iteration_s=it_s, capacity_tokens=cap) for r in runs]
    return cap, it_s, metrics


def write_calls_csv(path: Path, runs: Sequence[Any]) -> Path:
    from justitia.runner.bench import call_rows

    rows = [row for r in runs for row in call_rows(r)]
    with path.open("w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return path


def _ratio(x: float, base: float | None) -> float | None:
    return x / base if base is not None and base > 0 else None


def bench_json(name: str, runs: Sequence[Any], metrics: Sequence[Any], cap: float, it_s: float) -> dict[str, Any]:
    from justitia.bench.plots import slowdowns
    from justitia.runner.bench import run_figures

    base = next((m for m in metrics if m.policy == "fcfs"), None)
    base_run = next((r for r in runs if r.policy == "fcfs"), None)
    out: dict[str, Any] = {"workload": name, "capacity_tokens": cap, "iteration_s": it_s, "policies": {}}
    for r, m in zip(runs, metrics):
        fig = run_figures(r)
        worst = max(m.apps, key=lambda a: a.delay_vs_fair_s)
        fig["mean_act_s"] = m.mean_act_s
        fig["max_delay_vs_fair_s"] = worst.delay_vs_fair_s
        fig["apps_over_fair_bound"] = int(m.apps_over_fair_bound)
        fig["worst_app"] = worst.app_id
        fig["worst_app_act_s"] = worst.act_s
        fig["worst_app_fair_act_s"] = worst.fair_act_s
        fig["worst_app_delay_vs_fair_s"] = worst.delay_vs_fair_s
        fig["worst_app_allowed_delay_s"] = worst.allowed_delay_s
        # ACT / max(fair ACT, own critical path): 1 = as fast as fair sharing could have made it
        fig["max_slowdown_vs_fair"] = float(slowdowns(m).max())
        ratio = _ratio(m.mean_act_s, base.mean_act_s if base is not None else None)
        if ratio is not None:
            fig["mean_act_vs_fcfs"] = ratio
        if base_run is not None:
            b = run_figures(base_run)["output_tok_s"]
            fig["throughput_vs_fcfs"] = fig["output_tok_s"] / b if b > 0 else math.nan
            fig["steps_vs_fcfs"] = _ratio(fig["engine_steps"], run_figures(base_run)["engine_steps"])
        out["policies"][r.policy] = fig
    return out


def add_clock_figures(data: dict[str, Any], runs: Sequence[Any], metrics: Sequence[Any],
                      wall_metrics: Sequence[Any], it_s: float) -> None:
    """Step-clocked comparison: each policy's ACT in engine steps, and its wall-clock ACT (as the run
    went) next to the verdict."""
    base_wall = next((m.mean_act_s for m in wall_metrics if m.policy == "fcfs"), None)
    data["clock"] = "steps"
    data["ref_step_s"] = runs[0].ref_step_s
    for r, m, w in zip(runs, metrics, wall_metrics):
        fig = data["policies"][r.policy]
        fig["mean_act_steps"] = m.mean_act_s / it_s
        fig["wall_mean_act_s"] = w.mean_act_s
        ratio = _ratio(w.mean_act_s, base_wall)
        if ratio is not None:
            fig["wall_mean_act_vs_fcfs"] = ratio


def print_bench_table(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    t = Table(title="throughput and call latency", title_justify="left", header_style="bold")
    for col in ("policy", "apps", "calls", "out tok/s", "tok/s / fcfs", "call p50 s", "call p99 s",
                "steps", "step ms", "preemptions", "max slowdown vs fair"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for name, f in data["policies"].items():
        ratio = f.get("throughput_vs_fcfs")
        t.add_row(name, str(f["apps"]), str(f["calls"]), f"{f['output_tok_s']:.1f}",
                  "" if ratio is None else f"{ratio:.3f}", f"{f['call_latency_p50_s']:.2f}",
                  f"{f['call_latency_p99_s']:.2f}", str(f["engine_steps"]), f"{f['step_s'] * 1e3:.1f}",
                  str(f["preemptions"]), f"{f['max_slowdown_vs_fair']:.2f}")
    console.print(t)
    if data.get("clock") == "steps":
        console.print("step-clocked (the verdict): mean ACT "
                      + ", ".join(f"{p} {f['mean_act_steps']:.0f} steps" for p, f in data["policies"].items())
                      + "; wall clock (as it ran): "
                      + ", ".join(f"{p} {f['wall_mean_act_s']:.1f} s"
                                  + (f" ({f['wall_mean_act_vs_fcfs']:.2f}× fcfs)" if "wall_mean_act_vs_fcfs" in f else "")
                                  for p, f in data["policies"].items()), highlight=False)


def _failures(runs: Sequence[Any], n_jobs: int, console: Any) -> tuple[dict[str, list[tuple[str, str]]], set[str]]:
    failures = {r.policy: [(o.job.name, o.error) for o in r.failed] for r in runs if r.failed}
    for pol, fails in failures.items():
        console.print(f"[yellow]{len(fails)} application(s) failed under {pol}: "
                      + "; ".join(f"{n}: {e}" for n, e in fails[:5]) + "[/yellow]")
    keep = common_apps(runs)
    if not keep:
        raise RuntimeError("no application finished under every policy; see the failures above")
    if failures:
        console.print(f"[yellow]comparing the {len(keep)} of {n_jobs} applications that finished under every "
                      "policy[/yellow]")
    return failures, keep


def _evaluate(plan: BenchPlan, runs: list[Any]) -> tuple[list[Any], float, float, list[Any], list[Any] | None]:
    """``(runs as judged, M, iteration_s, metrics, wall-clock metrics of a step-clocked comparison)``."""
    cap, it_s, metrics = evaluate_runs(runs)
    if plan.clock != "steps":
        return runs, cap, it_s, metrics, None
    from justitia.runner.stepclock import step_view

    stepped = [step_view(r, it_s) for r in runs]
    _, _, step_metrics = evaluate_runs(stepped)
    return stepped, cap, it_s, step_metrics, metrics


def report(plan: BenchPlan, n_jobs: int, runs: list[Any], out: Path, console: Any) -> tuple[dict[str, Any], int]:
    """Evaluate one comparison against one fair reference, print it and write every output file;
    ``(bench.json data, exit code)``."""
    from justitia.apps.arrivals import offered_load
    from justitia.apps.model import dump_jsonl
    from justitia.bench.experiment import Comparison, write_outputs
    from justitia.bench.report import print_table

    out.mkdir(parents=True, exist_ok=True)
    failures, keep = _failures(runs, n_jobs, console)
    all_runs = runs
    runs, cap, it_s, metrics, wall_metrics = _evaluate(plan, restrict(runs, keep))
    apps0 = runs[0].measured
    load = offered_load(apps0, cap / it_s) if len(apps0) > 1 else math.inf
    name = plan.name + (" (step-clocked)" if plan.clock == "steps" else "")
    comp = Comparison(workload=name, apps=apps0, capacity_tokens=cap, iteration_s=it_s, offered_load=load,
                      reference="measured", results=[r.result for r in runs], metrics=metrics)
    console.print(f"KV capacity M = {cap:,.0f} tokens, engine step {it_s * 1e3:.1f} ms (busy time / steps), "
                  f"offered load {load:.2f}; fair bound = {metrics[0].fair_bound_s:.2f} s")
    print_table(metrics, title=f"{name} — {n_jobs} real apps on the real engine", console=console)
    data = bench_json(plan.name, runs, metrics, cap, it_s)
    if wall_metrics is not None:
        add_clock_figures(data, runs, metrics, wall_metrics, it_s)
    data["failed_apps"] = {pol: [{"app_id": n, "error": e} for n, e in fails] for pol, fails in failures.items()}
    print_bench_table(data, console)
    paths = write_outputs(comp, out, plots=plan.plots)
    paths.append(write_calls_csv(out / "calls.csv", all_runs))
    for r in runs:
        paths.append(out / f"measured_{r.policy}.jsonl")
        dump_jsonl(r.measured, paths[-1])
    bench_path = out / "bench.json"
    bench_path.write_text(json.dumps(data, indent=2) + "\n")  # measured data first: never lost to a later step
    paths.append(bench_path)
    rc = 0
    if plan.compare_sim:
        rc = _compare_sim(data, runs, metrics, cap, it_s, out, console)
        bench_path.write_text(json.dumps(data, indent=2) + "\n")
    for p in paths:
        console.print(f"wrote {p}")
    return data, rc


def _compare_sim(data: dict[str, Any], runs: Sequence[Any], metrics: Sequence[Any], cap: float, it_s: float,
                 out: Path, console: Any) -> int:
    """Replay the measured runs in the simulator (``--compare-sim``); adds ``sim_vs_real`` to ``data``."""
    from justitia.runner.calibrate import compare_sim, print_agreement, real_runs_from_bench

    hits = {p: f.get("prefix_cache_hit_rate", 0.0) for p, f in data["policies"].items()}
    if any(h > 0.05 for h in hits.values()):
        console.print("[yellow]the server's prefix cache served "
                      + ", ".join(f"{p} {h:.0%}" for p, h in hits.items())
                      + " of prompt tokens; the simulator has none, so expect it to be slower "
                      "(start the server with --no-enable-prefix-caching)[/yellow]")
    try:
        agreement = compare_sim(real_runs_from_bench(runs, metrics), cap, it_s)
    except (ValueError, FileNotFoundError, RuntimeError, AttributeError) as e:
        console.print(f"[red]sim-vs-real comparison failed: {type(e).__name__}: {e}[/red] "
                      f"(the real results are written; rerun it later with `justitia calibrate --compare {out}`)")
        return 1
    data["sim_vs_real"] = agreement
    print_agreement(agreement, console)
    return 0
