"""The side-by-side real benchmark behind ``justitia bench`` (issue 5 §3).

Every policy serves the *same* seeded stream on a fresh server (same model, same KV capacity), and all
runs are measured against one fair-sharing reference: ``M`` = the server's KV tokens, ``iteration_s``
= the mean inter-token latency pooled over all runs (see :mod:`justitia.runner.bench`). The report is
the one of ``justitia simulate`` (``summary.json``, ``apps.csv``, plots) plus ``calls.csv`` (every
call's latency and tokens), ``bench.json`` (throughput, per-call latency p50/p99, server figures) and
``measured_<policy>.jsonl`` (the stream as it really ran, in the workload format, for the simulator).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

QUICK = {"apps": 10, "rate": 0.5, "sizes": "quick"}
FULL = {"apps": 40, "rate": 0.25, "sizes": "full"}


PORT_RANGE = (8200, 8300)  # started servers pick a free port here (justitia serve's own default is 8000-8100)


@contextlib.contextmanager
def started_server(policy: str, kv_tokens: int, port: int | None, model: str | None, log: Any = print,
                   log_file: Path | None = None, max_num_seqs: int | None = None,
                   core: int | None = None) -> Iterator[str]:
    """A fresh ``justitia serve`` (:class:`justitia.vllm.serve.Server`) for one policy; yields its URL
    once ``/health`` answers and stops it (its whole process group) afterwards. ``core`` pins the
    engine's compute threads to one CPU core (``VLLM_CPU_OMP_THREADS_BIND``)."""
    from justitia.vllm.serve import Server

    env = {"VLLM_CPU_OMP_THREADS_BIND": str(core), "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"} if core is not None else None
    with Server(model, policy=policy, kv_tokens=kv_tokens, port=port, port_range=PORT_RANGE, log=log,
                log_file=log_file, max_num_seqs=max_num_seqs, env=env) as srv:
        yield str(srv.url)


def free_ports(n: int, first: int | None = None) -> list[int]:
    """``n`` distinct free ports in :data:`PORT_RANGE` (from ``first`` on when given)."""
    from justitia.vllm.serve import port_is_free

    lo = first if first is not None else PORT_RANGE[0]
    ports = [p for p in range(lo, PORT_RANGE[1]) if port_is_free("127.0.0.1", p)][:n]
    if len(ports) < n:
        raise ValueError(f"need {n} free ports in {lo}-{PORT_RANGE[1] - 1}, found {len(ports)}")
    return ports


