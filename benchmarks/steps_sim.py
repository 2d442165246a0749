"""Engine steps and mean ACT per policy in the simulator, step-clocked like ``justitia bench --clock steps``.

Every iteration takes exactly ``--step-ms`` (100 ms, the bench's reference step), so simulated seconds
are engine steps × 0.1 and an app arriving at t s is released at step t / 0.1, as on the real engine.
The stream is either a finished bench folder's measured applications (``measured_fcfs.jsonl``, with the
cost hints the real run sent) or a seeded ``--quick`` stream planned from the real applications
(every call at its ``max_tokens``: an upper bound of the real lengths). Prints per policy: engine
steps, steps with a single running app at the end, mean ACT (steps), both ÷ fcfs, and the apps over the
fair bound (bound eq. 5). Usage::

    python benchmarks/steps_sim.py results/bench-quick --policies fcfs,justitia,justitia-lane
    python benchmarks/steps_sim.py --seeds 0,1,2,7 --policies fcfs,justitia,justitia-lane
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from justitia.apps.model import AppSpec, Call, Stage, load_jsonl
from justitia.bench.metrics import evaluate
from justitia.policies import make_policy, needs_cost
from justitia.runner.calibrate import _HintEstimator, sim_config
from justitia.sim.engine import simulate
from justitia.sim.latency import LinearLatency


def planned_stream(seed: int, n_apps: int = 20, rate: float = 1.0) -> tuple[list[AppSpec], dict[str, float | None]]:
    """The ``--quick`` stream of ``seed`` as specs (every call decodes its ``max_tokens``) and its hints."""
    from justitia.runner.realapps import make_stream

    specs, hints = [], {}
    for p in make_stream(n_apps, rate, seed, "quick"):
        stages = tuple(Stage(tuple(Call(pt, ot) for pt, ot in st)) for st in p.planned_calls())
        specs.append(AppSpec(p.name, p.arrival_s, p.app_type, stages, p.weight))
        hints[p.name] = p.cost_hint()
    return specs, hints


def measured_stream(folder: Path, seed: int | None = None) -> tuple[list[AppSpec], dict[str, float | None]]:
    """The applications fcfs served in a bench folder (real lengths) and the hints they sent. The
    measured arrivals are wall-clock times (stretched by a slow host); with the stream's ``seed`` they
    are replaced by the planned ones, which the step clock releases at step t / step time."""
    specs = load_jsonl(folder / "measured_fcfs.jsonl")
    if seed is not None:
        planned = {p.app_id: p.arrival_s for p in planned_stream(seed, len(specs))[0]}
        specs = [AppSpec(a.app_id, planned[a.app_id], a.type, a.stages, a.weight) for a in specs]
    with (folder / "apps.csv").open() as f:
        hints = {r["app_id"]: float(r["estimated_cost"]) if r["estimated_cost"] else None
                 for r in csv.DictReader(f) if r["policy"] == "fcfs"}
    return specs, hints


def share_prefixes(specs: list[AppSpec]) -> list[AppSpec]:
    """Approximate vLLM's prefix cache, which the simulator lacks: calls of one stage with the same
    prompt length (the samples of self-consistency and best-of-n) share one prompt's KV, so every such
    call after the first is given a 1-token prompt."""
    out = []
    for a in specs:
        stages = []
        for st in a.stages:
            seen: set[int] = set()
            calls = []
            for c in st.calls:
                calls.append(Call(1, c.output_tokens) if c.prompt_tokens in seen else c)
                seen.add(c.prompt_tokens)
            stages.append(Stage(tuple(calls), st.delay_s))
        out.append(AppSpec(a.app_id, a.arrival_s, a.type, tuple(stages), a.weight))
    return out


def run(specs: list[AppSpec], hints: dict[str, float | None], policy: str, capacity: int,
        step_s: float) -> dict[str, Any]:
    config = sim_config(LinearLatency(step_s, 0.0, 0.0, 0.0), capacity)
    pol = make_policy(policy, config.kv_capacity, step_s,
                      estimator=_HintEstimator(hints) if needs_cost(policy) else None)
    res = simulate(specs, pol, config)
    m = evaluate(res, specs, iteration_s=step_s, capacity_tokens=capacity)
    comp = sorted(a.completion_s for a in res.apps)
    return {"steps": int(res.iterations), "act": float(np.mean([a.act_s for a in res.apps])) / step_s,
            "alone": (comp[-1] - comp[-2]) / step_s if len(comp) > 1 else 0.0,
            "over": int(m.apps_over_fair_bound), "preempt": int(res.preemptions)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", help="finished bench folders (measured stream), FOLDER:SEED to "
                    "release the apps at the seed's planned arrivals (as the step clock does)")
    ap.add_argument("--seeds", default="", help="planned --quick streams of these seeds, comma-separated")
    ap.add_argument("--policies", default="fcfs,justitia")
    ap.add_argument("--kv-tokens", type=int, default=2048)
    ap.add_argument("--share-prefixes", action="store_true", help="approximate the prefix cache (share_prefixes)")
    ap.add_argument("--step-ms", type=float, default=100.0)
    args = ap.parse_args()
    streams: list[tuple[str, list[AppSpec], dict[str, float | None]]] = []
    for d in args.folders:
        folder, _, seed = d.partition(":")
        streams.append((d, *measured_stream(Path(folder), int(seed) if seed else None)))
    for s in filter(None, args.seeds.split(",")):
        streams.append((f"seed {s} (planned)", *planned_stream(int(s))))
    pols = args.policies.split(",")
    for label, specs, hints in streams:
        if args.share_prefixes:
            specs = share_prefixes(specs)
        rows = {p: run(specs, hints, p, args.kv_tokens, args.step_ms / 1e3) for p in pols}
        base = rows.get("fcfs") or rows[pols[0]]
        print(label)
        for p, r in rows.items():
            print(f"  {p:16s} steps {r['steps']:5d} ({r['steps'] / base['steps']:.3f})  mean ACT {r['act']:7.1f} "
                  f"({r['act'] / base['act']:.3f})  last alone {r['alone']:4.0f}  preempt {r['preempt']:3d}  "
                  f"over bound {r['over']}")
        print(json.dumps({p: r for p, r in rows.items()}))


if __name__ == "__main__":
    main()
