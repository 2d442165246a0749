"""Justitia: saturated serving in fair completion order (paper §4.3, eq. 2–3; DESIGN §2, §6).

Each application gets the virtual finish tag of the fair-sharing reference (clock eq. 2),
``F = V(a) + Ĉ / w``, where ``Ĉ`` is its estimated memory-centric cost (cost eq. 2) and ``V`` the
virtual time of weighted GPS over applications on the KV capacity (clock eq. 1). Requests are served
in ascending ``F`` (then application arrival and arrival order, request arrival, sequence):
``key(r) = (F_app, a_app, n_app, a_r, seq_r)``, so whole applications run
one after another, each saturating the engine ("selective pampering"); when memory runs out the
running request whose application has the largest ``F`` is preempted.

Online refinement (beyond the paper): when the service an application has received
passes its estimate, its estimate is raised to ``refine_factor ×`` the service so far and its tag
moves (``F = S + Ĉ_new / w``), so an under-estimated application cannot keep a small key forever.
When an application ends its true cost is known and its reference entry is corrected to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from justitia.core.clock import FairClock
from justitia.core.policy import AppInfo, AppState, Estimator, Key, Policy, Req


@dataclass(slots=True)
class _JustitiaApp(AppState):
    finish: float  # F: virtual finish tag (clock eq. 2)
    start: float  # S = V(a): virtual time at arrival
    estimated: float  # Ĉ: the cost F was computed from (raised by refinement)
    served: float = 0.0  # KV service received so far (token·iterations)


class Justitia(Policy):
    """Order by application virtual finish time ``F``; preempt the largest ``F`` first."""

    listens_to_service: ClassVar[bool] = True
    name = "justitia"
    app_events_keep_keys = True  # arrivals/finishes never re-key other apps
    needs_cost: ClassVar[bool] = True
    apps: dict[str, _JustitiaApp]  # type: ignore[assignment]

    def __init__(
        self,
        capacity_tokens: float,
        iteration_s: float,
        estimator: Estimator | None = None,
        refine: bool = True,
        refine_factor: float = 2.0,
    ) -> None:
        super().__init__(capacity_tokens, iteration_s, estimator)
        if refine_factor <= 1.0:
            raise ValueError(f"refine_factor must be > 1, got {refine_factor!r}")
        self.clock = FairClock(capacity_tokens, iteration_s)
        self.refine = refine
        self.refine_factor = refine_factor
        self.refinements = 0

    def set_capacity(self, capacity_tokens: float, iteration_s: float | None = None) -> None:
        super().set_capacity(capacity_tokens, iteration_s)
        self.clock.set_rate(self.capacity_tokens, self.iteration_s)

    def new_app(self, app: AppInfo, order: int, now: float) -> _JustitiaApp:
        est = self.estimate(app)
        if not math.isfinite(est):
            raise ValueError(f"estimated cost of application {app.app_id!r} must be a finite number, got {est!r}")
        est = max(est, 0.0)  # a regression may dip below 0
        f = self.clock.arrive(app.app_id, now, est, app.weight)
        # S = V(now): arrive() advanced the clock to now
        return _JustitiaApp(app, order, finish=f, start=self.clock.v, estimated=est)

    def served(self, req: Req, prefill_tokens: int, decode_tokens: int, held_token_iters: float, now: float) -> None:
        app = self.apps.get(req.app_id)
        if app is None:
            return
        app.served += held_token_iters
        if self.refine and app.served > app.estimated:
            self._retag(app, app.served * self.refine_factor, now)
            self.refinements += 1

    def app_finished(self, app_id: str, now: float) -> None:
        app = self.apps.get(app_id)
        if app is not None:
            # The true cost is known now: correct the reference (with an oracle nothing changes).
            self._retag(app, app.served, now)
        super().app_finished(app_id, now)

    def tick(self, now: float) -> None:
        self.clock.advance(now)

    def virtual_time(self) -> float:
        return self.clock.v

    def _retag(self, app: _JustitiaApp, cost: float, now: float) -> None:
        app_id, w = app.info.app_id, app.info.weight
        app.estimated = cost
        if app_id in self.clock:
            f = self.clock.update_cost(app_id, cost)
        elif app.start + cost / w <= self.clock.v:
            return  # already out of the reference and the new cost keeps it out
        else:
            f = self.clock.arrive(app_id, now, cost, w, start=app.start)
        if f != app.finish:
            app.finish = f
            self.version += 1

    def key(self, req: Req) -> Key:
        try:
            app = self.apps[req.app_id]
        except KeyError:
            raise self.unknown_app(req) from None
        return (app.finish, app.info.arrival_s, app.order, req.arrival_s, req.seq)
