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
from typing import ClassVar

from justitia.core.policy import AppInfo, Estimator, Key, Policy, Req, TracksChangedApps


class VTC(TracksChangedApps, Policy):
    """Least weighted tokens served first, per application (VTC eqs. 1–2)."""

    listens_to_service: ClassVar[bool] = True
    name = "vtc"
    dynamic_keys: ClassVar[bool] = True

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
        self.counter: dict[str, float] = {}
        # app_id -> {req_id: prompt tokens already charged} for its requests in the engine; an
        # application is *active* iff this is non-empty.
        self.live: dict[str, dict[str, int]] = {}
        self.lifts = 0
        self._init_changes()  # changed_apps(): the apps whose counter moved
        # (counter, app_id) of active apps, lazily stale: counters only grow, so a stale entry is <= the
        # truth and the smallest *fresh* entry is the smallest counter of the active apps (VTC eq. 2)
        self._mins: list[tuple[float, str]] = []

    def app_arrived(self, app: AppInfo, now: float) -> None:
        super().app_arrived(app, now)
        self.counter.setdefault(app.app_id, 0.0)
        self.live.setdefault(app.app_id, {})
        self._mark(app.app_id)

    def request_arrived(self, req: Req, now: float) -> None:
        app_id = self._known(req)
        reqs = self.live[app_id]
        if not reqs:  # (re)becomes active: VTC eq. 2
            low = self._min_active()
            if low is not None:
                lifted = max(self.counter[app_id], low)
                if lifted != self.counter[app_id]:
                    self.counter[app_id] = lifted
                    self.lifts += 1
                    self.version += 1
                    self._mark(app_id)
        if not reqs:
            heapq.heappush(self._mins, (self.counter[app_id], app_id))
        reqs[req.req_id] = 0

    def _min_active(self) -> float | None:
        """Smallest counter among active applications (amortized O(log n): stale entries are refreshed
        or dropped as they surface)."""
        h = self._mins
        while h:
            c, a = h[0]
            reqs = self.live.get(a)
            if not reqs:
                heapq.heappop(h)  # inactive or gone (pushed again when it becomes active)
                continue
            cur = self.counter[a]
            if c == cur:
                return c
            heapq.heapreplace(h, (cur, a))
        return None

    def served(self, req: Req, prefill_tokens: int, decode_tokens: int, held_token_iters: float, now: float) -> None:
        reqs = self.live.get(req.app_id)
        if reqs is None:
            return
        n_in = prefill_tokens
        if n_in and req.prompt_tokens > 0:  # charge each prompt token once; recompute is free
            done = reqs.get(req.req_id, 0)
            n_in = max(0, min(prefill_tokens, req.prompt_tokens - done))
            if req.req_id in reqs:
                reqs[req.req_id] = done + n_in
        delta = (self.input_weight * n_in + self.output_weight * decode_tokens) / self.apps[req.app_id].weight
        if delta:
            self.counter[req.app_id] += delta  # VTC eq. 1
            self.version += 1
            self._mark(req.app_id)

    def request_finished(self, req: Req, now: float) -> None:
        reqs = self.live.get(req.app_id)
        if reqs is not None:
            reqs.pop(req.req_id, None)

    def app_finished(self, app_id: str, now: float) -> None:
        self.counter.pop(app_id, None)
        self.live.pop(app_id, None)
        if not self.live:
            self._mins.clear()
        super().app_finished(app_id, now)

    def key(self, req: Req) -> Key:
        try:
            return (self.counter[req.app_id], req.arrival_s, req.seq)
        except KeyError:
            self._known(req)
            raise

    def _known(self, req: Req) -> str:
        if req.app_id not in self.counter:
            raise KeyError(f"request {req.req_id!r} belongs to unknown application {req.app_id!r}; "
                           "the engine must call app_arrived() first")
        return req.app_id
