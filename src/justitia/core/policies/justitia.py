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

Cluster replicas (DESIGN §7): an application whose ``AppInfo.features["finish_tag"]`` is set was
tagged by the cluster dispatcher with its *global* finish tag; it is ordered by that tag (and by later
ones pushed with :meth:`Justitia.set_finish_tag`), never by the local clock or local refinement.
Without the feature the policy behaves exactly as on a single server.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
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
    global_tag: bool = False  # ordered by the cluster dispatcher's global finish tag
    ref: Hashable = None  # its key in the clock: the app id, or (id, order) if that id is still in it


class Justitia(Policy):
    """Order by application virtual finish time ``F``; preempt the largest ``F`` first."""

    listens_to_service: ClassVar[bool] = True
    name = "justitia"
    app_events_keep_keys = True  # arrivals/finishes never re-key other apps
    needs_cost: ClassVar[bool] = True
    apps: dict[str, _JustitiaApp]  # type: ignore[assignment]
    #: The per-application record (a variant may extend it).
    record: ClassVar[type[_JustitiaApp]] = _JustitiaApp

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
        version = self.version
        super().set_capacity(capacity_tokens, iteration_s)
        self.clock.set_rate(self.capacity_tokens, self.iteration_s)
        # The new rate moves V from now on; no finish tag F moves, so no key does: engines keep
        # their cached orders (the vLLM plugin pushes a new iteration time up to once a second).
        self.version = version

    def new_app(self, app: AppInfo, order: int, now: float) -> _JustitiaApp:
        tag = app.features.get("finish_tag") if app.features else None
        if tag is not None:
            _check_tag(app.app_id, tag)  # before any state changes
        est = self.estimate(app)
        if not math.isfinite(est):
            raise ValueError(f"estimated cost of application {app.app_id!r} must be a finite number, got {est!r}")
        est = max(est, 0.0)  # a regression may dip below 0
        # An id reused after its application ended may still be in the reference (it ended before
        # its fair finish): this incarnation then gets its own entry, keyed (id, arrival order).
        ref: Hashable = app.app_id if app.app_id not in self.clock else (app.app_id, order)
        f = self.clock.arrive(ref, now, est, app.weight)
        # S = V(now): arrive() advanced the clock to now
        state = self.record(app, order, finish=f, start=self.clock.v, estimated=est, ref=ref)
        if tag is not None:
            state.finish, state.global_tag = float(tag), True
        return state

    def set_finish_tag(self, app_id: str, tag: float) -> None:
        """Order ``app_id`` by the cluster's global finish tag ``tag`` from now on (module doc)."""
        _check_tag(app_id, tag)
        app = self.apps.get(app_id)
        if app is None:
            raise KeyError(f"application {app_id!r} is unknown; the engine must call app_arrived() first")
        app.global_tag = True
        if app.finish != tag:
            app.finish = float(tag)
            self.version += 1

    def finish_tag(self, app_id: str) -> float | None:
        """The finish tag ``F`` that orders ``app_id`` now (``None`` once it ended)."""
        app = self.apps.get(app_id)
        return app.finish if app is not None else None

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

    def in_reference(self, app_id: str) -> bool:
        """True while the live application ``app_id`` is still in the fair-sharing reference (V < F)."""
        app = self.apps.get(app_id)
        return app is not None and app.ref in self.clock

    def _retag(self, app: _JustitiaApp, cost: float, now: float) -> None:
        ref, w = app.ref, app.info.weight
        app.estimated = cost
        if ref in self.clock:
            f = self.clock.update_cost(ref, cost)
        elif app.start + cost / w <= self.clock.v:
            return  # already out of the reference and the new cost keeps it out
        else:
            f = self.clock.arrive(ref, now, cost, w, start=app.start)
        if app.global_tag:
            return  # ordered by the dispatcher's global tag, not the local clock
        if f != app.finish:
            app.finish = f
            self.version += 1

    def key(self, req: Req) -> Key:
        try:
            app = self.apps[req.app_id]
        except KeyError:
            raise self.unknown_app(req) from None
        return (app.finish, app.info.arrival_s, app.order, req.arrival_s, req.seq)


def _check_tag(app_id: str, tag: object) -> None:
    if isinstance(tag, bool) or not isinstance(tag, (int, float)) or not math.isfinite(tag):
        raise ValueError(f"finish_tag of application {app_id!r} must be a finite number, got {tag!r}")
