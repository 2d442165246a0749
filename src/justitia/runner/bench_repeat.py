"""Repeated side-by-side comparisons (``justitia bench --repeat N``).

On a shared CPU host the engine's speed drifts ±10–20 % between runs of a few minutes, and at high
load a completion time amplifies that drift. Each repeat runs every policy on a fresh server (the
order alternates, so no policy always runs first), is evaluated against its own fair reference, and
the ratios to ``fcfs`` are then summarised across repeats: mean, min and max. A policy is better only
if it wins in every repeat, not on average over one lucky run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

PER_REPEAT = ("mean_act_s", "mean_act_vs_fcfs", "throughput_vs_fcfs", "engine_steps", "step_s",
              "apps_over_fair_bound", "max_delay_vs_fair_s", "preemptions", "output_tok_s", "steps_vs_fcfs",
              "wall_mean_act_vs_fcfs", "mean_act_steps")
RATIOS = ("mean_act_vs_fcfs", "throughput_vs_fcfs", "steps_vs_fcfs", "wall_mean_act_vs_fcfs")


def aggregate(reps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Summarise the ``bench.json`` data of each repeat: per policy, each figure per repeat and the
    mean / min / max of the ratios to fcfs."""
    if not reps:
        raise ValueError("no repeats to aggregate")
    policies = list(reps[0]["policies"])
    out: dict[str, Any] = {"workload": reps[0]["workload"], "repeats": len(reps),
                           "orders": [r.get("order") for r in reps], "clock": reps[0].get("clock", "wall"),
                           "policies": {}}
    for pol in policies:
        per = {k: [r["policies"][pol].get(k, math.nan) for r in reps] for k in PER_REPEAT}
        row: dict[str, Any] = {"per_repeat": per}
        for k in RATIOS:
            v = np.array([x for x in per[k] if x is not None and math.isfinite(x)], dtype=float)
            if v.size:
                row[k] = {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}
        row["mean_act_s"] = float(np.mean(per["mean_act_s"]))
        row["apps_over_fair_bound_total"] = int(sum(x for x in per["apps_over_fair_bound"]
                                                    if x is not None and math.isfinite(x)))
        sims = [r["sim_vs_real"]["policies"].get(pol, {}).get("sim_over_real") for r in reps if "sim_vs_real" in r]
        if sims:
            row["sim_over_real"] = sims
        out["policies"][pol] = row
    checks = [r["sim_vs_real"] for r in reps if "sim_vs_real" in r]
    if checks:
        out["sim_vs_real"] = {"ranking_identical": [bool(c["ranking_identical"]) for c in checks],
                              "max_mean_act_error": [float(c["max_mean_act_error"]) for c in checks]}
    return out


def print_aggregate(agg: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    n = agg["repeats"]
    t = Table(title=f"{agg['workload']}: {n} repeats (order alternating); per-repeat figures left to right",
              title_justify="left", header_style="bold")
    for col in ("policy", "mean ACT s", "ACT ÷fcfs", "ACT ÷fcfs mean [min–max]", "tok/s ÷fcfs mean [min–max]",
                "step ms", "steps", "over bound (all)"):
        t.add_column(col, justify="left" if col == "policy" else "right")

    def rng(d: dict[str, float] | None) -> str:
        return "" if not d else f"{d['mean']:.2f} [{d['min']:.2f}–{d['max']:.2f}]"

    for pol, row in agg["policies"].items():
        per = row["per_repeat"]
        t.add_row(pol, " ".join(f"{x:.1f}" for x in per["mean_act_s"]),
                  " ".join(f"{x:.2f}" for x in per["mean_act_vs_fcfs"] if x is not None),
                  rng(row.get("mean_act_vs_fcfs")), rng(row.get("throughput_vs_fcfs")),
                  " ".join(f"{x * 1e3:.0f}" for x in per["step_s"]), " ".join(str(int(x)) for x in per["engine_steps"]),
                  str(row["apps_over_fair_bound_total"]))
    console.print(t)
    if agg.get("clock") == "steps":
        console.print("step-clocked: the ACT ratios above are ratios of engine steps; wall clock (as the runs went), "
                      "ACT ÷ fcfs mean [min–max]: "
                      + "; ".join(f"{p} {rng(row.get('wall_mean_act_vs_fcfs'))}" for p, row in agg["policies"].items()),
                      highlight=False)
    sv = agg.get("sim_vs_real")
    if sv:
        ratios = "; ".join(f"{p} " + " ".join(f"{x:.2f}" for x in row.get("sim_over_real", []))
                           for p, row in agg["policies"].items())
        console.print(f"sim vs real per repeat — simulated / real mean ACT: {ratios}; ranking identical: "
                      + " ".join("yes" if x else "NO" for x in sv["ranking_identical"])
                      + "; largest error: " + " ".join(f"{x:.0%}" for x in sv["max_mean_act_error"]))
