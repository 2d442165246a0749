"""Table 1 of the paper (§5.4): demand predictors side by side on the same held-out agents.

Every predictor is trained on the same ``train_per_type`` agents of each type (drawn with other seeds
than the evaluated workload) and evaluated on the agents of the workload at ``table_density``:

* ``tfidf`` — the paper's method (:mod:`justitia.paper.tfidf`), when the workload has input texts;
* ``ours`` — our structural MLP (:mod:`justitia.predict`: the app's first stage and type at arrival),
  retrained here on these agents with the table's metric as its loss (relative error of the cost); its
  type one-hot covers the workload's own types (:class:`TypedMLPEstimator`), which the bundled model
  (trained on the generator types) does not know; ``ours-l1`` the same with the serving loss (L1 of
  log cost, the median), the estimator of ``-mlp`` policies in the other figures;
* ``typemean`` and ``linear`` — the baselines of :mod:`justitia.predict.baselines` on the same features;
* ``oracle`` — the true cost (the JCT reference).

Columns: mean and median relative error ``|Ĉ − C| / C``, ms per prediction (one ``estimate`` call,
features included, best of 3 passes), training time, and the mean JCT of ``justitia`` with that
estimator in the simulator on the same workload.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from justitia.apps.model import AppSpec
from justitia.core.policy import AppInfo, Estimator
from justitia.paper.config import PaperConfig, type_samples, workload_types
from justitia.paper.experiments import Context, run_policy
from justitia.predict.features import app_info, feature_vector, log_costs
from justitia.predict.models import PredictorModel


def typed_features(app: AppInfo, types: dict[str, int]) -> np.ndarray:
    """Our arrival features followed by a one-hot of ``app``'s type among ``types`` (type → column)."""
    x = np.zeros(len(types), dtype=np.float64)
    j = types.get(app.app_type)
    if j is not None:
        x[j] = 1.0
    return np.concatenate([feature_vector(app), x])


class TypedMLPEstimator:
    """Our MLP on :func:`justitia.predict.features.feature_vector` plus a one-hot of the training types."""

    name = "mlp"

    def __init__(self, model: PredictorModel, types: Sequence[str], linear: bool = False) -> None:
        self.model = model
        self.types = {t: i for i, t in enumerate(types)}
        self.linear = linear
        self.name = "linear" if linear else "mlp"

    def estimate(self, app: AppInfo) -> float:
        x = typed_features(app, self.types)
        y = self.model.predict_log_linear(x) if self.linear else self.model.predict_log(x)
        return math.exp(float(y))


def training_set(cfg: PaperConfig, types: Sequence[str], per_type: int) -> list[AppSpec]:
    """``per_type`` agents of each type, from seeds the evaluated workloads never use."""
    apps: list[AppSpec] = []
    for i, t in enumerate(types):
        apps += type_samples(cfg, t, per_type, cfg.seed + 7919 * (i + 1))
    return apps


def train_ours(apps: Sequence[AppSpec], types: Sequence[str], seed: int = 0) -> tuple[dict[str, Estimator], dict[str, float]]:
    """Our MLP twice and the two baselines on ``apps``; returns the estimators and the MLPs' training times.

    ``ours`` is trained on Table 1's own metric, the relative error of the cost (loss ``rel``);
    ``ours-l1`` with the serving default, L1 in log space (the median of the cost): it is the one the
    learned policies (``sjf-mlp``, ``justitia-mlp``) use in the other figures. Both rows are reported."""
    from justitia.predict.baselines import fit_linear, fit_typemean
    from justitia.predict.estimators import TypeMeanEstimator
    from justitia.predict.mlp import TrainConfig, train_mlp

    index = {t: i for i, t in enumerate(types)}
    x = np.stack([typed_features(app_info(a, oracle=False), index) for a in apps])
    y = log_costs(apps)
    typemean, linear = fit_typemean([a.type for a in apps], y), fit_linear(x, y)
    ests: dict[str, Estimator] = {}
    train_s: dict[str, float] = {}
    for name, loss in (("ours", "rel"), ("ours-l1", "l1")):
        t0 = time.perf_counter()
        res = train_mlp(x, y, TrainConfig(seed=seed, progress=False, epochs=150, batch_size=64, loss=loss))
        model = PredictorModel(res.x_mean, res.x_std, res.y_mean, res.y_std, res.layers, typemean, linear)
        ests[name] = TypedMLPEstimator(model, types)
        train_s[name] = time.perf_counter() - t0
    ests["typemean"] = TypeMeanEstimator(table=typemean)
    ests["linear"] = TypedMLPEstimator(model, types, linear=True)
    return ests, train_s


