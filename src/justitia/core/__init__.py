"""Engine-agnostic scheduling core: cost, virtual clock, Policy interface and policies.

Imports neither vLLM nor torch (DESIGN §1).
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
