"""The oracle cost estimator: the declared cost of an application (paper §5.5's "true cost"; DESIGN §6),
and the paper's noisy oracle (§5.5, Fig. 10: the true cost × a random factor in [1/λ, λ]).

The learned estimators (paper §4.2) live in :mod:`justitia.predict`, which also registers estimator names.
"""

from __future__ import annotations

import functools
import hashlib
import math

from justitia.core.policy import AppInfo


class OracleEstimator:
    """The application's declared cost (``cost_hint``): the true cost in the simulator.

    An application without a hint (a plain request in vLLM) is estimated from its first call as if it
    produced as many tokens as its prompt, capped (cost eq. 1 with ``o = min(p, 512)``).
    """

    name = "oracle"

    def estimate(self, app: AppInfo) -> float:
        if app.cost_hint is not None:
            return float(app.cost_hint)
        p = int(app.features.get("prompt_tokens_total", 0) or 0)
        o = min(max(p, 1), 512)
        return float(o * p + o * (o + 1) // 2)


class NoisyOracleEstimator:
    """The true cost times a random factor in ``[1/λ, λ]`` (the paper's robustness test, §5, Fig. 10).

    The factor is ``λ^u`` with ``u`` uniform in ``[-1, 1]`` (log-uniform: as likely to halve as to
    double the cost), drawn from a hash of ``(seed, app_id)``: the same application gets the same
    factor in every run, engine and process. ``λ = 1`` is the oracle. Needs ``cost_hint`` (the
    simulator's oracle); without one it falls back to :class:`OracleEstimator`'s guess, still scaled.
    """

    def __init__(self, lam: float, seed: int = 0) -> None:
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 1.0):
            raise ValueError(f"noise range λ must be a finite number >= 1, got {lam!r}")
        self.lam = float(lam)
        self.seed = int(seed)
        self.name = f"noisy{lam:g}"
        self._oracle = OracleEstimator()

    def factor(self, app_id: str) -> float:
        """The multiplicative error of ``app_id``'s estimate, in ``[1/λ, λ]``."""
        h = hashlib.blake2b(f"{self.seed}:{app_id}".encode(), digest_size=8).digest()
        u = int.from_bytes(h, "little") / float(1 << 64)  # [0, 1)
        return float(self.lam ** (2.0 * u - 1.0))

    def estimate(self, app: AppInfo) -> float:
        return self._oracle.estimate(app) * self.factor(app.app_id)


# Registered as estimators ``noisy1`` … ``noisy4`` (so ``justitia-noisy3`` works by name).
noisy1 = functools.partial(NoisyOracleEstimator, 1.0)
noisy2 = functools.partial(NoisyOracleEstimator, 2.0)
noisy3 = functools.partial(NoisyOracleEstimator, 3.0)
noisy4 = functools.partial(NoisyOracleEstimator, 4.0)
