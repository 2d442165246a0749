"""A simulated cluster: N simulated engines driven by the same :class:`Dispatcher` as the real one (DESIGN §7).

Each replica is a :class:`justitia.sim.engine.Simulator` driven incrementally (``add_app``,
``run_until``, a listener for completions). The driver advances all replicas to the next cluster event
(an application's arrival, a stage released by the driver), reports each finished call to the dispatcher
(its only source of service, as in the real ingress) in completion order, and places new work:

* **Whole-app mode** (``affinity`` / ``global`` without spill): the dispatcher homes the application at
  its arrival and the whole application is added to the home replica; the engine runs its stages itself.
  The driver still dispatches each stage's calls when the stage starts, so the dispatcher's accounting is
  the real ingress's.
* **Late binding** (``global-late``, whole-app): an arriving application's first-stage calls are parked
  in the dispatcher's global queue; after every step the driver reports each replica's state
  (:meth:`Dispatcher.replica_report`: free KV tokens, requests waiting and running — what a vLLM server
  exports on ``/metrics`` — and the global tag of its waiting head) and calls :meth:`Dispatcher.bind`; a bound application is added whole to its
  replica at the bind time (its ACT still counts from its arrival). While applications wait in the
  queue the driver steps in slices of at most ``max_slice_s``, so a bind is at most that late after the
  completion that made room.
* **Per-stage mode** (``round-robin``, ``least-loaded``, or spill): each call of a stage is dispatched on
  its own and the calls placed on one replica are added there as a one-stage application
  ``<app>#<stage>@<replica>`` arriving when the stage starts; the driver starts the next stage when every
  call of this one finished (plus its ``delay_s``). A stage released inside a slice is added at the
  slice's end: at most ``max_slice_s`` late.

With ``global`` placement each replica's Justitia receives the application's global finish tag as
``AppInfo.features["finish_tag"]`` (what ``vllm_xargs.app_finish_tag`` carries on a real server) and
updated tags via ``set_finish_tag`` when the dispatcher refines them.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from justitia.apps.model import AppSpec, Stage
from justitia.cluster.dispatcher import Dispatcher
from justitia.core.policy import AppInfo, Policy
from justitia.sim.engine import Simulator
from justitia.sim.result import AppRecord, RunResult


class _Inbox:
    """A replica's listener: completions buffered until the driver applies them in time order."""

    def __init__(self, replica: int, sink: list[tuple[float, int, str, int, int, int, int]]) -> None:
        self.replica = replica
        self.sink = sink

    def call_finished(self, app_id: str, stage: int, call_index: int, prompt: int, output: int, now: float) -> None:
        self.sink.append((now, self.replica, app_id, stage, call_index, prompt, output))


@dataclasses.dataclass(slots=True)
class _Live:
    spec: AppSpec
    stage: int = 0
    left: int = 0  # calls of the current stage not finished yet
    calls: dict[tuple[str, int, int], int] = dataclasses.field(default_factory=dict)  # engine (app, stage, call) -> call id
    replicas: set[int] = dataclasses.field(default_factory=set)
    tag: float | None = None


