"""Cost estimators by name: an application's total cost (cost eq. 2, paper §4.2) at its arrival.

:data:`ESTIMATORS` is the one registry of estimator names; :func:`justitia.policies.make_policy` reads
it, so ``make_policy("justitia-mlp", ...)`` works in the simulator and, through
``JUSTITIA_ESTIMATOR=mlp``, in the vLLM plugin:

* ``oracle`` — the declared cost (:class:`justitia.core.estimators.OracleEstimator`);

* ``mlp`` — the trained MLP (numpy forward pass; no torch import when serving);
* ``typemean`` — the per-type geometric-mean cost of the training split;
* ``linear`` — least squares on the same features;
* ``noisy1`` … ``noisy4`` — the oracle × a random factor in ``[1/λ, λ]`` (the paper's Fig. 10;
  :class:`justitia.core.estimators.NoisyOracleEstimator`).

All read one model file: the ``path`` argument, else ``$JUSTITIA_PREDICTOR_MODEL``, else
:func:`default_model_path` (``<cache_dir>/predictor/model.pt``, written by ``justitia predictor train``).

Missing or unusable model: ``mlp`` and ``linear`` log one warning (naming the file, the problem and
``justitia predictor train``) and fall back to the per-type mean, so a simulation or server still runs;
``strict=True`` raises instead. ``typemean`` without a model file uses the per-type means of freshly
generated applications (:func:`justitia.predict.baselines.default_typemean`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from justitia.core import estimators as core_estimators
from justitia.core.estimators import OracleEstimator
from justitia.core.policy import AppInfo, Estimator
from justitia.predict.features import feature_matrix, feature_vector
from justitia.predict.models import PredictorModel, TypeMeanTable

log = logging.getLogger("justitia.predict")
_warned: set[tuple[str, str]] = set()

MODEL_ENV = "JUSTITIA_PREDICTOR_MODEL"


def default_model_path() -> Path:
    """Where ``justitia predictor train`` writes and estimators read by default."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    from justitia.paths import cache_dir

    return cache_dir() / "predictor" / "model.pt"


def _warn_once(path: Path, msg: str) -> None:
    key = (str(path), msg)
    if key not in _warned:
        _warned.add(key)
        log.warning("%s", msg)


def load_model(path: str | Path | None = None, *, strict: bool = False, user: str = "mlp") -> PredictorModel | None:
    """Load the model; on failure raise (``strict``) or warn once and return ``None``."""
    p = Path(path) if path is not None else default_model_path()
    try:
        return PredictorModel.load(p)
    except (FileNotFoundError, ValueError) as e:
        if strict:
            raise
        _warn_once(p, f"estimator {user!r}: {e}; falling back to the per-type mean cost")
        return None


class TypeMeanEstimator:
    """Per-type geometric-mean cost (baseline; the fallback of the learned estimators)."""

    name = "typemean"

    def __init__(self, path: str | Path | None = None, table: TypeMeanTable | None = None) -> None:
        if table is None:
            p = Path(path) if path is not None else default_model_path()
            if p.is_file():
                model = load_model(p, user=self.name)
                table = model.typemean if model is not None else None
            elif path is not None:
                raise FileNotFoundError(f"predictor model not found: {p} (run `justitia predictor train`)")
        if table is None:
            from justitia.predict.baselines import default_typemean

            table = default_typemean()
        self.table = table
        self._cache = {t: math.exp(v) for t, v in table.means.items()}
        self._overall = math.exp(table.overall)

    def estimate(self, app: AppInfo) -> float:
        return self._cache.get(app.app_type, self._overall)

    def estimate_many(self, apps: Sequence[AppInfo]) -> np.ndarray:
        return np.asarray([self.estimate(a) for a in apps])


class _ModelEstimator:
    name = "model"

    def __init__(self, path: str | Path | None = None, strict: bool = False, model: PredictorModel | None = None) -> None:
        self.model = model if model is not None else load_model(path, strict=strict, user=self.name)
        self.fallback: TypeMeanEstimator | None = None
        if self.model is None:
            self.fallback = TypeMeanEstimator(table=None)

    def _predict_log(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def estimate(self, app: AppInfo) -> float:
        """Estimated cost (token·iterations, cost eq. 2) of ``app`` at arrival."""
        if self.fallback is not None:
            return self.fallback.estimate(app)
        return math.exp(float(self._predict_log(feature_vector(app))))

    def estimate_many(self, apps: Sequence[AppInfo]) -> np.ndarray:
        """Batch form of :meth:`estimate` (one matrix product for all ``apps``)."""
        if self.fallback is not None:
            return self.fallback.estimate_many(apps)
        return np.exp(self._predict_log(feature_matrix(apps)))


class MLPEstimator(_ModelEstimator):
    """The trained MLP of :mod:`justitia.predict.mlp`, served by a numpy forward pass."""

    name = "mlp"

    def _predict_log(self, x: np.ndarray) -> np.ndarray:
        assert self.model is not None
        return self.model.predict_log(x)


class LinearEstimator(_ModelEstimator):
    """Least squares on the MLP's features (baseline)."""

    name = "linear"

    def _predict_log(self, x: np.ndarray) -> np.ndarray:
        assert self.model is not None
        return self.model.predict_log_linear(x)


ESTIMATORS: dict[str, Callable[..., Estimator]] = {
    "oracle": OracleEstimator,
    "mlp": MLPEstimator,
    "typemean": TypeMeanEstimator,
    "linear": LinearEstimator,
    **{f"noisy{k}": getattr(core_estimators, f"noisy{k}") for k in range(1, 5)},  # the paper's Fig. 10
}
"""Estimator name -> factory (keyword arguments: ``path``, ``strict`` for the learned ones)."""


def make_estimator(name: str, **kwargs: Any) -> Estimator:
    """Build an estimator by name; ``ValueError`` naming the choices for an unknown one."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose one of: {', '.join(sorted(ESTIMATORS))}")
    return ESTIMATORS[name](**kwargs)
