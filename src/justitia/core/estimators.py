"""The oracle cost estimator: the declared cost of an application (paper §5.5's "true cost"; DESIGN §6).

The learned estimators (paper §4.2) live in :mod:`justitia.predict`, which also registers estimator names.
"""

from __future__ import annotations

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
