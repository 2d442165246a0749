"""Time added per vLLM scheduling step by the Justitia plugin (issue 3 §5; goal <= 50 µs per schedule()).

vLLM's own ``Scheduler`` and ``JustitiaScheduler`` are built side by side (GPU-free, DESIGN §3: a
``config.json``-only model folder, one full-attention KV group, fake one-token model outputs) and fed
the same workload: 1,000 waiting requests from 200 applications (5 each). Both are stepped
alternately; only ``schedule()`` (and separately ``update_from_output()``) is timed. With
the default ``max_num_seqs=64`` the steady state is 64 decoding requests and 936 waiting ones
(``--max-num-seqs 256``: 256 and 744).

    .venv/bin/python benchmarks/plugin_overhead.py [--steps 300] [--policy justitia]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="timed steps per scheduler")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--policy", default="justitia")
    ap.add_argument("--apps", type=int, default=200)
    ap.add_argument("--per-app", type=int, default=5)
    ap.add_argument("--max-num-seqs", type=int, default=64)
    args = ap.parse_args()

    os.environ["JUSTITIA_POLICY"] = args.policy
    os.environ["JUSTITIA_APP_IDLE_S"] = "2"
    from rich.console import Console
    from rich.table import Table
    from vllm.v1.core.sched.scheduler import Scheduler

    from justitia.core.cost import call_cost
    from justitia.vllm.scheduler import JustitiaScheduler
    from justitia.vllm.testing import config_dir, create_scheduler, fake_output, make_request

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
    scheds = {}
    for name, cls in (("vLLM Scheduler", Scheduler), (f"JustitiaScheduler ({args.policy})", JustitiaScheduler)):
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
    plug_s = scheds[list(scheds)[1]]
    self_pre: list[float] = []
    self_acc: list[float] = []

    def timed(fn, sink):  # the plugin's own hooks, timed where vLLM calls them
        def wrapper(*a, **k):
            t = pc()
            try:
                return fn(*a, **k)
            finally:
                sink.append(pc() - t)
        return wrapper

    plug_s._before_schedule = timed(plug_s._before_schedule, self_pre)
    plug_s._account = timed(plug_s._account, self_acc)
    for it in range(args.warmup + args.steps):
        if it == args.warmup:
            self_pre.clear()
            self_acc.clear()
        for name, s in scheds.items():  # alternate: both see the same machine noise
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

    base, plug = list(scheds)
    tab = Table(title=f"per-step cost, {n_req} requests from {args.apps} apps, max_num_seqs={args.max_num_seqs}, "
                      f"{args.steps} steps (median µs)")
    tab.add_column("scheduler")
    tab.add_column("running", justify="right")
    tab.add_column("waiting", justify="right")
    tab.add_column("schedule() µs", justify="right")
    tab.add_column("update_from_output() µs", justify="right")
    tab.add_column("step µs", justify="right")
    med = {k: (statistics.median(sched_t[k]) * 1e6, statistics.median(upd_t[k]) * 1e6) for k in scheds}
    for k, s in scheds.items():
        a, b = med[k]
        tab.add_row(k, str(len(s.running)), str(len(s.waiting)), f"{a:.1f}", f"{b:.1f}", f"{a + b:.1f}")
    da = med[plug][0] - med[base][0]
    db = med[plug][1] - med[base][1]
    tab.add_row("[bold]added by the plugin", "", "", f"[bold]{da:+.1f}", f"{db:+.1f}", f"{da + db:+.1f}")
    console.print(tab)
    pre, acc = statistics.median(self_pre) * 1e6, statistics.median(self_acc) * 1e6
    console.print(f"plugin's own code, timed directly (median): before schedule() {pre:.1f} µs "
                  f"(tick, idle apps, queue re-key check, running sort), update_from_output accounting {acc:.1f} µs")
    verdict = "meets" if pre <= 50 else "MISSES"
    console.print(f"schedule(): {pre:.1f} µs of plugin code per call ({verdict} the <= 50 µs goal); side-by-side "
                  f"difference {da:+.1f} µs (includes machine noise); "
                  f"whole step: +{da + db:.1f} µs ({(da + db) / (med[base][0] + med[base][1]) * 100:+.0f} %)")


if __name__ == "__main__":
    main()
