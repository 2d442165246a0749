"""Evaluation of the predictors on a held-out split (paper §4.2, Table 1: relative error and time per prediction).

For each predictor (``mlp``, ``typemean``, ``linear``, ``oracle``) on the test applications:
``median_rel_error`` and ``p90_rel_error`` of ``|pred − true| / true`` (cost eq. 2), ``spearman`` (rank
correlation of predicted and true cost: what the scheduler's order depends on) and
``ms_per_prediction`` (wall time of one ``estimate(AppInfo)`` call, features included, averaged over the
split; single predictions, as the engines make them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from justitia.apps.model import AppSpec
from justitia.core.policy import AppInfo, Estimator
from justitia.predict.features import app_info

PREDICTORS = ("mlp", "typemean", "linear", "oracle")


def rankdata(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    a = np.asarray(a, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a), dtype=np.float64)
    sa = a[order]
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and sa[j + 1] == sa[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (0 when either side is constant)."""
    rx, ry = rankdata(x), rankdata(y)
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return 0.0
    r = float(((rx - rx.mean()) * (ry - ry.mean())).mean() / (sx * sy))
    return min(1.0, max(-1.0, r))


def metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    rel = np.abs(pred - true) / true
    return {
        "median_rel_error": float(np.median(rel)),
        "p90_rel_error": float(np.quantile(rel, 0.9)),
        "spearman": spearman(pred, true),
    }


def time_single(est: Estimator, infos: Sequence[AppInfo], repeats: int = 3) -> tuple[np.ndarray, float]:
    """Predictions of ``est`` one application at a time, and the best-of-``repeats`` ms per prediction."""
    best = float("inf")
    out = np.empty(len(infos))
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i, info in enumerate(infos):
            out[i] = est.estimate(info)
        best = min(best, (time.perf_counter() - t0) / len(infos) * 1e3)
    return out, best


def evaluate(estimators: dict[str, Estimator], apps: Sequence[AppSpec], *, hints: bool = False) -> dict[str, dict[str, Any]]:
    """``{name: {median_rel_error, p90_rel_error, spearman, ms_per_prediction}}`` on ``apps``."""
    if not apps:
        raise ValueError("no test applications to evaluate on")
    infos = [app_info(a, hints=hints, oracle=True) for a in apps]
    true = np.asarray([a.cost for a in apps], dtype=np.float64)
    out: dict[str, dict[str, Any]] = {}
    for name, est in estimators.items():
        pred, ms = time_single(est, infos)
        out[name] = {**metrics(pred, true), "ms_per_prediction": ms}
    return out


def by_type(estimators: dict[str, Estimator], apps: Sequence[AppSpec], *, hints: bool = False) -> dict[str, dict[str, float]]:
    """Median relative error of each predictor per application type: ``{type: {name: error}}``."""
    infos = [app_info(a, hints=hints, oracle=True) for a in apps]
    true = np.asarray([a.cost for a in apps], dtype=np.float64)
    types = np.asarray([a.type for a in apps])
    preds = {n: np.asarray([e.estimate(i) for i in infos]) for n, e in estimators.items()}
    out: dict[str, dict[str, float]] = {}
    for t in sorted(set(types.tolist())):
        sel = types == t
        out[t] = {n: float(np.median(np.abs(p[sel] - true[sel]) / true[sel])) for n, p in preds.items()}
        out[t]["apps"] = float(sel.sum())
    return out


def model_estimators(model_path: str) -> dict[str, Estimator]:
    """The four predictors, the learned ones from ``model_path`` (strict load)."""
    from justitia.core.estimators import OracleEstimator
    from justitia.predict.estimators import LinearEstimator, MLPEstimator, TypeMeanEstimator
    from justitia.predict.models import PredictorModel

    model = PredictorModel.load(model_path)
    return {
        "mlp": MLPEstimator(model=model),
        "typemean": TypeMeanEstimator(table=model.typemean),
        "linear": LinearEstimator(model=model),
        "oracle": OracleEstimator(),
    }


def evaluate_model(model_path: str, apps: Sequence[AppSpec], *, hints: bool = False) -> dict[str, dict[str, Any]]:
    """Evaluate the four predictors, the learned ones from ``model_path`` (strict load)."""
    return evaluate(model_estimators(model_path), apps, hints=hints)