class SimCluster:
    """Serve ``apps`` on ``len(engines)`` simulated replicas placed by ``dispatcher`` (module doc)."""

    def __init__(self, apps: Sequence[AppSpec], dispatcher: Dispatcher,
                 make_policy: Callable[[int], Policy], config: Any, max_slice_s: float = 0.05) -> None:
        self.apps = sorted(apps, key=lambda a: (a.arrival_s, a.app_id))
        self.d = dispatcher
        self.config = config
        self.max_slice_s = max_slice_s
        self.whole_apps = dispatcher.placement.sticky and not dispatcher.spill
        self.late = dispatcher.placement.late
        if self.late and dispatcher.spill:
            raise ValueError("placement 'global-late' binds whole applications to one replica; it does not spill")
        self.slices = 0  # driver steps (each advances every busy replica to the step's time)
        self._done: list[tuple[float, int, str, int, int, int, int]] = []
        self.engines: list[Simulator] = []
        self.policies: list[Policy] = []
        for i in range(len(dispatcher.replicas)):
            pol = make_policy(i)
            if dispatcher.placement.global_tags:
                _follow_global_tags(pol, self._tag_of)
            self.policies.append(pol)
            self.engines.append(Simulator([], pol, config, listener=_Inbox(i, self._done)))
        self.live: dict[str, _Live] = {}
        self.parent: dict[str, str] = {}  # engine app id (a stage fragment) -> application id
        self.records: list[AppRecord] = []
        self.estimates: dict[str, float] = {}
        self._releases: list[tuple[float, int, str]] = []
        self._seq = 0

    # ------------------------------------------------------------------ driving
    def run(self) -> RunResult:
        t0 = time.perf_counter()
        arrivals = self.apps
        i, now = 0, 0.0
        while i < len(arrivals) or self._releases or self.live:
            t_arr = arrivals[i].arrival_s if i < len(arrivals) else math.inf
            t_rel = self._releases[0][0] if self._releases else math.inf
            t = min(t_arr, t_rel)
            if (not self.whole_apps and self.live) or (self.late and self.d.queued_apps):
                t = min(t, now + self.max_slice_s)
            if math.isinf(t):
                t = now + max(self.max_slice_s, 1.0)
            for e in self.engines:
                if e.next_event_s < t:
                    e.run_until(t)
            now = max(now, t)
            self._apply_completions()
            while self._releases and self._releases[0][0] <= now:
                _, _, app_id = heapq.heappop(self._releases)
                self._start_stage(self.live[app_id], now)
            while i < len(arrivals) and arrivals[i].arrival_s <= now:
                self._arrive(arrivals[i])
                i += 1
            if self.late:
                self._bind(now)
            self.slices += 1
        for e in self.engines:
            e.run_until(math.inf)
        return self._result(time.perf_counter() - t0)

    def _arrive(self, spec: AppSpec) -> None:
        now = spec.arrival_s
        info = AppInfo(spec.app_id, now, spec.weight, spec.type, spec.cost)
        self.d.app_arrived(info, now)
        self.estimates[spec.app_id] = self.d.apps[spec.app_id].estimate
        live = self.live[spec.app_id] = _Live(spec)
        live.tag = self.d.finish_tag(spec.app_id)
        self._start_stage(live, now)

    def _start_stage(self, live: _Live, now: float) -> None:
        spec, si = live.spec, live.stage
        stage = spec.stages[si]
        live.left = len(stage.calls)
        placed: dict[int, list[tuple[int, int]]] = {}  # replica -> [(call index in the stage, call id)]
        for ci, c in enumerate(stage.calls):
            dec = self.d.dispatch(spec.app_id, c.prompt_tokens, now, c.output_tokens)
            placed.setdefault(dec.replica, []).append((ci, dec.call_id))
        if self.whole_apps:
            (r,) = placed  # a sticky placement without spill keeps every call at home (-1: parked, late)
            for ci, cid in placed[r]:
                live.calls[(spec.app_id, si, ci)] = cid
            if si == 0 and r >= 0:
                self._add(r, spec, spec.app_id, live, now)
            return
        for r, idx in placed.items():
            eid = f"{spec.app_id}#{si}@{r}"
            frag = AppSpec(eid, now, spec.type, (Stage(tuple(stage.calls[ci] for ci, _ in idx), 0.0),), spec.weight)
            for k, (_, cid) in enumerate(idx):  # the engine numbers a fragment's calls 0..k-1 in stage 0
                live.calls[(eid, 0, k)] = cid
            self._add(r, frag, eid, live, now)

    def _add(self, r: int, spec: AppSpec, eid: str, live: _Live, now: float) -> None:
        self.parent[eid] = live.spec.app_id
        live.replicas.add(r)
        e = self.engines[r]
        start = max(now, e.time_s)
        if spec.arrival_s != start:
            spec = dataclasses.replace(spec, arrival_s=start)
        e.add_app(spec)

    def _bind(self, now: float) -> None:
        """Late binding: report every replica's state, bind from the global queue, add the bound apps."""
        if not self.d.queued_apps:
            return
        for r, e in enumerate(self.engines):
            running = e.decode.size + (e.prefilling is not None)
            head = e.waiting.head() if e.waiting.requests else None
            tag = self.d.finish_tag(self.parent[head.req.app_id]) if head is not None else None
            self.d.replica_report(r, float(e.free * e.block_size), len(e.waiting.requests), running, tag)
        added: set[str] = set()
        for dec in self.d.bind(now):
            app_id = self.d.call_app(dec.call_id)
            if app_id not in added:
                added.add(app_id)
                live = self.live[app_id]
                self._add(dec.replica, live.spec, app_id, live, now)

    def _apply_completions(self) -> None:
        if not self._done:
            return
        done = sorted(self._done)
        self._done.clear()
        for now, _r, eid, stage, ci, p, o in done:
            app_id = self.parent[eid]
            live = self.live[app_id]
            self.d.call_finished(live.calls.pop((eid, stage, ci)), p, o, now)
            self._push_tag(live)
            live.left -= 1
            if live.left == 0:
                self._stage_done(live, now)

    def _stage_done(self, live: _Live, now: float) -> None:
        spec = live.spec
        live.stage += 1
        if live.stage == len(spec.stages):
            self.d.app_finished(spec.app_id, now)
            del self.live[spec.app_id]
            self.records.append(AppRecord(spec.app_id, spec.type, spec.arrival_s, now, spec.cost, spec.weight,
                                          spec.num_calls, self.estimates.pop(spec.app_id)))
            return
        if self.whole_apps:  # the engine releases the stage itself; dispatch it for the accounting
            self._start_stage(live, now)
            return
        self._seq += 1
        heapq.heappush(self._releases, (now + spec.stages[live.stage].delay_s, self._seq, spec.app_id))

    def _tag_of(self, engine_app_id: str) -> float | None:
        app_id = self.parent.get(engine_app_id, engine_app_id)
        return self.d.finish_tag(app_id)

    def _push_tag(self, live: _Live) -> None:
        tag = self.d.finish_tag(live.spec.app_id)
        if tag is None or tag == live.tag:
            return
        live.tag = tag
        for r in live.replicas:
            pol = self.policies[r]
            for eid in self._engine_ids(live, r):
                if eid in pol.apps:
                    pol.set_finish_tag(eid, tag)  # type: ignore[attr-defined]

    def _engine_ids(self, live: _Live, r: int) -> list[str]:
        if self.whole_apps:
            return [live.spec.app_id]
        return [f"{live.spec.app_id}#{s}@{r}" for s in range(live.stage + 1)]

    # ------------------------------------------------------------------ result
    def _result(self, wall: float) -> RunResult:
        runs = [e.finish() for e in self.engines if e.apps]
        busy = [float(e.busy_s) for e in self.engines]
        mean_busy = sum(busy) / len(busy)
        makespan = max((r.completion_s for r in self.records), default=0.0)
        iters = sum(r.iterations for r in runs)
        it_s = sum(r.iteration_s * r.iterations for r in runs) / iters if iters else 0.0
        extra = {"busy_s": sum(busy), "replica_busy_imbalance": max(busy) / mean_busy if mean_busy > 0 else 1.0,
                 "replicas": float(len(self.engines)), "driver_steps": float(self.slices)}
        if self.late:  # where late binding's ACT goes: waiting in the global queue before binding
            extra["mean_bind_wait_s"] = self.d.queue_wait_s / max(len(self.records), 1)
        return RunResult(policy=self.policies[0].name, apps=self.records,
                         capacity_tokens=float(self.d.capacity_tokens), iteration_s=it_s, makespan_s=makespan,
                         prompt_tokens=sum(r.prompt_tokens for r in runs),
                         output_tokens=sum(r.output_tokens for r in runs),
                         preemptions=sum(r.preemptions for r in runs), iterations=iters, wall_s=wall, extra=extra)


def _follow_global_tags(policy: Policy, tag_of: Callable[[str], float | None]) -> None:
    """Make the replica's policy see each application's global tag at arrival, as the vLLM plugin sees
    ``vllm_xargs.app_finish_tag`` in ``AppInfo.features["finish_tag"]``."""
    if not hasattr(policy, "set_finish_tag"):
        raise ValueError(f"a global-tag placement (global, global-late) hands each call the application's global finish tag,"
                         f" which only the justitia policy orders by; got replica policy {policy.name!r}")
    inner = policy.app_arrived

    def app_arrived(app: AppInfo, now: float) -> None:
        tag = tag_of(app.app_id)
        if tag is not None:
            app = dataclasses.replace(app, features={**app.features, "finish_tag": tag})
        inner(app, now)

    policy.app_arrived = app_arrived  # type: ignore[method-assign]
