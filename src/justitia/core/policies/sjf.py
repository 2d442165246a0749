"""Shortest remaining application cost first (SJF/SRPT over applications; DESIGN §6 "SJF-like").

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
from typing import ClassVar

from justitia.core.policy import AppInfo, Estimator, Key, Policy, Req, TracksChangedApps


class SJF(TracksChangedApps, Policy):
    """Shortest remaining (estimated) application cost first (SJF eq. 1)."""

    listens_to_service: ClassVar[bool] = True
    name = "sjf"
    needs_cost: ClassVar[bool] = True
    dynamic_keys: ClassVar[bool] = True

    def __init__(self, capacity_tokens: float, iteration_s: float, estimator: Estimator | None = None) -> None:
        super().__init__(capacity_tokens, iteration_s, estimator)
        self.remaining: dict[str, float] = {}
        self._order: dict[str, int] = {}
        self._next = 0
        self._init_changes()  # changed_apps(): the apps whose remaining cost moved

    def app_arrived(self, app: AppInfo, now: float) -> None:
        est = self.estimate(app)
        if not math.isfinite(est):
            raise ValueError(f"estimated cost of application {app.app_id!r} must be a finite number, got {est!r}")
        super().app_arrived(app, now)
        self.remaining[app.app_id] = max(est, 0.0)  # a regression may dip below 0
        self._order[app.app_id] = self._next
        self._next += 1
        self._mark(app.app_id)

    def served(self, req: Req, prefill_tokens: int, decode_tokens: int, held_token_iters: float, now: float) -> None:
        r = self.remaining.get(req.app_id)
        if r is None or held_token_iters <= 0 or r == 0.0:
            return
        self.remaining[req.app_id] = max(0.0, r - held_token_iters)
        self.version += 1
        self._mark(req.app_id)

    def app_finished(self, app_id: str, now: float) -> None:
        self.remaining.pop(app_id, None)
        self._order.pop(app_id, None)
        super().app_finished(app_id, now)

    def key(self, req: Req) -> Key:
        try:
            r, n = self.remaining[req.app_id], self._order[req.app_id]
        except KeyError:
            raise KeyError(f"request {req.req_id!r} belongs to unknown application {req.app_id!r}; "
                           "the engine must call app_arrived() first") from None
        return (r, self.apps[req.app_id].arrival_s, n, req.arrival_s, req.seq)
