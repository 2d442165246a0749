"""``justitia predictor train | eval`` (paper §4.2). Heavy imports (torch) stay inside the handlers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("predictor", help="train and evaluate the application cost predictor (MLP)",
                       description="Train and evaluate the demand predictor (paper §4.2, DESIGN §6).")
    psub = p.add_subparsers(dest="predictor_command", metavar="ACTION")

    t = psub.add_parser("train", help="train the MLP and the baselines on generated apps and real traces")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--workload", default=None,
                     help="named workload to train on (default: 'mix' = every application type + Azure traces)")
    src.add_argument("--trace", default=None, metavar="FILE",
                     help="a JSONL workload file or an Azure-style CSV trace (num_prefill_tokens, num_decode_tokens)")
    t.add_argument("--trace-type", default="unknown", help="application type of CSV trace rows (default: unknown)")
    t.add_argument("--apps", type=int, default=8000, help="training applications (default 8000; test split: apps/4)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=None, help="training epochs (default 100)")
    t.add_argument("--out", default=None, help="model file (default: <cache>/predictor/model.pt, read by the estimators)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    e = psub.add_parser("eval", help="evaluate mlp, typemean, linear and oracle on the held-out split")
    e.add_argument("--model", default=None, help="model file (default: the one `predictor train` writes)")
    e.add_argument("--out", required=True, help="directory for predictor.json")
    e.add_argument("--workload", default=None, help="evaluate on this named workload instead (seeded by --seed)")
    e.add_argument("--apps", type=int, default=None, help="test applications (default: the model's held-out split)")
    e.add_argument("--seed", type=int, default=None, help="seed of --workload (default: the held-out seed)")
    e.add_argument("--hints", action="store_true", help="give the predictors the clients' structure hints")
    e.set_defaults(func=_eval)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _data_spec(args: argparse.Namespace):  # -> DataSpec
    from justitia.predict.train import DataSpec

    if args.trace:
        return DataSpec("trace", str(Path(args.trace).resolve()), args.apps, args.seed, args.trace_type)
    if args.workload and args.workload != "mix":
        from justitia.apps.workloads import workload_names

        if args.workload not in workload_names():
            raise ValueError(f"unknown workload {args.workload!r}; known: mix, {', '.join(workload_names())}")
        return DataSpec("workload", args.workload, args.apps, args.seed)
    return DataSpec("mix", "", args.apps, args.seed)


def _train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from justitia.predict.estimators import default_model_path
    from justitia.predict.mlp import TrainConfig
    from justitia.predict.train import train_predictor

    spec = _data_spec(args)
    cfg = TrainConfig(seed=args.seed, progress=not args.no_progress)
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
        cfg.epochs = args.epochs
    out = Path(args.out) if args.out else default_model_path()
    model = train_predictor(spec, cfg)
    model.save(out)
    m = model.meta
    Console().print(f"trained on {m['train_apps']} applications ({' '.join(filter(None, (spec.source, spec.name)))}) in "
                    f"{m['data_s'] + m['train_s']:.1f} s; loss {m['first_train_loss']:.3f} → {m['final_train_loss']:.3f}, "
                    f"best val {m['best_val_loss']:.3f} (epoch {m['best_epoch'] + 1}); wrote {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from justitia.predict.estimators import default_model_path
    from justitia.predict.evaluate import by_type, evaluate_model, model_estimators
    from justitia.predict.models import PredictorModel
    from justitia.predict.train import TEST_SEED_OFFSET, DataSpec, load_split

    path = Path(args.model) if args.model else default_model_path()
    model = PredictorModel.load(path)
    if args.workload:
        from justitia.apps.workloads import make_workload

        seed = args.seed if args.seed is not None else int(model.meta.get("data", {}).get("seed", 0)) + TEST_SEED_OFFSET
        apps = make_workload(args.workload, args.apps or 1000, seed)
        where = f"workload {args.workload} ({len(apps)} apps, seed {seed})"
    else:
        d = dict(model.meta.get("data", {}))
        if args.apps is not None:
            d["n_apps"] = args.apps * 4
        spec = DataSpec(**d)
        apps = load_split(spec, "test")
        where = f"held-out split of {' '.join(filter(None, (spec.source, spec.name)))} ({len(apps)} apps)"
    res = evaluate_model(str(path), apps, hints=args.hints)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "predictor.json").write_text(json.dumps(res, indent=2) + "\n")
    table = Table(title=f"cost prediction on the {where}" + (" with hints" if args.hints else ""))
    for c in ("predictor", "median rel err", "p90 rel err", "spearman", "ms/prediction"):
        table.add_column(c, justify="right" if c != "predictor" else "left")
    for name, r in res.items():
        table.add_row(name, f"{r['median_rel_error']:.3f}", f"{r['p90_rel_error']:.3f}", f"{r['spearman']:.3f}",
                      f"{r['ms_per_prediction']:.4f}")
    con = Console()
    con.print(table)
    per = by_type(model_estimators(str(path)), apps, hints=args.hints)
    (out / "predictor_by_type.json").write_text(json.dumps(per, indent=2) + "\n")
    tt = Table(title="median relative error by application type")
    for c in ("type", "apps", "mlp", "typemean", "linear"):
        tt.add_column(c, justify="left" if c == "type" else "right")
    for t, r in per.items():
        tt.add_row(t, f"{r['apps']:.0f}", f"{r['mlp']:.3f}", f"{r['typemean']:.3f}", f"{r['linear']:.3f}")
    con.print(tt)
    con.print(f"wrote {out / 'predictor.json'} and {out / 'predictor_by_type.json'}")
    return 0
