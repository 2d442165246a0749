"""Baseline predictors in the same harness as the MLP (paper §4.2, Table 1's comparison).

* per-type mean — the mean of ``log(cost)`` of each application type in the training split
  (the geometric mean of the cost); unseen or ``unknown`` types get the overall mean;
* linear — least squares on the *same* features as the MLP (:func:`justitia.predict.features.feature_vector`)
  predicting ``log(cost)`` (a tiny ridge term keeps collinear one-hot columns well-posed);
* oracle — the true cost (``AppInfo.cost_hint``; :class:`justitia.core.estimators.OracleEstimator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from justitia.predict.models import TypeMeanTable


def fit_typemean(types: Sequence[str], y: np.ndarray) -> TypeMeanTable:
    """Per-type mean of the targets ``y`` (log costs)."""
    if len(types) != len(y) or len(y) == 0:
        raise ValueError(f"need as many types as targets (>0), got {len(types)} and {len(y)}")
    means: dict[str, float] = {}
    arr = np.asarray(types)
    for t in sorted(set(types)):
        means[t] = float(y[arr == t].mean())
    means.pop("unknown", None)  # unknown is by definition the overall mean
    return TypeMeanTable(means, float(y.mean()))


def fit_linear(x: np.ndarray, y: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    """Least-squares coefficients on ``[x, 1]`` (numpy); the last entry is the intercept."""
    xa = np.hstack([x, np.ones((x.shape[0], 1))])
    a = xa.T @ xa + ridge * np.eye(xa.shape[1])
    return np.linalg.solve(a, xa.T @ y)


@lru_cache(maxsize=1)
def default_typemean(n_per_type: int = 300, seed: int = 0) -> TypeMeanTable:
    """The per-type table of freshly generated applications (every generator type, fixed seed).

    The fallback when no usable model file exists: it needs no training run, only the traces.
    """
    from justitia.apps.generators import GENERATORS
    from justitia.apps.workloads import make_workload
    from justitia.predict.features import log_costs

    types: list[str] = []
    ys: list[np.ndarray] = []
    for t in GENERATORS:
        apps = make_workload(t, n_per_type, seed)
        types += [a.type for a in apps]
        ys.append(log_costs(apps))
    return fit_typemean(types, np.concatenate(ys))
