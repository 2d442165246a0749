"""``justitia calibrate``: fit the simulator's latency model to this machine's real engine.

Only argparse at top level (see :mod:`justitia.cli`); vLLM and the OpenAI client load in the handler.
"""

from __future__ import annotations

import argparse

CALIBRATION_KV_TOKENS = 16384  # roomy: nothing is preempted while a batch is timed


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "calibrate",
        help="measure iteration times on the real engine and fit the simulator's LinearLatency to them",
        description=(
            "Start a private server (or use --endpoint), time decode batches of 1-16 requests and single "
            "prefills of 64-2000 tokens from the server's own /metrics timers, fit "
            "T = a + b·prefill + c·decode + d·kv_read, print the fit and save it under the cache folder "
            "(used by `justitia bench --compare-sim`)."
        ),
    )
    p.add_argument("--endpoint", default=None, metavar="URL", help="calibrate this running server (it must be idle)")
    p.add_argument("--model", default=None, help="model folder for the started server (default: the bundled model)")
    p.add_argument("--port", type=int, default=None, help="port of the started server (default: a free one in 8200-8299)")
    p.add_argument("--grid", choices=("quick", "full"), default="quick", help="measurement grid (default quick, ~1 min)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="where to save the JSON (default: <cache>/calibration/cpu-latency.json)")
    p.add_argument("--compare", default=None, metavar="BENCH_DIR",
                   help="do not measure: replay the runs of a finished `justitia bench --out BENCH_DIR` in the "
                        "simulator with the saved calibration and print sim-vs-real agreement")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from justitia.runner.calibrate import (
        CPU_MAX_NUM_SEQS, calibrate, calibration_path, fit_report, save_calibration,
    )

    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # logs and CI: keep the tables readable
    if args.compare:
        import json

        from justitia.runner.calibrate import compare_sim, print_agreement, real_runs_from_dir

        runs, cap, it_s = real_runs_from_dir(Path(args.compare))
        data = compare_sim(runs, cap, it_s, calibration=Path(args.out) if args.out else None)
        print_agreement(data, console)
        (Path(args.compare) / "sim_vs_real.json").write_text(json.dumps(data, indent=2) + "\n")
        console.print(f"wrote {Path(args.compare) / 'sim_vs_real.json'}")
        return 0
    out = Path(args.out) if args.out else calibration_path()

    def run(url: str) -> tuple[object, list]:
        with console.status("calibrating") as status:
            return calibrate(url, args.grid, args.seed, progress=lambda s: status.update(f"calibrating: {s}"))

    if args.endpoint:
        model, samples = run(args.endpoint)
    else:
        from justitia.runner.bench_plan import ServerSpec
        from justitia.runner.bench_servers import engine_cores, started_server, usable_cores

        # roomy KV (no preemption while timing); fcfs = vLLM's own order; the engine on the core a
        # one-after-another `justitia bench` uses, so the fit describes the engine the bench measures
        core = engine_cores(1, usable_cores(), sequential=True)[1][0]
        spec = ServerSpec(kv_tokens=CALIBRATION_KV_TOKENS, model=args.model)
        with started_server(spec, "fcfs", port=args.port, log=console.log, core=core) as url:
            model, samples = run(url)
    t = Table(title=f"calibration samples vs fit: {model!r}", title_justify="left", header_style="bold")
    for c in ("kind", "prefill", "decode", "kv read", "measured ms", "model ms", "error"):
        t.add_column(c, justify="right")
    rows = fit_report(model, samples)
    for r in rows:
        t.add_row(r["kind"], str(r["prefill"]), str(r["decode"]), str(r["kv"]), f"{r['measured_s'] * 1e3:.1f}",
                  f"{r['model_s'] * 1e3:.1f}", f"{r['rel_err'] * 100:+.0f} %")
    console.print(t)
    errs = [abs(r["rel_err"]) for r in rows]
    path = save_calibration(out, model, samples, {"mean_abs_rel_err": sum(errs) / len(errs),
                                                  "max_num_seqs_server": CPU_MAX_NUM_SEQS})
    console.print(f"mean |error| {sum(errs) / len(errs) * 100:.0f} %; saved {path}")
    return 0
