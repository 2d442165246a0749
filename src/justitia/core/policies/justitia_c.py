"""Justitia/C, the paper's ablation (§5.5, Fig. 11): Justitia with VTC's compute cost ``p + 2d``.

Everything is Justitia's (virtual finish tags over GPS on the KV capacity, agents served in tag
order) except the cost an agent is tagged with: ``C^c = Σ_calls (p + 2d)`` (VTC's weighted tokens)
instead of the KV token-time of cost eq. 1. ``C^c`` is in tokens, the clock in token·iterations, so it
is converted by ``κ`` = token·iterations the engine has served per weighted token served so far
(measured online from the service reports; :data:`KAPPA_START` before any): ``F = V(a) + κ·C^c / w``.
Each app keeps the ``κ`` of its arrival, so its tag is fixed for life as in the paper.

``C^c`` comes from the application's ``compute_cost`` feature (the simulator knows it exactly);
without one, ``C^c`` is the memory estimate over ``κ`` (Justitia's own tag). No refinement: the paper's
algorithm trusts its prediction; an estimator suffix (``justitia-c-mlp``) is refused.
"""

from __future__ import annotations

from justitia.core.policies.justitia import Justitia
from justitia.core.policy import AppInfo, Estimator, Req

KAPPA_START = 150.0
"""Token·iterations per weighted token before anything was served (a 1,000-token prompt decoding 200)."""


class JustitiaC(Justitia):
    """Justitia tagged with VTC's ``p + 2d`` cost (module docstring)."""

    name = "justitia-c"

    def __init__(self, capacity_tokens: float, iteration_s: float, estimator: Estimator | None = None) -> None:
        if estimator is not None and getattr(estimator, "name", "oracle") != "oracle":
            raise ValueError(f"justitia-c tags with the true p + 2d cost; estimator {estimator.name!r} is not supported")
        super().__init__(capacity_tokens, iteration_s, estimator, refine=False)
        self._held = 0.0
        self._weighted = 0.0
        self._kappa: dict[str, float] = {}

    @property
    def kappa(self) -> float:
        return self._held / self._weighted if self._weighted > 0 and self._held > 0 else KAPPA_START

    def estimate(self, app: AppInfo) -> float:
        k = self.kappa
        self._kappa[app.app_id] = k
        c = app.features.get("compute_cost")
        if c is None:
            return super().estimate(app)
        return k * float(c)

    def served(self, req: Req, prefill_tokens: int, decode_tokens: int, held_token_iters: float, now: float) -> None:
        self._held += held_token_iters
        units = prefill_tokens + 2 * decode_tokens
        self._weighted += units
        # account service in the app's own tag units, so the finish correction keeps its tag
        super().served(req, prefill_tokens, decode_tokens, self._kappa.get(req.app_id, self.kappa) * units, now)

    def app_finished(self, app_id: str, now: float) -> None:
        super().app_finished(app_id, now)
        self._kappa.pop(app_id, None)
