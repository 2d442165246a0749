"""Shortest remaining application cost first: the paper's SRJF baseline (§5.1) on the estimated cost.

Each application's total cost ``Ĉ`` (token·iterations, cost eq. 2) comes from the estimator at
arrival (by default the oracle: the true cost in the simulator). Its *remaining* cost is the
estimate minus the KV service it has received so far,

    R_app = max(0, Ĉ_app − Σ held_token_iters)                                       (SJF eq. 1)

and requests are served in ascending ``R`` (then application arrival and order, request arrival,
sequence): ``key(r) = (R_app(r), a_app, n_app, a_r, seq_r)``. The running request of the application
with the most remaining work is preempted first. ``R`` falls as service accrues, so keys are dynamic; a key depends
only on its application's ``R``, so :meth:`changed_apps` names the applications served since the last call.
Unlike Justitia there is no virtual time: a stream of small applications can starve a big one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from justitia.core.policy import AppInfo, AppState, Estimator, Key, Policy, Req, TracksChangedApps


@dataclass(slots=True)
class _SJFApp(AppState):
    remaining: float  # R_app (SJF eq. 1)


class SJF(TracksChangedApps, Policy):
    """Shortest remaining (estimated) application cost first (SJF eq. 1)."""

    listens_to_service: ClassVar[bool] = True
    name = "sjf"
    needs_cost: ClassVar[bool] = True
    dynamic_keys: ClassVar[bool] = True
    apps: dict[str, _SJFApp]  # type: ignore[assignment]

    def __init__(self, capacity_tokens: float, iteration_s: float, estimator: Estimator | None = None) -> None:
        super().__init__(capacity_tokens, iteration_s, estimator)
        self._init_changes()  # changed_apps(): the apps whose remaining cost moved

    def new_app(self, app: AppInfo, order: int, now: float) -> _SJFApp:
        est = self.estimate(app)
        if not math.isfinite(est):
            raise ValueError(f"estimated cost of application {app.app_id!r} must be a finite number, got {est!r}")
        self._mark(app.app_id)
        return _SJFApp(app, order, remaining=max(est, 0.0))  # a regression may dip below 0

    def served(self, req: Req, prefill_tokens: int, decode_tokens: int, held_token_iters: float, now: float) -> None:
        app = self.apps.get(req.app_id)
        if app is None or held_token_iters <= 0 or app.remaining == 0.0:
            return
        app.remaining = max(0.0, app.remaining - held_token_iters)
        self.version += 1
        self._mark(req.app_id)

    def key(self, req: Req) -> Key:
        try:
            app = self.apps[req.app_id]
        except KeyError:
            raise self.unknown_app(req) from None
        return (app.remaining, app.info.arrival_s, app.order, req.arrival_s, req.seq)
