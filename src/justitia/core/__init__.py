"""Engine-agnostic scheduling core: cost, virtual clock, Policy interface and policies.

Imports neither vLLM nor torch (DESIGN §1).
"""

from justitia.core.clock import FairClock
from justitia.core.cost import app_cost, call_cost
from justitia.core.policy import AppInfo, Policy, Req, make_policy, policy_names

__all__ = [
    "AppInfo",
    "FairClock",
    "Policy",
    "Req",
    "app_cost",
    "call_cost",
    "make_policy",
    "policy_names",
]
