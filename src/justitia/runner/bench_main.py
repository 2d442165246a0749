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
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

# Presets (measured on 2 CPU cores, KV 2,048 tokens): Poisson at 1 app/s overloads the engine (offered
# load ≈ 3), so the order of service decides completion times, as on a busy GPU server.
QUICK = {"apps": 20, "rate": 1.0, "sizes": "quick", "policies": "fcfs,justitia"}
FULL = {"apps": 40, "rate": 1.0, "sizes": "full", "policies": "fcfs,vtc,justitia"}


PORT_RANGE = (8200, 8300)  # started servers pick a free port here (justitia serve's own default is 8000-8100)


BENCH_APP_IDLE_S = 30.0  # the SDK ends every app with app_done; the idle window is only a fallback, and on a
# busy 2-core host the client may take seconds between stages (a 2 s window would split an app in two)


def _server(policy: str, kv_tokens: int, port: int | None, model: str | None, log: Any = print,
            log_file: Path | None = None, max_num_seqs: int | None = None, core: int | None = None,
            prefix_caching: bool = True) -> Any:
    """A (not yet started) ``justitia serve`` :class:`justitia.vllm.serve.Server` for one policy.
    ``core`` pins the engine's compute threads to that CPU core (``VLLM_CPU_OMP_THREADS_BIND``)."""
    from justitia.vllm.serve import Server

    env = {"VLLM_CPU_OMP_THREADS_BIND": str(core), "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"} if core is not None else None
    # everything but the engine's compute thread (API server, EngineCore loop) stays off the engine core
    frontends = [c for c in usable_cores() if c != core] if core is not None else None
    return Server(model, policy=policy, kv_tokens=kv_tokens, port=port, port_range=PORT_RANGE, log=log, cpus=frontends,
                  log_file=log_file, max_num_seqs=max_num_seqs, env=env, app_idle_s=BENCH_APP_IDLE_S,
                  extra_args=() if prefix_caching else ("--no-enable-prefix-caching",))


@contextlib.contextmanager
def started_server(policy: str, kv_tokens: int, port: int | None, model: str | None, log: Any = print,
                   log_file: Path | None = None, max_num_seqs: int | None = None,
                   core: int | None = None) -> Iterator[str]:
    """A fresh ``justitia serve`` for one policy; yields its URL once ``/health`` answers and stops it
    (its whole process group) afterwards."""
    with _server(policy, kv_tokens, port, model, log, log_file, max_num_seqs, core) as srv:
        yield str(srv.url)


def free_ports(n: int, first: int | None = None) -> list[int]:
    """``n`` distinct free ports in :data:`PORT_RANGE` (from ``first`` on when given)."""
    from justitia.vllm.serve import port_is_free

    lo = first if first is not None else PORT_RANGE[0]
    ports = [p for p in range(lo, PORT_RANGE[1]) if port_is_free("127.0.0.1", p)][:n]
    if len(ports) < n:
        raise ValueError(f"need {n} free ports in {lo}-{PORT_RANGE[1] - 1}, found {len(ports)}")
    return ports


def usable_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def engine_cores(n_policies: int, cores: Sequence[int], sequential: bool) -> tuple[bool, list[int | None]]:
    """Where each policy's engine computes: ``(side_by_side, core per policy)``.

    Side by side (all streams at once) needs one core per engine *plus* one for the API servers and
    this client: engines on ``cores[1:]``, everything else on ``cores[0]``. Otherwise the policies run
    one after another, every engine pinned to the same last core (so they all run on the same silicon)
    and the API server and client keep the other cores. On one core nothing is pinned.
    """
    if len(cores) <= 1:
        return False, [None] * n_policies
    if not sequential and n_policies > 1 and len(cores) >= n_policies + 1:
        return True, list(cores[1:n_policies + 1])
    return False, [cores[-1]] * n_policies


