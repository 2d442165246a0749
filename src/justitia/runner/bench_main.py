"""``justitia bench``: one seeded stream of real applications served once per policy, side by side.

Every policy serves the *same* stream on a fresh server (same model, same KV capacity): the plan
(:mod:`.bench_plan`) is built once from the arguments, the servers come from one factory and run where
:mod:`.bench_servers` puts them, and every run is measured against one fluid fair-sharing reference
(clock eq. 2, the cost of eq. 1; :mod:`.bench_report`). ``--repeat N`` runs the whole comparison N
times, the policy order alternating (:mod:`.bench_repeat`); ``--clock steps`` paces the stream by the
engine's own step counter (:mod:`.stepclock`), so the verdict does not depend on the host's speed.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from justitia.runner.bench_plan import BenchPlan, plan_from_args


def make_jobs(plan: BenchPlan) -> list[Any]:
    """The stream: real applications (:func:`justitia.runner.realapps.make_stream`) or the workload
    file's applications replayed with synthetic prompts."""
    from justitia.runner.bench import plan_job, spec_job

    if plan.workload is not None:
        from justitia.apps.model import load_jsonl

        specs = load_jsonl(plan.workload)
        if plan.n_apps is not None:
            specs = specs[: plan.n_apps]
        return [spec_job(s, plan.seed, hint=plan.hint) for s in specs]
    from justitia.runner.realapps import make_stream

    assert plan.n_apps is not None
    return [plan_job(p, hint=plan.hint) for p in make_stream(plan.n_apps, plan.rate, plan.seed, plan.sizes)]


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=140)  # logs and CI: keep the tables readable


def describe(plan: BenchPlan, n_jobs: int, layout: tuple[bool, list[int | None]]) -> str:
    """One line saying what will run where."""
    side_by_side, cores = layout
    if plan.endpoint:
        where = f"endpoint {plan.endpoint}"
    elif side_by_side:
        where = f"policies side by side, engines on cores {cores}"
    else:
        where = "policies one after another" + (f", engines on core {cores[0]}" if cores and cores[0] is not None else "")
    if not plan.endpoint and not plan.server.prefix_caching:
        where += ", no prefix cache (as in the simulator)"
    if plan.clock == "steps":
        where += f", step-clocked (arrivals at engine step t / {plan.step_s * 1e3:g} ms)"
    return (f"[bold]{plan.name}[/bold]: {n_jobs} applications, seed {plan.seed}, "
            + (where if plan.endpoint else f"fresh server per policy, KV {plan.server.kv_tokens} tokens, {where}")
            + (f", {plan.repeat} repeats (policy order alternating)" if plan.repeat > 1 else ""))


def run_repeats(plan: BenchPlan, jobs: list[Any], console: Any) -> tuple[list[dict[str, Any]], int]:
    """Each repeat: the stream under every policy (order alternating), evaluated and written to its
    folder (``OUT`` for one repeat, ``OUT/repK`` for several); ``(bench.json data per repeat, exit code)``."""
    from justitia.runner.bench_report import report
    from justitia.runner.bench_servers import engine_cores, execute, usable_cores

    layout = engine_cores(len(plan.policies), usable_cores(), plan.sequential)
    console.print(describe(plan, len(jobs), layout))
    rc = 0
    reps: list[dict[str, Any]] = []
    for k in range(plan.repeat):
        # alternate the order, so no policy always runs first (or last) on the host
        order = list(plan.policies) if k % 2 == 0 else list(reversed(plan.policies))
        label = f"{k + 1}/{plan.repeat} " if plan.repeat > 1 else ""
        folder = plan.out if plan.repeat == 1 else plan.out / f"rep{k + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        runs = execute(plan, order, jobs, folder, console, layout, label)
        runs.sort(key=lambda r: plan.policies.index(r.policy))
        if plan.repeat > 1:
            console.rule(f"repeat {k + 1} of {plan.repeat} (order {', '.join(order)})")
        data, rc_k = report(plan, len(jobs), runs, folder, console)
        rc = max(rc, rc_k)
        data["order"] = order
        reps.append(data)
    return reps, rc


def main(plan: BenchPlan) -> int:
    """Run the bench the plan describes; exit code 0, or 1 if a ``--compare-sim`` replay failed."""
    t_start = time.monotonic()
    console = _console()
    jobs = make_jobs(plan)
    plan.out.mkdir(parents=True, exist_ok=True)
    reps, rc = run_repeats(plan, jobs, console)
    wall = time.monotonic() - t_start
    path = plan.out / "bench.json"
    if plan.repeat > 1:
        from justitia.runner.bench_repeat import aggregate, print_aggregate

        agg = aggregate(reps)
        agg["wall_s"] = wall
        path.write_text(json.dumps(agg, indent=2) + "\n")
        print_aggregate(agg, console)
        console.print(f"wrote {path} (each repeat's full outputs: {plan.out}/rep1 … rep{plan.repeat})")
    else:
        reps[0]["wall_s"] = wall
        path.write_text(json.dumps(reps[0], indent=2) + "\n")
    console.print(f"bench wall time {wall:.0f} s")
    return rc


def main_from_args(args: argparse.Namespace) -> int:
    """Handler of ``justitia bench`` (:mod:`justitia.runner.bench_cli`)."""
    return main(plan_from_args(args))