def run_parallel(policies: Sequence[str], jobs: Sequence[Any], args: argparse.Namespace, out: Path,
                 bar: Any, tasks: dict[str, Any]) -> list[Any]:
    """Every policy at once, each on a fresh server pinned to its own CPU core; the streams start
    together (a barrier after all servers are ready), so whatever else loads the machine loads every
    policy alike: the side-by-side comparison the standards ask for on a shared, noisy host."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from justitia.runner.bench import run_stream

    ports = free_ports(len(policies), args.port)
    barrier = threading.Barrier(len(policies))

    def one(i: int, pol: str) -> Any:
        task = tasks[pol]
        try:
            with started_server(pol, args.kv_tokens, ports[i], args.model, log=bar.console.log,
                                log_file=out / f"server_{pol}.log", core=i) as url:
                bar.update(task, description=f"{pol} (ready)")

                def ready() -> None:
                    barrier.wait(timeout=900)
                    bar.update(task, description=pol)

                return run_stream(jobs, url, pol, on_done=lambda _o: bar.advance(task),
                                  probe_first=args.compare_sim, ready=ready)
        except BaseException:
            barrier.abort()  # do not leave the other policies waiting for a server that never comes
            raise

    with ThreadPoolExecutor(len(policies)) as ex:
        futs = [ex.submit(one, i, p) for i, p in enumerate(policies)]
        return [f.result() for f in futs]


def _jobs(args: argparse.Namespace, apps: int, rate: float, sizes: str) -> tuple[str, list[Any]]:
    from justitia.runner.bench import plan_job, spec_job

    if args.workload:
        from justitia.apps.model import load_jsonl

        specs = load_jsonl(args.workload)
        if args.apps is not None:
            specs = specs[: args.apps]
        return Path(args.workload).stem, [spec_job(s, args.seed, hint=not args.no_hint) for s in specs]
    from justitia.runner.realapps import make_stream

    plans = make_stream(apps, rate, args.seed, sizes)
    return f"real-mix-{sizes}", [plan_job(p, hint=not args.no_hint) for p in plans]


def evaluate_runs(runs: Sequence[Any]) -> tuple[float, float, list[Any]]:
    """One reference for all runs: ``(M, iteration_s, metrics per run)``."""
    from justitia.bench.metrics import evaluate

    caps = {r.stats.capacity_tokens for r in runs if math.isfinite(r.stats.capacity_tokens)}
    if len(caps) > 1:
        raise ValueError(f"servers of one comparison had different KV capacities: {sorted(caps)}")
    if not caps:
        raise ValueError("the server's /metrics did not report its KV cache size (vllm:cache_config_info)")
    cap = caps.pop()
    n = sum(r.stats.itl_count for r in runs)
    if n <= 0:
        raise ValueError("no decode iterations measured (vllm:inter_token_latency_seconds is empty)")
    it_s = sum(r.stats.itl_sum_s for r in runs) / n
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


def bench_json(name: str, runs: Sequence[Any], metrics: Sequence[Any], cap: float, it_s: float) -> dict[str, Any]:
    from justitia.bench.plots import slowdowns
    from justitia.runner.bench import run_figures

    base = next((m for m in metrics if m.policy == "fcfs"), None)
    base_run = next((r for r in runs if r.policy == "fcfs"), None)
    out: dict[str, Any] = {"workload": name, "capacity_tokens": cap, "iteration_s": it_s, "policies": {}}
    for r, m in zip(runs, metrics):
        fig = run_figures(r)
        worst = max(m.apps, key=lambda a: a.delay_vs_fair_s)
        fig["worst_app"] = worst.app_id
        fig["worst_app_act_s"] = worst.act_s
        fig["worst_app_fair_act_s"] = worst.fair_act_s
        fig["worst_app_delay_vs_fair_s"] = worst.delay_vs_fair_s
        fig["worst_app_allowed_delay_s"] = worst.allowed_delay_s
        # ACT / max(fair ACT, own critical path): 1 = as fast as fair sharing could have made it
        fig["max_slowdown_vs_fair"] = float(slowdowns(m).max())
        if base is not None and base.mean_act_s > 0:
            fig["mean_act_vs_fcfs"] = m.mean_act_s / base.mean_act_s
        if base_run is not None:
            b = run_figures(base_run)["output_tok_s"]
            fig["throughput_vs_fcfs"] = fig["output_tok_s"] / b if b > 0 else math.nan
        out["policies"][r.policy] = fig
    return out


def print_bench_table(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    t = Table(title="throughput and call latency", title_justify="left", header_style="bold")
    for col in ("policy", "apps", "calls", "out tok/s", "tok/s / fcfs", "call p50 s", "call p99 s",
                "iteration ms", "preemptions", "max slowdown vs fair"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for name, f in data["policies"].items():
        ratio = f.get("throughput_vs_fcfs")
        t.add_row(name, str(f["apps"]), str(f["calls"]), f"{f['output_tok_s']:.1f}",
                  "" if ratio is None else f"{ratio:.3f}", f"{f['call_latency_p50_s']:.2f}",
                  f"{f['call_latency_p99_s']:.2f}", f"{f['mean_itl_s'] * 1e3:.1f}", str(f["preemptions"]),
                  f"{f['max_slowdown_vs_fair']:.2f}")
    console.print(t)


def main_from_args(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from justitia.apps.arrivals import offered_load
    from justitia.apps.model import dump_jsonl
    from justitia.bench.experiment import Comparison, parse_policies, write_outputs
    from justitia.bench.report import print_table
    from justitia.runner.bench import run_stream

    t_start = time.monotonic()
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # logs and CI: keep the tables readable
    policies = parse_policies(args.policies)
    if args.endpoint and len(policies) != 1:
        raise ValueError("with --endpoint the server runs one policy: give --policies one label (e.g. --policies fcfs)")
    if not args.endpoint:
        from justitia.core.policy import policy_names

        for p in policies:
            if p.partition("-")[0] not in policy_names():
                raise ValueError(f"unknown policy {p!r}; choose from: {', '.join(policy_names())}")
    preset = QUICK if args.quick else FULL
    n_apps = preset["apps"] if args.apps is None else args.apps
    rate = preset["rate"] if args.rate is None else args.rate
    sizes = args.sizes or preset["sizes"]
    if args.kv_tokens < 16:
        raise ValueError(f"--kv-tokens must be >= 16, got {args.kv_tokens}")
    name, jobs = _jobs(args, n_apps, rate, sizes)
    out = Path(args.out) if args.out else Path("results") / "bench"
    out.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]{name}[/bold]: {len(jobs)} applications, seed {args.seed}, "
                  + (f"endpoint {args.endpoint}" if args.endpoint else f"fresh server per policy, KV {args.kv_tokens} tokens"
                     + ("" if args.sequential else ", policies side by side (one CPU core each)")))
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    parallel = not args.endpoint and not args.sequential and 1 < len(policies) <= cores
    if not args.endpoint and not args.sequential and len(policies) > cores:
        console.print(f"[yellow]{len(policies)} policies > {cores} CPU cores: running them one after another[/yellow]")
    runs = []
    with Progress(TextColumn("[bold]{task.description:<18}"), BarColumn(), MofNCompleteColumn(), TextColumn("apps"),
                  TimeElapsedColumn(), console=console) as bar:
        tasks = {pol: bar.add_task(pol if args.endpoint else f"{pol} (starting)", total=len(jobs)) for pol in policies}
        if parallel:
            runs = run_parallel(policies, jobs, args, out, bar, tasks)
        for pol in policies if not parallel else []:
            task = tasks[pol]

            def done(_o: Any, _task: Any = task) -> None:
                bar.advance(_task)

            if args.endpoint:
                runs.append(run_stream(jobs, args.endpoint, pol, on_done=done, probe_first=args.compare_sim))
            else:
                with started_server(pol, args.kv_tokens, args.port, args.model, log=bar.console.log,
                                    log_file=out / f"server_{pol}.log") as url:
                    bar.update(task, description=pol)
                    runs.append(run_stream(jobs, url, pol, on_done=done, probe_first=args.compare_sim))
    cap, it_s, metrics = evaluate_runs(runs)
    apps0 = runs[0].measured
    load = offered_load(apps0, cap / it_s) if len(apps0) > 1 else math.inf
    comp = Comparison(workload=name, apps=apps0, capacity_tokens=cap, iteration_s=it_s, offered_load=load,
                      results=[r.result for r in runs], metrics=metrics)
    console.print(f"KV capacity M = {cap:,.0f} tokens, measured iteration {it_s * 1e3:.1f} ms, offered load {load:.2f}; "
                  f"fair bound = {metrics[0].fair_bound_s:.2f} s")
    print_table(metrics, title=f"{name} — {len(jobs)} real apps on the real engine", console=console)
    data = bench_json(name, runs, metrics, cap, it_s)
    print_bench_table(data, console)
    paths = write_outputs(comp, out, plots=not args.no_plots)
    paths.append(write_calls_csv(out / "calls.csv", runs))
    for r in runs:
        p = out / f"measured_{r.policy}.jsonl"
        dump_jsonl(r.measured, p)
        paths.append(p)
    data["wall_s"] = time.monotonic() - t_start
    bench_path = out / "bench.json"
    bench_path.write_text(json.dumps(data, indent=2) + "\n")  # measured data first: never lost to a later step
    paths.append(bench_path)
    rc = 0
    if args.compare_sim:
        from justitia.runner.calibrate import compare_sim, print_agreement, real_runs_from_bench

        try:
            agreement = compare_sim(real_runs_from_bench(runs, metrics), cap, it_s)
        except (ValueError, FileNotFoundError, RuntimeError, AttributeError) as e:
            console.print(f"[red]sim-vs-real comparison failed: {type(e).__name__}: {e}[/red] "
                          f"(the real results are written; rerun it later with `justitia calibrate --compare {out}`)")
            rc = 1
        else:
            data["sim_vs_real"] = agreement
            print_agreement(agreement, console)
            data["wall_s"] = time.monotonic() - t_start
            bench_path.write_text(json.dumps(data, indent=2) + "\n")
    for p in paths:
        console.print(f"wrote {p}")
    console.print(f"bench wall time {data['wall_s']:.0f} s")
    return rc
