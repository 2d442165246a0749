"""Time the Justitia plugin adds to a vLLM scheduling step (goal: <= 50 µs per whole step at 256 running).

vLLM's own ``Scheduler`` and ``JustitiaScheduler`` are built side by side (GPU-free, DESIGN §3: a
``config.json``-only model folder, one full-attention KV group, fake one-token model outputs) and fed
the same workload: 1,000 waiting requests from 200 applications (5 each). They are stepped in turn, so
all see the same machine noise; ``schedule()`` and ``update_from_output()`` are timed. With
``--max-num-seqs 256`` (default) the steady state is 256 decoding requests and 744 waiting ones.
``--ref REV`` adds the plugin as it was at git revision ``REV`` (its ``scheduler.py`` loaded beside
this tree's core), so before/after figures come from one run on one machine state.

    .venv/bin/python benchmarks/plugin_overhead.py [--steps 300] [--policy justitia] [--ref main]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def load_ref_scheduler(rev: str) -> type:
    """``JustitiaScheduler`` from ``src/justitia/vllm/scheduler.py`` at git revision ``rev``."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/justitia/vllm/scheduler.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "justitia_ref_scheduler.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("justitia_ref_scheduler", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.JustitiaScheduler  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="timed steps per scheduler")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--policy", default="justitia")
    ap.add_argument("--apps", type=int, default=200)
    ap.add_argument("--per-app", type=int, default=5)
    ap.add_argument("--max-num-seqs", type=int, default=256)
    ap.add_argument("--ref", default=None, help="also time the plugin at this git revision (e.g. main)")
    args = ap.parse_args()

    os.environ["JUSTITIA_POLICY"] = args.policy
    os.environ["JUSTITIA_APP_IDLE_S"] = "2"
    os.environ.pop("JUSTITIA_TRACE_FILE", None)
    sys.path.insert(0, str(ROOT / "tests" / "vllm"))
    from rich.console import Console
    from rich.table import Table
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm_helpers import config_dir, create_scheduler, fake_output, make_request

    from justitia.core.cost import call_cost
    from justitia.vllm.scheduler import JustitiaScheduler

    console = Console()
    model = config_dir(Path(tempfile.mkdtemp()))
    n_req = args.apps * args.per_app
    max_tokens = args.steps + args.warmup + 50  # nothing finishes while we measure

    def prompt(i: int) -> int:
        return 32 + (i * 7) % 64

    # exact application costs (cost eq. 2), as the oracle estimator would declare them
    hint = [0.0] * args.apps
    for i in range(n_req):
        hint[i % args.apps] += call_cost(prompt(i), max_tokens)
    classes: list[tuple[str, type]] = [("vLLM Scheduler", Scheduler)]
    if args.ref:
        classes.append((f"plugin @ {args.ref}", load_ref_scheduler(args.ref)))
    classes.append(("plugin (this tree)", JustitiaScheduler))
    scheds: dict[str, Any] = {}
    for name, cls in classes:
        s = create_scheduler(model, cls, num_blocks=200_000, block_size=16, max_num_seqs=args.max_num_seqs,
                             max_num_batched_tokens=8192)
        for i in range(n_req):
            a = i % args.apps  # applications interleave in arrival order
            s.add_request(make_request(f"r{i}", prompt_len=prompt(i), max_tokens=max_tokens,
                                       app_id=f"app{a}", app_cost_hint=hint[a]))
        scheds[name] = s

    sched_t: dict[str, list[float]] = {k: [] for k in scheds}
    upd_t: dict[str, list[float]] = {k: [] for k in scheds}
    pc = time.perf_counter
    for it in range(args.warmup + args.steps):
        for name, s in scheds.items():  # in turn: all see the same machine noise
            t0 = pc()
            out = s.schedule()
            t1 = pc()
            mro = fake_output(out)
            t2 = pc()
            s.update_from_output(out, mro)
            t3 = pc()
            if it >= args.warmup:
                sched_t[name].append(t1 - t0)
                upd_t[name].append(t3 - t2)

    base = classes[0][0]
    tab = Table(title=f"per-step cost, {n_req} requests from {args.apps} apps, policy {args.policy}, "
                      f"max_num_seqs={args.max_num_seqs}, {args.steps} steps (µs; median, mean)")
    for col in ("scheduler", "running", "schedule() med", "update() med", "step med", "step mean",
                "added: med", "added: mean", "÷ vLLM step (mean)"):
        tab.add_column(col, justify="left" if col == "scheduler" else "right")
    mean_step = {k: (statistics.fmean(sched_t[k]) + statistics.fmean(upd_t[k])) * 1e6 for k in scheds}
    med_step = {k: statistics.median([a + b for a, b in zip(sched_t[k], upd_t[k])]) * 1e6 for k in scheds}
    for k, s in scheds.items():
        a, b = statistics.median(sched_t[k]) * 1e6, statistics.median(upd_t[k]) * 1e6
        added = "" if k == base else f"{med_step[k] - med_step[base]:+.1f}"
        added_mean = "" if k == base else f"{mean_step[k] - mean_step[base]:+.1f}"
        tab.add_row(k, str(len(s.running)), f"{a:.1f}", f"{b:.1f}", f"{med_step[k]:.1f}", f"{mean_step[k]:.1f}",
                    added, added_mean, f"{mean_step[k] / mean_step[base]:.3f}")
    console.print(tab)
    plug = classes[-1][0]
    added = mean_step[plug] - mean_step[base]
    console.print(f"this tree adds {added:+.1f} µs per whole step (mean; median {med_step[plug] - med_step[base]:+.1f}) "
                  f"at {len(scheds[plug].running)} running: {'meets' if added <= 50 else 'MISSES'} the <= 50 µs goal "
                  "(shared machine: compare rows of one run)")


if __name__ == "__main__":
    main()
