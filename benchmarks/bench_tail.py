"""Where a policy's engine steps go: the tail of a finished ``justitia bench --clock steps --trace`` run.

Prints per policy: engine steps, preemptions and the tokens they threw away (recomputed later), the mean
number of requests per step in each 100-step window of the scheduler trace (``profile`` lines; the
first window holds the warm-up), and the last applications to finish with their release and completion
steps: how long the last one ran after every other application had finished; and each policy's engine
steps and step-clocked mean ACT ÷ fcfs's and its apps over the fair bound (bound eq. 5). A ``--repeat``
folder is read repeat by repeat (``rep1`` …). Usage::

    python benchmarks/bench_tail.py results/bench-quick
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def windows(trace: Path) -> tuple[list[float], int, int]:
    """``(requests per step in each 100-step window, preemptions, computed tokens they lost)``."""
    per, pre, lost, prev = [], 0, 0, None
    for line in trace.read_text().splitlines():
        e = json.loads(line)
        if e["event"] == "preempted":
            pre += 1
            lost += int(e.get("computed_tokens") or 0)
        elif e["event"] == "profile":
            if prev is not None and e["steps"] > prev["steps"]:
                per.append((e["reqs"] - prev["reqs"]) / (e["steps"] - prev["steps"]))
            prev = e
    return per, pre, lost


def main(folder: Path) -> None:
    bench = json.loads((folder / "bench.json").read_text())
    it_s = bench["iteration_s"]
    rows = list(csv.DictReader((folder / "apps.csv").open()))
    for pol, fig in bench["policies"].items():
        apps = sorted((float(r["completion_s"]) / it_s, float(r["arrival_s"]) / it_s, r["app_id"])
                      for r in rows if r["policy"] == pol)
        first = min(a for _, a, _ in apps)
        def of_fcfs(k: str) -> str:
            return f" ({fig[k]:.3f} of fcfs's)" if "fcfs" in bench["policies"] and k in fig else ""

        print(f"{pol}: {fig['engine_steps']} engine steps{of_fcfs('steps_vs_fcfs')}, mean ACT "
              f"{fig.get('mean_act_steps', float('nan')):.1f} steps{of_fcfs('mean_act_vs_fcfs')}, "
              f"{fig['apps_over_fair_bound']} apps over the fair bound, {fig['preemptions']} preemptions")
        trace = folder / f"trace_{pol}.jsonl"
        if trace.exists():
            per, pre, lost = windows(trace)
            print(f"  requests per step, 100-step windows: {' '.join(f'{x:.1f}' for x in per)}")
            print(f"  trace: {pre} preempted requests, {lost} computed tokens lost to recompute")
        last = ", ".join(f"{n} {a - first:.0f}->{c - first:.0f}" for c, a, n in apps[-3:])
        alone = apps[-1][0] - apps[-2][0] if len(apps) > 1 else 0.0
        print(f"  last apps (release->completion step): {last}; the last ran {alone:.0f} steps after all others")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    reps = sorted(Path(sys.argv[1]).glob("rep[0-9]*"), key=lambda p: int(p.name[3:]))
    for rep in reps or [Path(sys.argv[1])]:
        if reps:
            print(f"== {rep.name}")
        main(rep)
