"""The cluster dispatcher: one global fair-sharing reference, application placement (DESIGN §7).

Engine-agnostic like :mod:`justitia.core` (imports neither Ray nor vLLM): the simulated cluster and the
Ray Serve ingress drive it with the same calls.

* **Global reference** — weighted GPS over applications on the cluster's whole KV capacity
  ``M = Σ_r M_r`` (clock eqs. 1–2 with ``rate = M / iteration_s``). It *is* a
  :class:`~justitia.core.policies.justitia.Justitia` policy over that capacity (one implementation:
  its :class:`~justitia.core.clock.FairClock`, estimator and online refinement), fed only what passes
  through the dispatcher: an application's arrival, and each call's completion with its prompt and
  completion tokens (cost eq. 1). An application's global finish tag ``F = V(a) + Ĉ / w`` is what a
  ``global`` placement hands to the replica with every call.
* **Placement** — :mod:`justitia.cluster.placement`. Sticky strategies home an application on one
  replica (earliest expected finish by outstanding virtual work) and keep its calls there.
* **Spill or stay** — with ``spill=True`` a call of a sticky application whose home already holds
  more in-flight KV tokens of that application than ``spill_share × M_home`` (its fan-out exceeds what
  one replica can hold) goes to the replica with the earliest expected finish instead; with
  ``spill=False`` (default) it stays and queues at home.
* **Late binding** (``global-late``) — :meth:`Dispatcher.dispatch` of an application not bound yet
  *parks* the call (``Decision.parked``, ``replica = -1``) and the application joins ONE global queue
  ordered by its global finish tag. :meth:`Dispatcher.bind` — called by the driver whenever a replica
  may have room (a completion, a :meth:`replica_report`, an arrival) — binds applications from the head
  of that queue, strictly in tag order, while :meth:`GlobalLate.bind
  <justitia.cluster.placement.GlobalLate.bind>` finds a replica that can take the head (nothing waiting
  there ahead of it, free KV tokens ≥ the prompt tokens of its parked calls, or an empty replica) and
  returns the parked calls' decisions. A replica's state is what it last reported
  (:meth:`replica_report`: free KV tokens, requests waiting and running, the smallest global tag
  waiting, e.g. vLLM's
  ``kv_cache_usage_perc`` / ``num_requests_waiting`` / ``num_requests_running``) minus the prompts
  bound there since; without reports, its capacity minus the dispatcher's own count of in-flight tokens.
* **Faults** — :meth:`Dispatcher.replica_down` takes a replica out of placement; an application homed
  there is re-homed at its next call; :meth:`Dispatcher.call_failed` releases a call without service.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from justitia.core.cost import call_cost
from justitia.core.policy import AppInfo, Estimator, Req
from justitia.policies import make_policy
from justitia.cluster.placement import Placement, ReplicaLoad, make_placement


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one call goes: ``replica``, the app's global ``finish_tag`` (``None`` unless the placement
    hands tags out), its estimated cost ``app_cost``, and ``call_id`` to report the call's end with."""

    call_id: int
    replica: int
    finish_tag: float | None
    app_cost: float
    spilled: bool = False
    parked: bool = False  # late binding: held in the global queue; its replica comes from Dispatcher.bind


@dataclass(slots=True)
class _App:
    info: AppInfo
    ref: Req  # the handle the global reference is told the app's service with
    estimate: float
    served: float = 0.0
    home: int | None = None
    charge: dict[int, float] = field(default_factory=dict)  # outstanding work charged per replica
    inflight: dict[int, int] = field(default_factory=dict)  # in-flight KV tokens per replica
    calls_in_flight: int = 0
    calls: int = 0
    spilled: int = 0
    done: bool = False  # a call said app_done: end the app once no call is in flight
    parked: list[tuple[int, int, int]] = field(default_factory=list)  # late binding: (call id, prompt, output)
    queued_at: float | None = None  # when it joined the global queue (None: not in it)


@dataclass(slots=True)
class _Call:
    app_id: str
    replica: int
    tokens: int


