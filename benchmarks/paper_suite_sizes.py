"""Each paper-suite agent class run alone on the paper's engine (A100-40GB, LLaMA-7B): its JCT.

The paper's size classes (§5.1) are defined by this: small < 1 min, medium 1-10 min, large > 10 min.
For every class, ``N`` apps (seeded) are each served alone (empty engine, fcfs) and the table prints
the JCT distribution, the share of apps inside the class's window, the mean cost and calls.

    PYTHONPATH=src python benchmarks/paper_suite_sizes.py [--apps N] [--seed S]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from justitia.apps.paper_suite import PAPER_CLASSES, SIZE_OF
from justitia.sim.config import preset
from justitia.sim.engine import make_simulation_policy, simulate

WINDOWS = {"small": (0.0, 60.0), "medium": (60.0, 600.0), "large": (600.0, float("inf"))}


def alone_jct(app, cfg) -> float:
    res = simulate([dataclasses.replace(app, arrival_s=0.0)], make_simulation_policy("fcfs", cfg), cfg)
    return res.apps[0].act_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apps", type=int, default=20, help="apps per class (large classes: a quarter)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = preset("a100-40gb-llama-7b")
    print(f"engine a100-40gb-llama-7b: M = {cfg.kv_capacity} tokens, {args.apps} apps per class alone, seed {args.seed}")
    print(f"{'class':7s} {'size':6s} {'apps':>4s} {'min s':>8s} {'p50 s':>8s} {'p90 s':>8s} {'max s':>8s} "
          f"{'in window':>9s} {'calls':>7s} {'mean cost':>10s}")
    for k, (cls, gen) in enumerate(PAPER_CLASSES.items()):
        rng = np.random.default_rng([args.seed, k])
        n = args.apps if SIZE_OF[cls] != "large" else max(2, args.apps // 4)
        apps = [gen(rng, f"{cls}-{i:05d}") for i in range(n)]
        jct = np.array([alone_jct(a, cfg) for a in apps])
        lo, hi = WINDOWS[SIZE_OF[cls]]
        inside = float(np.mean((jct >= lo) & (jct < hi)))
        print(f"{cls:7s} {SIZE_OF[cls]:6s} {n:4d} {jct.min():8.1f} {np.median(jct):8.1f} {np.percentile(jct, 90):8.1f} "
              f"{jct.max():8.1f} {inside:9.0%} {np.mean([a.num_calls for a in apps]):7.0f} "
              f"{np.mean([a.cost for a in apps]):10.3g}", flush=True)


if __name__ == "__main__":
    main()