def run_parallel(policies: Sequence[str], jobs: Sequence[Any], args: argparse.Namespace, out: Path,
                 bar: Any, tasks: dict[str, Any], cores: Sequence[int | None]) -> list[Any]:
    """Every policy at once, each on a fresh server pinned to its own CPU core; the streams start
    together (a barrier after all servers are ready), so whatever else loads the machine loads every
    policy alike: the side-by-side comparison the standards ask for on a shared, noisy host."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from justitia.runner.bench import run_stream, warm_up

    ports = free_ports(len(policies), args.port)
    barrier = threading.Barrier(len(policies))

    def one(i: int, pol: str) -> Any:
        task = tasks[pol]
        try:
            with _server(pol, args.kv_tokens, ports[i], args.model, log=bar.console.log,
                         log_file=out / f"server_{pol}.log", core=cores[i],
                         prefix_caching=not (args.no_prefix_caching or args.compare_sim)) as srv:
                url = str(srv.url)
                bar.update(task, description=f"{pol} (ready)")

                def ready() -> None:
                    warm_up(url)
                    barrier.wait(timeout=900)
                    bar.update(task, description=pol)

                return run_stream(jobs, url, pol, on_done=lambda _o: bar.advance(task), ready=ready)
        except BaseException:
            barrier.abort()  # do not leave the other policies waiting for a server that never comes
            raise

    with ThreadPoolExecutor(len(policies)) as ex:
        futs = [ex.submit(one, i, p) for i, p in enumerate(policies)]
        return [f.result() for f in futs]


PRESTART_MAX = 4  # servers started together up front (about 3.5 GB of memory each)


def run_one_at_a_time(policies: Sequence[str], jobs: Sequence[Any], args: argparse.Namespace, out: Path,
                      bar: Any, tasks: dict[str, Any], cores: Sequence[int | None]) -> list[Any]:
    """The policies one after another. Up to :data:`PRESTART_MAX` servers start together first (an
    idle vLLM engine waits on its input queue and takes no CPU), so start-up is paid once; each stream
    then has the engine core to itself."""
    from justitia.runner.bench import run_stream, warm_up

    runs: list[Any] = []
    for g in range(0, len(policies), PRESTART_MAX):
        group = list(policies[g:g + PRESTART_MAX])
        ports = free_ports(len(group), args.port)
        with contextlib.ExitStack() as stack:
            servers = []
            for i, pol in enumerate(group):
                srv = _server(pol, args.kv_tokens, ports[i], args.model, log=bar.console.log,
                              log_file=out / f"server_{pol}.log", core=cores[g + i],
                              prefix_caching=not (args.no_prefix_caching or args.compare_sim))
                srv.start()
                stack.callback(srv.stop)
                servers.append(srv)
            for pol, srv in zip(group, servers):
                srv.wait_ready()
                bar.update(tasks[pol], description=f"{pol} (ready)")
            for pol, srv in zip(group, servers):
                task = tasks[pol]
                bar.update(task, description=f"{pol} (warm-up)")
                warm_up(str(srv.url))
                bar.update(task, description=pol)
                runs.append(run_stream(jobs, str(srv.url), pol, on_done=lambda _o, _t=task: bar.advance(_t)))
                srv.stop()  # free its memory before the next stream
    return runs


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


def common_apps(runs: Sequence[Any]) -> set[str]:
    """The applications that finished under every policy (a failed app is compared nowhere)."""
    ids = [{a.app_id for a in r.result.apps} for r in runs]
    return set.intersection(*ids) if ids else set()


def restrict(runs: Sequence[Any], keep: set[str]) -> list[Any]:
    """Copies of ``runs`` whose result and measured specs hold only the applications in ``keep``."""
    import dataclasses

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
    """One reference for all runs: ``(M, iteration_s, metrics per run)`` (see :mod:`justitia.runner.bench`)."""
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
                "steps", "step ms", "preemptions", "max slowdown vs fair"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for name, f in data["policies"].items():
        ratio = f.get("throughput_vs_fcfs")
        t.add_row(name, str(f["apps"]), str(f["calls"]), f"{f['output_tok_s']:.1f}",
                  "" if ratio is None else f"{ratio:.3f}", f"{f['call_latency_p50_s']:.2f}",
                  f"{f['call_latency_p99_s']:.2f}", str(f["engine_steps"]), f"{f['step_s'] * 1e3:.1f}",
                  str(f["preemptions"]),
                  f"{f['max_slowdown_vs_fair']:.2f}")
    console.print(t)


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=140)  # logs and CI: keep the tables readable


def execute(policies: Sequence[str], jobs: Sequence[Any], args: argparse.Namespace, out: Path, console: Any,
            layout: tuple[bool, list[int | None]], label: str = "") -> list[Any]:
    """Run the stream once per policy (fresh servers, or ``--endpoint``); the runs in ``policies`` order.
    ``layout`` is :func:`engine_cores`'s answer for these policies."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from justitia.runner.bench import run_stream

    side_by_side, cores = layout
    runs: list[Any] = []
    pinned = [c for c in cores if c is not None]
    saved_affinity = usable_cores()
    pin_client = bool(pinned) and not side_by_side and hasattr(os, "sched_setaffinity")
    if pin_client:
        os.sched_setaffinity(0, [c for c in saved_affinity if c != pinned[0]])  # this client too
    try:
        with Progress(TextColumn("[bold]{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TextColumn("apps"),
                      TimeElapsedColumn(), console=console) as bar:
            tasks = {pol: bar.add_task(f"{label}{pol}" if args.endpoint else f"{label}{pol} (starting)", total=len(jobs))
                     for pol in policies}
            if args.endpoint:
                task = tasks[policies[0]]
                runs.append(run_stream(jobs, args.endpoint, policies[0], on_done=lambda _o: bar.advance(task)))
            elif side_by_side:
                runs = run_parallel(policies, jobs, args, out, bar, tasks, cores)
            else:
                runs = run_one_at_a_time(policies, jobs, args, out, bar, tasks, cores)
    finally:
        if pin_client:
            os.sched_setaffinity(0, saved_affinity)
    return runs


def report(name: str, n_jobs: int, runs: list[Any], args: argparse.Namespace, out: Path, console: Any) -> tuple[dict[str, Any], int]:
    """Evaluate one comparison against one fair reference, print it and write every output file;
    ``(bench.json data, exit code)``."""
    from justitia.apps.arrivals import offered_load
    from justitia.apps.model import dump_jsonl
    from justitia.bench.experiment import Comparison, write_outputs
    from justitia.bench.report import print_table

    out.mkdir(parents=True, exist_ok=True)
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
    all_runs = runs
    runs = restrict(runs, keep)
    cap, it_s, metrics = evaluate_runs(runs)
    apps0 = runs[0].measured
    load = offered_load(apps0, cap / it_s) if len(apps0) > 1 else math.inf
    comp = Comparison(workload=name, apps=apps0, capacity_tokens=cap, iteration_s=it_s, offered_load=load,
                      results=[r.result for r in runs], metrics=metrics)
    console.print(f"KV capacity M = {cap:,.0f} tokens, engine step {it_s * 1e3:.1f} ms (busy time / steps), "
                  f"offered load {load:.2f}; fair bound = {metrics[0].fair_bound_s:.2f} s")
    print_table(metrics, title=f"{name} — {n_jobs} real apps on the real engine", console=console)
    data = bench_json(name, runs, metrics, cap, it_s)
    data["failed_apps"] = {pol: [{"app_id": n, "error": e} for n, e in fails] for pol, fails in failures.items()}
    print_bench_table(data, console)
    paths = write_outputs(comp, out, plots=not args.no_plots)
    paths.append(write_calls_csv(out / "calls.csv", all_runs))
    for r in runs:
        p = out / f"measured_{r.policy}.jsonl"
        dump_jsonl(r.measured, p)
        paths.append(p)
    bench_path = out / "bench.json"
    bench_path.write_text(json.dumps(data, indent=2) + "\n")  # measured data first: never lost to a later step
    paths.append(bench_path)
    rc = 0
    if args.compare_sim:
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
            rc = 1
        else:
            data["sim_vs_real"] = agreement
            print_agreement(agreement, console)
            bench_path.write_text(json.dumps(data, indent=2) + "\n")
    for p in paths:
        console.print(f"wrote {p}")
    return data, rc


def main_from_args(args: argparse.Namespace) -> int:
    from justitia.bench.experiment import parse_policies

    t_start = time.monotonic()
    console = _console()
    preset = QUICK if args.quick else FULL
    policies = parse_policies(args.policies or str(preset["policies"]))
    repeat = getattr(args, "repeat", 1)
    if repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {repeat}")
    if args.endpoint and len(policies) != 1:
        raise ValueError("with --endpoint the server runs one policy: give --policies one label (e.g. --policies fcfs)")
    if not args.endpoint:
        from justitia.core.policy import split_policy_name

        for p in policies:
            split_policy_name(p)  # ValueError naming the choices for an unknown policy
    n_apps = int(preset["apps"]) if args.apps is None else args.apps
    rate = float(preset["rate"]) if args.rate is None else args.rate
    sizes = args.sizes or str(preset["sizes"])
    if args.kv_tokens < 16:
        raise ValueError(f"--kv-tokens must be >= 16, got {args.kv_tokens}")
    name, jobs = _jobs(args, n_apps, rate, sizes)
    out = Path(args.out) if args.out else Path("results") / "bench"
    out.mkdir(parents=True, exist_ok=True)
    side_by_side, cores = engine_cores(len(policies), usable_cores(), args.sequential)
    if args.endpoint:
        where = f"endpoint {args.endpoint}"
    elif side_by_side:
        where = f"policies side by side, engines on cores {cores}"
    else:
        where = "policies one after another" + (f", engines on core {cores[0]}" if cores and cores[0] is not None else "")
    if not args.endpoint and (args.no_prefix_caching or args.compare_sim):
        where += ", no prefix cache (as in the simulator)"
    console.print(f"[bold]{name}[/bold]: {len(jobs)} applications, seed {args.seed}, "
                  + (where if args.endpoint else f"fresh server per policy, KV {args.kv_tokens} tokens, {where}")
                  + (f", {repeat} repeats (policy order alternating)" if repeat > 1 else ""))
    rc = 0
    reps: list[dict[str, Any]] = []
    for k in range(repeat):
        # alternate the order, so no policy always runs first (or last) on the host
        order = list(policies) if k % 2 == 0 else list(reversed(policies))
        label = f"{k + 1}/{repeat} " if repeat > 1 else ""
        folder = out if repeat == 1 else out / f"rep{k + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        runs = execute(order, jobs, args, folder, console, (side_by_side, cores), label)
        runs.sort(key=lambda r: policies.index(r.policy))
        if repeat > 1:
            console.rule(f"repeat {k + 1} of {repeat} (order {', '.join(order)})")
        data, rc_k = report(name, len(jobs), runs, args, folder, console)
        rc = max(rc, rc_k)
        data["order"] = order
        reps.append(data)
    wall = time.monotonic() - t_start
    if repeat > 1:
        from justitia.runner.bench_repeat import aggregate, print_aggregate

        agg = aggregate(reps)
        agg["wall_s"] = wall
        path = out / "bench.json"
        path.write_text(json.dumps(agg, indent=2) + "\n")
        print_aggregate(agg, console)
        console.print(f"wrote {path} (each repeat's full outputs: {out}/rep1 … rep{repeat})")
    else:
        reps[0]["wall_s"] = wall
        (out / "bench.json").write_text(json.dumps(reps[0], indent=2) + "\n")
    console.print(f"bench wall time {wall:.0f} s")
    return rc