class Dispatcher:
    """Global fair-sharing reference + placement over ``len(capacities)`` replicas (module doc)."""

    def __init__(self, capacities: Sequence[float], iteration_s: float, placement: str | Placement = "global",
                 estimator: str | Estimator | None = None, spill: bool = False, spill_share: float = 1.0) -> None:
        if not capacities:
            raise ValueError("a cluster needs at least one replica")
        for i, m in enumerate(capacities):
            if not (isinstance(m, (int, float)) and math.isfinite(m) and m > 0):
                raise ValueError(f"capacity of replica {i} must be a positive finite number of KV tokens, got {m!r}")
        if not (spill_share > 0 and math.isfinite(spill_share)):
            raise ValueError(f"spill_share must be a positive finite number, got {spill_share!r}")
        self.placement = make_placement(placement) if isinstance(placement, str) else placement
        self.iteration_s = float(iteration_s)
        self.replicas = [ReplicaLoad(i, float(m), float(m) / iteration_s) for i, m in enumerate(capacities)]
        self.capacity_tokens = float(sum(capacities))
        self.reference = make_policy("justitia", self.capacity_tokens, iteration_s, estimator=estimator)
        self.spill = spill
        self.spill_share = float(spill_share)
        self.apps: dict[str, _App] = {}
        self._calls: dict[int, _Call] = {}
        self._idle: OrderedDict[str, float] = OrderedDict()  # apps with no call in flight, since when
        self._next_call = 0
        self._seq = 0
        self.events = 0  # reference events (arrivals, services, departures): the clock's load
        self._queue: list[tuple[float, int, str]] = []  # late binding: (global tag, seq, app id), a heap
        self.queued_apps = 0  # applications in the global queue (with parked calls, not bound)
        self.queue_wait_s = 0.0  # Σ time applications spent in the global queue before binding
        self.bound_apps = 0

    # ------------------------------------------------------------------ applications
    def app_arrived(self, info: AppInfo, now: float) -> None:
        """Enter ``info`` into the global reference (its tag: clock eq. 2)."""
        if info.app_id in self.apps:
            raise ValueError(f"application {info.app_id!r} is already known to the dispatcher")
        self.reference.tick(now)
        self.reference.app_arrived(info, now)
        self._seq += 1
        ref = Req(req_id=info.app_id, app_id=info.app_id, arrival_s=now, seq=self._seq)
        self.apps[info.app_id] = _App(info, ref, self.reference.estimate(info))
        self._idle[info.app_id] = now
        self.events += 1

    def app_finished(self, app_id: str, now: float) -> None:
        """The application ended: correct the reference to its true cost, drop all its state."""
        app = self.apps.pop(app_id, None)
        if app is None:
            return
        for r, w in app.charge.items():
            self.replicas[r].outstanding_work = max(self.replicas[r].outstanding_work - w, 0.0)
        if app.queued_at is not None:  # ended while still queued (aborted): its heap entry is skipped lazily
            self.queued_apps -= 1
        if app.home is not None:
            self.replicas[app.home].homed_apps -= 1
        self._idle.pop(app_id, None)
        if app.calls_in_flight:  # ended with calls still out (aborted): forget them too
            for cid in [c for c, call in self._calls.items() if call.app_id == app_id]:
                self._release(cid)
        self.reference.tick(now)
        self.reference.app_finished(app_id, now)
        self.events += 1

    def app_done(self, app_id: str, now: float) -> None:
        """A call of ``app_id`` carried ``app_done``: the application ends once none of its calls is in
        flight (the single server's rule), at once if none is."""
        app = self.apps.get(app_id)
        if app is None:
            return
        app.done = True
        if app.calls_in_flight == 0 and not app.parked:
            self.app_finished(app_id, now)

    def end_idle_apps(self, now: float, idle_s: float) -> list[str]:
        """End every application with no call in flight for ``idle_s`` seconds (a server's idle rule)."""
        ended = []
        while self._idle:
            app_id, since = next(iter(self._idle.items()))
            if now - since < idle_s:
                break
            self.app_finished(app_id, now)
            ended.append(app_id)
        return ended

    # ------------------------------------------------------------------ calls
    def dispatch(self, app_id: str, prompt_tokens: int, now: float, expected_output: int = 0) -> Decision:
        """Choose the replica of one call of ``app_id`` (which must have arrived)."""
        app = self.apps.get(app_id)
        if app is None:
            raise KeyError(f"application {app_id!r} has not arrived at the dispatcher (call app_arrived first)")
        if prompt_tokens < 0 or expected_output < 0:
            raise ValueError(f"token counts of a call of {app_id!r} must be >= 0, got {prompt_tokens}, {expected_output}")
        remaining = max(app.estimate - app.served, 0.0)
        spilled = False
        if self.placement.late and app.home is None:
            return self._park(app, prompt_tokens, expected_output, now)
        if self.placement.sticky:
            if app.home is None or not self.replicas[app.home].up:
                self._rehome(app, self.placement.choose(self.replicas, remaining, exclude=app.home))
            r = app.home
            assert r is not None
            tokens = prompt_tokens + expected_output
            if self.spill and app.inflight.get(r, 0) + tokens > self.spill_share * self.replicas[r].capacity_tokens \
                    and app.inflight.get(r, 0) > 0:
                est = call_cost(prompt_tokens, expected_output)
                r = self.placement.choose(self.replicas, est, exclude=r)
                spilled = r != app.home
                if spilled:
                    self._move_charge(app, app.home, r, est)
                    app.spilled += 1
        else:
            r = self.placement.choose(self.replicas, remaining)
        return self._start(app, r, prompt_tokens + expected_output, spilled, now)

    def call_finished(self, call_id: int, prompt_tokens: int, completion_tokens: int, now: float) -> None:
        """A call ended with these token counts: the only service the dispatcher learns (cost eq. 1)."""
        call = self._release(call_id)
        app = self.apps.get(call.app_id)
        if app is None:
            return
        cost = call_cost(prompt_tokens, completion_tokens)
        app.served += cost
        self._uncharge(app, call.replica, cost)
        self.reference.tick(now)
        self.reference.served(app.ref, prompt_tokens, completion_tokens, cost, now)
        app.estimate = max(app.estimate, app.served)
        self.events += 1
        self._after_call(app, now)

    def call_failed(self, call_id: int, now: float) -> str:
        """A call ended without an answer (its replica died); returns its application id."""
        call = self._release(call_id)
        app = self.apps.get(call.app_id)
        if app is not None:
            self._after_call(app, now)
        return call.app_id

    def bind(self, now: float) -> list[Decision]:
        """Late binding: bind applications from the head of the global queue, in ascending global finish
        tag, while a replica can take the head; return the decisions of their parked calls (module doc).
        Nothing for other placements."""
        out: list[Decision] = []
        if not self.placement.late:
            return out
        while self._queue:
            tag, seq, app_id = self._queue[0]
            app = self.apps.get(app_id)
            if app is None or app.queued_at is None:
                heapq.heappop(self._queue)  # ended or already bound: a stale entry
                continue
            now_tag = self.reference.finish_tag(app_id)
            if now_tag is not None and now_tag != tag:  # the reference moved it: re-queue at its tag
                heapq.heapreplace(self._queue, (now_tag, seq, app_id))
                continue
            need = float(sum(p for _, p, _ in app.parked))
            r = self.placement.bind(self.replicas, need, tag)
            if r is None:
                break
            heapq.heappop(self._queue)
            self.queued_apps -= 1
            self.queue_wait_s += now - app.queued_at
            self.bound_apps += 1
            app.queued_at = None
            self._rehome(app, r)
            rep = self.replicas[r]
            if rep.reported_free is not None:
                rep.bound_since_report += need
            parked, app.parked = app.parked, []
            for cid, p, o in parked:
                out.append(self._start(app, r, p + o, False, now, cid))
        return out

    def replica_report(self, index: int, free_tokens: float, waiting: int, running: int,
                       waiting_tag: float | None = None) -> None:
        """Replica ``index``'s state now (late binding's admission rule): free KV tokens, requests waiting
        in its own queue, requests running, and the smallest global finish tag among the waiting ones
        (``None``: unknown, every waiting request then counts as ahead of any application). Replaces the
        dispatcher's own count for that replica."""
        if not (math.isfinite(free_tokens) and free_tokens >= 0) or waiting < 0 or running < 0:
            raise ValueError(f"replica {index} reported free_tokens={free_tokens!r}, waiting={waiting!r}, "
                             f"running={running!r}; they must be finite and >= 0")
        rep = self.replicas[index]
        rep.reported_free = float(free_tokens)
        rep.reported_waiting = int(waiting)
        rep.reported_running = int(running)
        rep.reported_waiting_tag = None if waiting_tag is None else float(waiting_tag)
        rep.bound_since_report = 0.0

    def call_app(self, call_id: int) -> str:
        """The application of call ``call_id`` (in flight)."""
        call = self._calls.get(call_id)
        if call is None:
            raise KeyError(f"call {call_id} is not in flight (already finished or failed?)")
        return call.app_id

    def finish_tag(self, app_id: str) -> float | None:
        """The application's finish tag in the global reference (``None`` if unknown)."""
        return self.reference.finish_tag(app_id)

    def tick(self, now: float) -> None:
        self.reference.tick(now)

    # ------------------------------------------------------------------ replicas
    def replica_down(self, index: int) -> list[str]:
        """Take replica ``index`` out of placement; returns the apps homed there (re-homed at their next call)."""
        self.replicas[index].up = False
        return [a for a, app in self.apps.items() if app.home == index]

    def replica_up(self, index: int) -> None:
        self.replicas[index].up = True

    def stats(self) -> dict[str, int]:
        """Sizes of all per-app / per-call state (all 0 once every application has ended)."""
        return {"apps": len(self.apps), "calls_in_flight": len(self._calls), "idle_apps": len(self._idle),
                "queued_apps": self.queued_apps, "parked_calls": sum(len(a.parked) for a in self.apps.values()),
                "replica_inflight_tokens": sum(r.inflight_tokens for r in self.replicas),
                "reference_apps": len(self.reference.apps),
                "replica_requests": sum(r.outstanding_requests for r in self.replicas),
                "replica_homed_apps": sum(r.homed_apps for r in self.replicas)}

    # ------------------------------------------------------------------ internals
    def _after_call(self, app: _App, now: float) -> None:
        if app.calls_in_flight or app.parked:
            return
        if app.done:
            self.app_finished(app.info.app_id, now)
        else:
            self._idle[app.info.app_id] = now

    def _park(self, app: _App, prompt_tokens: int, expected_output: int, now: float) -> Decision:
        cid = self._next_call
        self._next_call += 1
        app.parked.append((cid, prompt_tokens, expected_output))
        self._idle.pop(app.info.app_id, None)
        tag = self.reference.finish_tag(app.info.app_id)
        if app.queued_at is None:
            app.queued_at = now
            self.queued_apps += 1
            self._seq += 1
            heapq.heappush(self._queue, (tag if tag is not None else math.inf, self._seq, app.info.app_id))
        return Decision(cid, -1, tag, app.estimate, False, True)

    def _start(self, app: _App, r: int, tokens: int, spilled: bool, now: float, cid: int | None = None) -> Decision:
        if cid is None:
            cid = self._next_call
            self._next_call += 1
        self._calls[cid] = _Call(app.info.app_id, r, tokens)
        app.inflight[r] = app.inflight.get(r, 0) + tokens
        app.calls_in_flight += 1
        app.calls += 1
        self.replicas[r].outstanding_requests += 1
        self.replicas[r].inflight_tokens += tokens
        self._idle.pop(app.info.app_id, None)
        tag = self.reference.finish_tag(app.info.app_id) if self.placement.global_tags else None
        return Decision(cid, r, tag, app.estimate, spilled)

    def _release(self, call_id: int) -> _Call:
        call = self._calls.pop(call_id, None)
        if call is None:
            raise KeyError(f"call {call_id} is not in flight (already finished or failed?)")
        self.replicas[call.replica].outstanding_requests -= 1
        self.replicas[call.replica].inflight_tokens -= call.tokens
        app = self.apps.get(call.app_id)
        if app is not None:
            left = app.inflight.get(call.replica, 0) - call.tokens
            if left > 0:
                app.inflight[call.replica] = left
            else:
                app.inflight.pop(call.replica, None)
            app.calls_in_flight -= 1
        return call

    def _rehome(self, app: _App, r: int) -> None:
        old = app.home
        if old is not None:
            self.replicas[old].homed_apps -= 1
            self._move_charge(app, old, r, app.charge.get(old, 0.0))
        else:
            w = max(app.estimate - app.served, 0.0)
            app.charge[r] = app.charge.get(r, 0.0) + w
            self.replicas[r].outstanding_work += w
        app.home = r
        self.replicas[r].homed_apps += 1

    def _move_charge(self, app: _App, src: int | None, dst: int, work: float) -> None:
        if src is None:
            return
        w = min(work, app.charge.get(src, 0.0))
        if w <= 0:
            return
        self._uncharge(app, src, w)
        app.charge[dst] = app.charge.get(dst, 0.0) + w
        self.replicas[dst].outstanding_work += w

    def _uncharge(self, app: _App, r: int, work: float) -> None:
        have = app.charge.get(r, 0.0)
        w = min(work, have)
        if have - w > 0:
            app.charge[r] = have - w
        else:
            app.charge.pop(r, None)
        self.replicas[r].outstanding_work = max(self.replicas[r].outstanding_work - w, 0.0)
