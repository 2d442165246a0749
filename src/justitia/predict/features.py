"""Arrival-time features of an application (paper §4.2: the input of the per-type predictor; DESIGN §6).

One path for training and serving: an :class:`~justitia.apps.model.AppSpec` (training side, the
simulator) becomes an :class:`~justitia.core.policy.AppInfo` through :func:`app_info`, whose
``features`` mapping is :func:`arrival_features`; an engine (the simulator or the vLLM plugin) hands the
predictor an ``AppInfo`` directly. :func:`feature_vector` turns *any* ``AppInfo`` into the model input,
so training and serving see identical features.

``AppInfo.features`` keys read here (all optional; missing ones take the default shown):

=======================  ======================================================================  =======
key                      meaning                                                                 default
=======================  ======================================================================  =======
``first_stage_calls``    number of calls in the application's first stage (parallel fan-out)     1
``prompt_tokens_total``  sum of the first stage's prompt lengths (tokens)                        0
``prompt_tokens_max``    longest first-stage prompt (tokens)                                     total / calls
``hint_stages``          client-declared number of stages (e.g. ToT depth × 2 + 1, debate rounds) absent
``hint_calls``           client-declared total number of calls                                   absent
=======================  ======================================================================  =======

``AppInfo.app_type`` gives the type (one-hot over :data:`KNOWN_TYPES`; anything else is ``unknown``).
Hints are structural facts a client knows before it runs (its program's shape), not realised output
lengths. A per-call ``max_tokens`` cap is deliberately *not* a feature: it bounds but does not predict an
output length, and none of our training data carries one. In the vLLM plugin these keys come from
``vllm_xargs`` of an application's first request.

The target is ``log(cost)``, the application's total memory-centric cost (cost eq. 2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from justitia.apps.model import AppSpec, arrival_features
from justitia.core.policy import AppInfo

FEATURE_VERSION = 1
"""Bumped whenever :func:`feature_vector` changes meaning; model files record it."""

KNOWN_TYPES: tuple[str, ...] = ("chat", "mapreduce", "self-consistency", "tree-of-thought", "debate", "react")
"""Application types with their own one-hot column (those of :mod:`justitia.apps.generators`)."""

UNKNOWN = "unknown"

FEATURE_NAMES: tuple[str, ...] = (
    *(f"type={t}" for t in (*KNOWN_TYPES, UNKNOWN)),
    "log_calls",
    "log_prompt_total",
    "log_prompt_mean",
    "log_prompt_max",
    "has_hint_stages",
    "log_hint_stages",
    "has_hint_calls",
    "log_hint_calls",
)
"""Column names of :func:`feature_vector`, in order."""

N_FEATURES = len(FEATURE_NAMES)
_TYPE_INDEX = {t: i for i, t in enumerate((*KNOWN_TYPES, UNKNOWN))}
_BASE = len(KNOWN_TYPES) + 1


def app_info(spec: AppSpec, *, hints: bool = False, oracle: bool = True) -> AppInfo:
    """The :class:`AppInfo` an engine builds for ``spec`` (``cost_hint`` = true cost when ``oracle``)."""
    return AppInfo(
        app_id=spec.app_id,
        arrival_s=spec.arrival_s,
        weight=spec.weight,
        app_type=spec.type,
        cost_hint=spec.cost if oracle else None,
        features=arrival_features(spec, hints=hints),
    )


def _num(features: Mapping[str, Any], key: str, app_id: str) -> float | None:
    v = features.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"application {app_id!r}: feature {key!r} must be a finite number >= 0, got {v!r}")
    return float(v)


def fill_vector(info: AppInfo, out: np.ndarray) -> np.ndarray:
    """Write the feature vector of ``info`` into ``out`` (length :data:`N_FEATURES`) and return it."""
    f = info.features
    out[:] = 0.0
    out[_TYPE_INDEX.get(info.app_type, _BASE - 1)] = 1.0
    calls = _num(f, "first_stage_calls", info.app_id)
    calls = max(calls if calls is not None else 1.0, 1.0)
    total = _num(f, "prompt_tokens_total", info.app_id) or 0.0
    pmax = _num(f, "prompt_tokens_max", info.app_id)
    if pmax is None:
        pmax = total / calls
    out[_BASE + 0] = math.log(calls)
    out[_BASE + 1] = math.log1p(total)
    out[_BASE + 2] = math.log1p(total / calls)
    out[_BASE + 3] = math.log1p(pmax)
    hs = _num(f, "hint_stages", info.app_id)
    if hs is not None:
        out[_BASE + 4] = 1.0
        out[_BASE + 5] = math.log1p(hs)
    hc = _num(f, "hint_calls", info.app_id)
    if hc is not None:
        out[_BASE + 6] = 1.0
        out[_BASE + 7] = math.log1p(hc)
    return out


def feature_vector(info: AppInfo) -> np.ndarray:
    """The model input of one application (float64, :data:`FEATURE_NAMES` order)."""
    return fill_vector(info, np.empty(N_FEATURES, dtype=np.float64))


def feature_matrix(infos: Sequence[AppInfo]) -> np.ndarray:
    """Feature vectors of many applications, one row each."""
    x = np.empty((len(infos), N_FEATURES), dtype=np.float64)
    for i, info in enumerate(infos):
        fill_vector(info, x[i])
    return x


def log_costs(specs: Iterable[AppSpec]) -> np.ndarray:
    """Targets: ``log(cost)`` (cost eq. 2) of each application."""
    return np.log(np.asarray([max(s.cost, 1.0) for s in specs], dtype=np.float64))
