"""Training data and training of the predictor (paper §4.2, which trains on ~100 samples per agent type).

Data sources (:class:`DataSpec`), each with a held-out test split that shares no application with the
training split:

* ``mix`` (the default) — every generator type (:mod:`justitia.apps.generators`) in equal shares, plus
  real single requests: Azure 2023 conversation rows as ``chat`` and Azure 2023 code-completion rows as
  ``unknown`` (a type the client did not name). Generated apps: train with seed ``S``, test with seed
  ``S + TEST_SEED_OFFSET`` (independent draws); trace rows: row index ``% 5 == 0`` is test, the rest train.
* ``workload`` NAME — a named workload (:func:`justitia.apps.workloads.make_workload`), test by seed.
* ``trace`` FILE — a JSONL workload file (split 80/20 by application, seeded) or an Azure-style CSV
  (``num_prefill_tokens``, ``num_decode_tokens``; one single-call application per row; rows split by
  index % 5), e.g. ``../shared/data/traces/azure_code_2023.csv``.

Training-time augmentation, so one model serves clients with and without hints: each training
application carries structure hints (``hint_stages``, ``hint_calls``) with probability 1/2 and is
presented as type ``unknown`` with probability 1/10.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from justitia.apps.model import AppSpec, Stage
from justitia.core.policy import AppInfo
from justitia.predict.features import app_info, feature_matrix, log_costs
from justitia.predict.models import PredictorModel

TEST_SEED_OFFSET = 10_007
HINT_PROB = 0.5
UNKNOWN_PROB = 0.1


@dataclass(frozen=True)
class DataSpec:
    """Where training/test applications come from (recorded in the model file for ``eval``)."""

    source: str = "mix"  # "mix" | "workload" | "trace"
    name: str = ""  # workload name or trace path
    n_apps: int = 8000
    seed: int = 0
    trace_type: str = "unknown"  # app type of CSV rows

    def __post_init__(self) -> None:
        if self.source not in ("mix", "workload", "trace"):
            raise ValueError(f"unknown data source {self.source!r}; use mix, workload or trace")
        if self.n_apps < 10:
            raise ValueError(f"need at least 10 applications to train on, got {self.n_apps}")

    @property
    def n_test(self) -> int:
        return max(self.n_apps // 4, 50)


# ------------------------------------------------------------------------------------ data sources


def _fit_call(p: int, o: int) -> Any:
    from justitia.apps.generators import fit

    return fit(max(p, 1), max(o, 1))


def _trace_apps(prompts: np.ndarray, outputs: np.ndarray, rows: np.ndarray, app_type: str, prefix: str) -> list[AppSpec]:
    return [AppSpec(f"{prefix}-{int(r):06d}", 0.0, app_type, (Stage((_fit_call(int(prompts[r]), int(outputs[r])),)),))
            for r in rows]


def _row_split(n_rows: int, split: str) -> np.ndarray:
    idx = np.arange(n_rows)
    return idx[idx % 5 == 0] if split == "test" else idx[idx % 5 != 0]


def _read_csv_lengths(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"trace file not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        need = ("num_prefill_tokens", "num_decode_tokens")
        if reader.fieldnames is None or any(c not in reader.fieldnames for c in need):
            raise ValueError(f"{path}: a CSV trace needs columns {need}; header is {reader.fieldnames}")
        p, o = [], []
        for n, row in enumerate(reader, 2):
            try:
                p.append(int(float(row["num_prefill_tokens"])))
                o.append(int(float(row["num_decode_tokens"])))
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{n}: malformed row {row!r}") from None
    if not p:
        raise ValueError(f"{path}: no rows")
    return np.asarray(p), np.asarray(o)


def load_split(spec: DataSpec, split: str) -> list[AppSpec]:
    """The ``"train"`` or ``"test"`` applications of ``spec`` (disjoint)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    n = spec.n_apps if split == "train" else spec.n_test
    seed = spec.seed if split == "train" else spec.seed + TEST_SEED_OFFSET
    rng = np.random.default_rng(seed)

    if spec.source == "workload":
        from justitia.apps.workloads import make_workload

        return make_workload(spec.name, n, seed)

    if spec.source == "trace":
        path = Path(spec.name)
        if path.suffix == ".csv":
            p, o = _read_csv_lengths(path)
            rows = _row_split(len(p), split)
            rows = rows if len(rows) <= n else np.sort(rng.choice(rows, n, replace=False))
            return _trace_apps(p, o, rows, spec.trace_type, path.stem)
        from justitia.apps.model import load_jsonl

        apps = load_jsonl(path)
        if len(apps) < 10:
            raise ValueError(f"{path}: need at least 10 applications to split into train/test, got {len(apps)}")
        perm = np.random.default_rng(spec.seed).permutation(len(apps))
        cut = max(1, len(apps) // 5)
        chosen = perm[:cut] if split == "test" else perm[cut:]
        return [apps[i] for i in sorted(chosen)]

    # mix: each generator type + real chat rows + real code rows
    from justitia.apps.generators import GENERATORS
    from justitia.apps.traces import azure_code, azure_conv
    from justitia.apps.workloads import make_workload

    parts = len(GENERATORS) + 2
    k = max(n // parts, 1)
    apps: list[AppSpec] = []
    for t in GENERATORS:
        apps += make_workload(t, k, seed)
    for tr, ty in ((azure_conv(), "chat"), (azure_code(), "unknown")):
        rows = _row_split(len(tr), split)
        rows = np.sort(rng.choice(rows, min(k, len(rows)), replace=False))
        apps += _trace_apps(tr.prompt_tokens, tr.output_tokens, rows, ty, tr.name)
    return apps


def training_infos(apps: list[AppSpec], seed: int) -> list[AppInfo]:
    """Arrival infos of the training applications with augmentation (hints, unknown type)."""
    rng = np.random.default_rng(seed + 1)
    hints = rng.random(len(apps)) < HINT_PROB
    unknown = rng.random(len(apps)) < UNKNOWN_PROB
    infos = []
    for a, h, u in zip(apps, hints.tolist(), unknown.tolist()):
        info = app_info(a, hints=h, oracle=False)
        if u:
            info.app_type = "unknown"
        infos.append(info)
    return infos


# ------------------------------------------------------------------------------------ training


def train_predictor(spec: DataSpec, cfg: Any = None, progress: bool = True) -> PredictorModel:
    """Build the training split of ``spec``, fit the MLP and both baselines, return the model."""
    from justitia.predict.baselines import fit_linear, fit_typemean
    from justitia.predict.mlp import TrainConfig, train_mlp

    cfg = cfg or TrainConfig(seed=spec.seed, progress=progress)
    t0 = time.perf_counter()
    apps = load_split(spec, "train")
    infos = training_infos(apps, spec.seed)
    x = feature_matrix(infos)
    y = log_costs(apps)
    t_data = time.perf_counter() - t0
    res = train_mlp(x, y, cfg)
    t_train = time.perf_counter() - t0 - t_data
    # baselines on the same split; the type mean uses the true types (augmentation is for the MLP)
    typemean = fit_typemean([a.type for a in apps], y)
    linear = fit_linear(x, y)
    meta = {
        "data": asdict(spec),
        "train_apps": len(apps),
        "train_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "best_epoch": res.best_epoch,
        "final_train_loss": res.train_loss[-1],
        "best_val_loss": min(res.val_loss),
        "first_train_loss": res.train_loss[0],
        "data_s": round(t_data, 3),
        "train_s": round(t_train, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return PredictorModel(res.x_mean, res.x_std, res.y_mean, res.y_std, res.layers, typemean, linear, meta)
