"""Build a policy by name: the one builder of ``policy[-estimator]`` names (paper §4; DESIGN §1, §6).

``"justitia-mlp"`` is the policy ``justitia`` (:mod:`justitia.core`) with the estimator ``mlp``
(:mod:`justitia.predict`). This module joins the two so that neither imports the other: the core
defines policies, the :class:`~justitia.core.policy.Estimator` protocol and the name parser
(:func:`~justitia.core.policy.split_policy_name`); the predictor defines the estimators by name. The
simulator, the bench, calibration, the vLLM plugin and the plots all build policies here.
"""

from __future__ import annotations

from typing import Any

from justitia.core.estimators import OracleEstimator
from justitia.core.policy import Estimator, Policy, policy_class, split_policy_name
from justitia.predict.estimators import make_estimator


def make_policy(
    name: str,
    capacity_tokens: float,
    iteration_s: float,
    estimator: str | Estimator | None = None,
    **kwargs: Any,
) -> Policy:
    """Build a policy by name. ``justitia-mlp`` is ``justitia`` with ``estimator="mlp"``.

    Policies that need costs (``justitia``, ``sjf``) default to the ``oracle`` estimator.
    """
    base, suffix = split_policy_name(name)
    if suffix:
        if estimator is not None and estimator != suffix:
            raise ValueError(f"policy {name!r} names estimator {suffix!r} but estimator={estimator!r} was given")
        estimator = suffix
    cls = policy_class(base)
    est = make_estimator(estimator) if isinstance(estimator, str) else estimator
    if est is None and cls.needs_cost:
        est = OracleEstimator()
    policy = cls(capacity_tokens, iteration_s, estimator=est, **kwargs)
    if suffix:
        policy.name = name  # type: ignore[misc]  # report "justitia-mlp", not "justitia"
    return policy


def needs_cost(name: str) -> bool:
    """True if the policy ``name`` needs an application cost and its name chooses no estimator
    (``justitia``, ``sjf``; not ``justitia-mlp``, not ``fcfs``). ``ValueError`` for an unknown policy."""
    base, suffix = split_policy_name(name)
    return not suffix and policy_class(base).needs_cost


def with_estimator(name: str, estimator: str) -> str:
    """The full name of policy ``name`` in a run whose default estimator is ``estimator``:
    ``("justitia", "mlp")`` -> ``"justitia-mlp"``; a name that chooses its own estimator, a policy that
    needs no cost, and the ``oracle`` (every policy's default) leave ``name`` as it is."""
    return f"{name}-{estimator}" if estimator != "oracle" and needs_cost(name) else name
