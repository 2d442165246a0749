"""Predicted vs oracle costs in the simulator (issue 4 "What it must show", §3 online refinement).

Serves one seeded workload (default ``paper-mix``, 400 apps, load 0.9, H100 / Llama-2-7B preset, as
``justitia simulate``) under ``justitia`` with the oracle, the trained MLP and the per-type mean, each
with online refinement on (the default) and off, plus ``vtc`` and ``fcfs``; all measured against one
fluid fair-sharing reference (:func:`justitia.bench.metrics.evaluate`). Prints, side by side:

* mean ACT and its ratio to ``fcfs``;
* *gain kept* — the share of the oracle's mean-ACT gain over ``fcfs`` that survives prediction,
  ``(ACT_fcfs − ACT_x) / (ACT_fcfs − ACT_oracle)``;
* applications finishing later than their fair-sharing finish plus the bound (count and %);
* how often the policy raised an estimate (refinements).

Finding (paper-mix, 400 apps, load 0.9, seeds 0–4, default model): the MLP keeps ~79 % of the
oracle's mean-ACT gain over fcfs with refinement on (~90 % with it off) and 0.2 % of applications over the
fair bound; refinement *costs* the MLP ~3 % mean ACT (it doubles estimates that were only slightly low)
but rescues the per-type mean (apps over the bound 9.6 % → 1.7 %): a safety net for poor predictors.

Needs a trained model (``justitia predictor train``; ``--model`` to pick another file)::

    .venv/bin/python benchmarks/predictor_sim.py [--apps 400 --load 0.9 --seeds 0,1,2 --out results/predictor_sim]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from justitia.core.policies.justitia import Justitia
from justitia.core.policy import register_policy

RUNS = [
    # (label, policy name for justitia.bench.experiment.run_comparison)
    ("justitia-oracle", "justitiarefine-oracle"),
    ("justitia-mlp", "justitiarefine-mlp"),
    ("justitia-mlp/no-refine", "justitianorefine-mlp"),
    ("justitia-typemean", "justitiarefine-typemean"),
    ("justitia-typemean/no-refine", "justitianorefine-typemean"),
    ("vtc", "vtc"),
    ("fcfs", "fcfs"),
]

_instances: list[Justitia] = []


class JustitiaRefine(Justitia):
    """``justitia`` (refinement on, the default), remembered so the benchmark can read ``refinements``."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        _instances.append(self)


class JustitiaNoRefine(JustitiaRefine):
    """``justitia`` with online refinement off (``refine=False``)."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, refine=False, **kw)


register_policy("justitiarefine", f"{__name__}:JustitiaRefine")
register_policy("justitianorefine", f"{__name__}:JustitiaNoRefine")


def run_seed(workload: str, n_apps: int, load: float, seed: int, gpu: str) -> dict[str, dict[str, float]]:
    """One comparison as ``justitia simulate`` runs it (same reference, calibration and metrics)."""
    from justitia.bench.experiment import prepare_workload, run_comparison

    _, apps = prepare_workload(workload, n_apps, load, seed, gpu)
    _instances.clear()
    comp = run_comparison(apps, [r[1] for r in RUNS], workload=workload, gpu=gpu, progress=False)
    runs = sum(1 for _, n in RUNS if n.startswith("justitia"))
    refinements = iter(_instances[-runs:])  # the simulated ones (validation builds some first)
    out: dict[str, dict[str, float]] = {}
    for (label, name), m in zip(RUNS, comp.metrics):
        s = m.summary()
        pol = next(refinements) if name.startswith("justitia") else None
        out[label] = {
            "mean_act_s": s["mean_act_s"],
            "p99_act_s": s["p99_act_s"],
            "apps": s["apps"],
            "apps_over_fair_bound": s["apps_over_fair_bound"],
            "max_delay_vs_fair_s": s["max_delay_vs_fair_s"],
            "refinements": float(pol.refinements if pol is not None else 0),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="paper-mix")
    ap.add_argument("--apps", type=int, default=400)
    ap.add_argument("--load", type=float, default=0.9)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated workload seeds (results are averaged)")
    ap.add_argument("--gpu", default="h100")
    ap.add_argument("--model", default=None, help="predictor model file (default: the `predictor train` location)")
    ap.add_argument("--out", default=None, help="write DIR/predictor_sim.json")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from justitia.predict.estimators import default_model_path
    from justitia.predict.models import PredictorModel

    model = args.model or str(default_model_path())
    os.environ["JUSTITIA_PREDICTOR_MODEL"] = str(model)  # what the "mlp" estimator reads
    try:
        PredictorModel.load(model)
    except (FileNotFoundError, ValueError) as e:
        print(f"predictor_sim: {e}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed = [run_seed(args.workload, args.apps, args.load, s, args.gpu)
                for s in track(seeds, description=f"{args.workload} × {len(RUNS)} runs")]
    labels = [r[0] for r in RUNS]
    agg: dict[str, dict[str, float]] = {}
    for label in labels:
        rows = [ps[label] for ps in per_seed]
        agg[label] = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
        agg[label]["over_bound_pct"] = 100.0 * sum(r["apps_over_fair_bound"] for r in rows) / sum(r["apps"] for r in rows)
    fcfs, oracle = agg["fcfs"]["mean_act_s"], agg["justitia-oracle"]["mean_act_s"]
    for label in labels:
        a = agg[label]
        a["act_vs_fcfs"] = a["mean_act_s"] / fcfs
        a["gain_kept"] = (fcfs - a["mean_act_s"]) / (fcfs - oracle) if fcfs != oracle else float("nan")

    table = Table(title=f"{args.workload}: {args.apps} apps, load {args.load}, seeds {args.seeds} (means)")
    for c in ("run", "mean ACT s", "÷ fcfs", "gain kept", "p99 ACT s", "over bound", "%", "refinements"):
        table.add_column(c, justify="left" if c == "run" else "right", no_wrap=True)
    for label in labels:
        a = agg[label]
        table.add_row(label, f"{a['mean_act_s']:.1f}", f"{a['act_vs_fcfs']:.2f}×", f"{a['gain_kept']:.0%}",
                      f"{a['p99_act_s']:.1f}", f"{a['apps_over_fair_bound']:.1f}", f"{a['over_bound_pct']:.1f}",
                      f"{a['refinements']:.0f}")
    Console(width=max(120, Console().width)).print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "predictor_sim.json").write_text(json.dumps({"config": vars(args), "mean": agg, "per_seed": per_seed}, indent=2) + "\n")
        print(f"wrote {out / 'predictor_sim.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
