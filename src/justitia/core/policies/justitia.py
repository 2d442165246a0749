"""Justitia: saturated serving in fair completion order (DESIGN §2, §6; arXiv 2510.17015).

Each application gets the virtual finish tag of the fair-sharing reference (clock eq. 2),
``F = V(a) + Ĉ / w``, where ``Ĉ`` is its estimated memory-centric cost (cost eq. 2) and ``V`` the
virtual time of weighted GPS over applications on the KV capacity (clock eq. 1). Requests are served
in ascending ``F`` (then application arrival and arrival order, request arrival, sequence):
``key(r) = (F_app, a_app, n_app, a_r, seq_r)``, so whole applications run
one after another, each saturating the engine ("selective pampering"); when memory runs out the
running request whose application has the largest ``F`` is preempted.

Online refinement (beyond the paper, issue 4 §3): when the service an application has received
passes its estimate, its estimate is raised to ``refine_factor ×`` the service so far and its tag
moves (``F = S + Ĉ_new / w``), so an under-estimated application cannot keep a small key forever.
When an application ends its true cost is known and its reference entry is corrected to it.
"""

from __future__ import annotations

import math
from typing import ClassVar

from justitia.core.clock import FairClock
from justitia.core.policy import AppInfo, Estimator, Key, Policy, Req


class Justitia(Policy):
    """Order by application virtual finish time ``F``; preempt the largest ``F`` first."""

    listens_to_service: ClassVar[bool] = True
    name = "justitia"
    app_events_keep_keys = True  # arrivals/finishes never re-key other apps
    needs_cost: ClassVar[bool] = True

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
        self.finish: dict[str, float] = {}
        self.start: dict[str, float] = {}
        self.estimated: dict[str, float] = {}
        self.served_cost: dict[str, float] = {}
        self.refinements = 0
        self._order: dict[str, int] = {}  # arrival order: equal-F apps still run one after another
        self._next = 0

    def set_capacity(self, capacity_tokens: float, iteration_s: float | None = None) -> None:
        version = self.version
        super().set_capacity(capacity_tokens, iteration_s)
        self.clock.set_rate(self.capacity_tokens, self.iteration_s)
        # The new rate moves V from now on; no finish tag F moves, so no key does: engines keep
        # their cached orders (the vLLM plugin pushes a new iteration time up to once a second).
        self.version = version

    def app_arrived(self, app: AppInfo, now: float) -> None:
        est = self.estimate(app)
        if not math.isfinite(est):
            raise ValueError(f"estimated cost of application {app.app_id!r} must be a finite number, got {est!r}")
        est = max(est, 0.0)  # a regression may dip below 0
        super().app_arrived(app, now)
        f = self.clock.arrive(app.app_id, now, est, app.weight)
        self.finish[app.app_id] = f
        self.start[app.app_id] = self.clock.v  # S = V(now): arrive() advanced the clock to now
        self.estimated[app.app_id] = est
        self.served_cost[app.app_id] = 0.0
        self._order[app.app_id] = self._next
        self._next += 1

    def served(self, req: Req, prefill_tokens: int, decode_tokens: int, held_token_iters: float, now: float) -> None:
        app_id = req.app_id
        got = self.served_cost.get(app_id)
        if got is None:
            return
        got += held_token_iters
        self.served_cost[app_id] = got
        if self.refine and got > self.estimated[app_id]:
            self._retag(app_id, got * self.refine_factor, now)
            self.refinements += 1

    def app_finished(self, app_id: str, now: float) -> None:
        if app_id in self.finish:
            # The true cost is known now: correct the reference (with an oracle nothing changes).
            self._retag(app_id, self.served_cost[app_id], now)
            for d in (self.finish, self.start, self.estimated, self.served_cost, self._order):
                d.pop(app_id, None)
        super().app_finished(app_id, now)

    def tick(self, now: float) -> None:
        self.clock.advance(now)

    def _retag(self, app_id: str, cost: float, now: float) -> None:
        w = self.apps[app_id].weight
        self.estimated[app_id] = cost
        if app_id in self.clock:
            f = self.clock.update_cost(app_id, cost)
        elif self.start[app_id] + cost / w <= self.clock.v:
            return  # already out of the reference and the new cost keeps it out
        else:
            f = self.clock.arrive(app_id, now, cost, w, start=self.start[app_id])
        if f != self.finish[app_id]:
            self.finish[app_id] = f
            self.version += 1

    def key(self, req: Req) -> Key:
        try:
            f = self.finish[req.app_id]
        except KeyError:
            raise KeyError(f"request {req.req_id!r} belongs to unknown application {req.app_id!r}; "
                           "the engine must call app_arrived() first") from None
        return (f, self.apps[req.app_id].arrival_s, self._order[req.app_id], req.arrival_s, req.seq)
