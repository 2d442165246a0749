"""The noisy oracle of the paper's robustness test (Fig. 10): factor bounds, determinism, registry."""

from __future__ import annotations

import pytest

from justitia.core.estimators import NoisyOracleEstimator
from justitia.core.policy import AppInfo
from justitia.policies import make_policy


def _info(i: int, cost: float = 1000.0) -> AppInfo:
    return AppInfo(f"app-{i}", 0.0, cost_hint=cost)


@pytest.mark.parametrize("lam", [1.0, 1.5, 3.0, 4.0])
def test_factor_stays_in_range_and_spreads(lam):
    est = NoisyOracleEstimator(lam, seed=7)
    factors = [est.estimate(_info(i)) / 1000.0 for i in range(2000)]
    assert all(1 / lam - 1e-12 <= f <= lam + 1e-12 for f in factors)
    if lam > 1:  # log-uniform: both halves of the range are used, about equally
        assert min(factors) < lam ** -0.9 and max(factors) > lam ** 0.9
        below = sum(f < 1 for f in factors) / len(factors)
        assert 0.45 < below < 0.55
    else:
        assert factors == [1.0] * len(factors)


def test_deterministic_per_app_and_seed():
    a, b = NoisyOracleEstimator(3.0, seed=1), NoisyOracleEstimator(3.0, seed=1)
    assert [a.estimate(_info(i)) for i in range(50)] == [b.estimate(_info(i)) for i in range(50)]
    other = NoisyOracleEstimator(3.0, seed=2)
    assert [a.factor(f"app-{i}") for i in range(50)] != [other.factor(f"app-{i}") for i in range(50)]
    # the factor belongs to the app, not to the call order
    assert a.factor("app-9") == NoisyOracleEstimator(3.0, seed=1).factor("app-9")


def test_registered_by_name_and_bad_lambda():
    p = make_policy("justitia-noisy3", 1000.0, 0.01)
    assert p.name == "justitia-noisy3" and p.estimator.lam == 3.0
    assert p.estimator.estimate(_info(3)) == NoisyOracleEstimator(3.0).estimate(_info(3))
    with pytest.raises(ValueError, match="λ"):
        NoisyOracleEstimator(0.5)
