"""Virtual Token Counter (VTC; Sheng et al., "Fairness in Serving Large Language Models", OSDI'24).

The client is the *application*. Each application ``u`` has a counter ``c_u`` of the weighted tokens
it has been served, divided by its weight ``w_u`` (VTC §4, weighted variant):

    c_u += (w_p · n_in + w_q · n_out) / w_u                                           (VTC eq. 1)

with ``n_in`` prompt tokens prefilled and ``n_out`` tokens generated (defaults ``w_p = 1``,
``w_q = 2``, the paper's prices). Requests are served in ascending counter (least served first):

    key(r) = (c_{app(r)}, a_r, seq_r)

and the running request of the most-served application is preempted first.

Counter lift (VTC Algorithm 2, the rule its fairness bound rests on): when an application becomes
*active* again — its first request arrives while it has no other request in the engine — its counter
is raised to the smallest counter of the other active applications,

    c_u ← max(c_u, min_{v active, v ≠ u} c_v)                                        (VTC eq. 2)

so an application cannot bank credit while idle (between stages, or before it first arrived: a new
application starts at 0 and is lifted the same way). "Active" here means "has a request in the
engine" (waiting or running); the policy does not see which of its requests are waiting.

Recompute after preemption is not charged: per request, at most ``prompt_tokens`` prefill tokens
are counted (when the engine reports the prompt length), so being preempted does not cost a client.
Counters change as service accrues, so keys are dynamic; :attr:`version` increments on every change
and :meth:`changed_apps` names the applications whose counter moved (a key depends on its app's only).
Per-application state lives from ``app_arrived`` to ``app_finished``; per-request state until
``request_finished``.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import ClassVar

from justitia.core.policy import AppInfo, AppState, Estimator, Key, Policy, Req, TracksChangedApps


@dataclass(slots=True)
class _VTCApp(AppState):
    counter: float = 0.0  # c_u (VTC eq. 1)
    # req_id -> prompt tokens already charged, for its requests in the engine; active iff non-empty
    live: dict[str, int] = field(default_factory=dict)


class VTC(TracksChangedApps, Policy):
    """Least weighted tokens served first, per application (VTC eqs. 1–2)."""

    listens_to_service: ClassVar[bool] = True
    name = "vtc"
    dynamic_keys: ClassVar[bool] = True
    apps: dict[str, _VTCApp]  # type: ignore[assignment]

    def __init__(
        self,
        capacity_tokens: float,
        iteration_s: float,
        estimator: Estimator | None = None,
        input_weight: float = 1.0,
        output_weight: float = 2.0,
    ) -> None:
        super().__init__(capacity_tokens, iteration_s, estimator)
        for label, val in (("input_weight", input_weight), ("output_weight", output_weight)):
            if not (math.isfinite(val) and val >= 0):
                raise ValueError(f"{label} must be a finite number >= 0, got {val!r}")
        self.input_weight = float(input_weight)
        self.output_weight = float(output_weight)
        self.lifts = 0
        self._init_changes()  # changed_apps(): the apps whose counter moved
        # (counter, app_id) of active apps, lazily stale: counters only grow, so a stale entry is <= the
        # truth and the smallest *fresh* entry is the smallest counter of the active apps (VTC eq. 2)
        self._mins: list[tuple[float, str]] = []

    def new_app(self, app: AppInfo, order: int, now: float) -> _VTCApp:
        self._mark(app.app_id)
        old = self.apps.get(app.app_id)  # arriving again while known: keeps its counter and requests
        return _VTCApp(app, order) if old is None else _VTCApp(app, order, old.counter, old.live)

    def request_arrived(self, req: Req, now: float) -> None:
        app = self.app_of(req)
        if not app.live:  # (re)becomes active: VTC eq. 2
            low = self._min_active()
            if low is not None:
                lifted = max(app.counter, low)
                if lifted != app.counter:
                    app.counter = lifted
                    self.lifts += 1
                    self.version += 1
                    self._mark(req.app_id)
            heapq.heappush(self._mins, (app.counter, req.app_id))
        app.live[req.req_id] = 0

    def _min_active(self) -> float | None:
        """Smallest counter among active applications (amortized O(log n): stale entries are refreshed
        or dropped as they surface)."""
        h = self._mins
        while h:
            c, a = h[0]
            app = self.apps.get(a)
            if app is None or not app.live:
                heapq.heappop(h)  # inactive or gone (pushed again when it becomes active)
                continue
            if c == app.counter:
                return c
            heapq.heapreplace(h, (app.counter, a))
        return None

    def served(self, req: Req, prefill_tokens: int, decode_tokens: int, held_token_iters: float, now: float) -> None:
        app = self.apps.get(req.app_id)
        if app is None:
            return
        n_in = prefill_tokens
        if n_in and req.prompt_tokens > 0:  # charge each prompt token once; recompute is free
            reqs = app.live
            done = reqs.get(req.req_id, 0)
            n_in = max(0, min(prefill_tokens, req.prompt_tokens - done))
            if req.req_id in reqs:
                reqs[req.req_id] = done + n_in
        delta = (self.input_weight * n_in + self.output_weight * decode_tokens) / app.info.weight
        if delta:
            app.counter += delta  # VTC eq. 1
            self.version += 1
            self._mark(req.app_id)

    def request_finished(self, req: Req, now: float) -> None:
        app = self.apps.get(req.app_id)
        if app is not None:
            app.live.pop(req.req_id, None)

    def app_finished(self, app_id: str, now: float) -> None:
        super().app_finished(app_id, now)
        if not self.apps:
            self._mins.clear()

    def key(self, req: Req) -> Key:
        try:
            return (self.apps[req.app_id].counter, req.arrival_s, req.seq)
        except KeyError:
            raise self.unknown_app(req) from None

    def state_entries(self) -> int:
        return super().state_entries() + sum(len(a.live) for a in self.apps.values())