def train_tfidf(cfg: PaperConfig, apps: Sequence[AppSpec]) -> Any:
    """The paper's per-type TF-IDF MLPs on ``apps`` (``None`` without input texts)."""
    from justitia.paper.tfidf import TfidfEstimator, TfidfMLPConfig

    if cfg.input_text is None:
        return None
    by_type: dict[str, tuple[list[str], list[float]]] = {}
    for a in apps:
        tx, cs = by_type.setdefault(a.type, ([], []))
        tx.append(cfg.input_text(a))
        cs.append(a.cost)
    return TfidfEstimator.train(by_type, TfidfMLPConfig(seed=cfg.seed))


def train_all(ctx: Context, held_out: Sequence[AppSpec]) -> dict[str, Any]:
    """Train every predictor on the same agents; store ``ours-l1`` (the serving loss) as the context's
    ``mlp`` estimator."""
    cfg = ctx.cfg
    types = workload_types(held_out)
    apps = training_set(cfg, types, cfg.train_per_type)
    ests, mlp_s = train_ours(apps, types, cfg.seed)
    ctx.step("Table 1: train our MLP")
    train_s: dict[str, float] = {**mlp_s, "typemean": 0.0, "linear": 0.0}
    tf = train_tfidf(cfg, apps)
    if tf is not None:
        ctx.step("Table 1: train TF-IDF MLPs")
        ests["tfidf"] = tf.with_texts({a.app_id: cfg.input_text(a) for a in held_out})  # type: ignore[misc]
        train_s["tfidf"] = tf.train_s
    ctx.estimators["mlp"] = ests["ours-l1"]
    return {"estimators": ests, "train_s": train_s, "train_apps": len(apps), "types": types}


def table1(ctx: Context, trained: dict[str, Any], density: float) -> dict[str, Any]:
    """Errors, speed and resulting mean JCT of every trained predictor (and the oracle) at ``density``."""
    from justitia.core.estimators import OracleEstimator
    from justitia.predict.evaluate import time_single

    s = ctx.setting(density)
    infos = [app_info(a, oracle=True) for a in s.apps]
    true = np.asarray([a.cost for a in s.apps], dtype=np.float64)
    ests: dict[str, Estimator] = {**trained["estimators"], "oracle": OracleEstimator()}
    rows: dict[str, Any] = {}
    for name, est in ests.items():
        pred, ms = time_single(est, infos)
        rel = np.abs(pred - true) / true
        run = run_policy(s, "justitia", estimator=est, label=f"justitia ({name})")
        ctx.step(f"Table 1: {name}")
        rows[name] = {"mean_rel_error": float(rel.mean()), "median_rel_error": float(np.median(rel)),
                      "ms_per_prediction": ms, "train_s": trained["train_s"].get(name, 0.0),
                      "mean_jct_s": run.mean_s}
    return {"density": density, "held_out_apps": len(s.apps), "train_apps": trained["train_apps"],
            "train_per_type": ctx.cfg.train_per_type, "types": trained["types"], "rows": rows,
            "tfidf_missing": "tfidf" not in ests}


def table1_steps(cfg: PaperConfig) -> int:
    return 1 + (2 if cfg.input_text is not None else 0) + 5
