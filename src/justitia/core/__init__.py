"""Engine-agnostic scheduling core: cost (paper §4.1, eq. 1), virtual clock (§4.3, eq. 2–3), the Policy
interface and the policies.

Imports neither vLLM nor torch, nor :mod:`justitia.predict` (DESIGN §1); policies are built by name with
their estimators in :mod:`justitia.policies`.
"""

from justitia.core.clock import FairClock
from justitia.core.cost import app_cost, call_cost
from justitia.core.policy import AppInfo, Policy, Req, policy_class, policy_names, split_policy_name

__all__ = [
    "AppInfo",
    "FairClock",
    "Policy",
    "Req",
    "app_cost",
    "call_cost",
    "policy_class",
    "policy_names",
    "split_policy_name",
]
