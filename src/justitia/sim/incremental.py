"""Driving the simulated engine from outside: applications added as they arrive, time advanced in
slices, completions reported to a listener (for a tier that runs several engines side by side).

:meth:`Simulator.run` is :meth:`run_until` to infinity followed by :meth:`finish`. The contract of each
call is in :mod:`justitia.sim`'s docstring.

Mixed into :class:`justitia.sim.engine.Simulator`, whose constructor describes the state used here.
"""

from __future__ import annotations

import gc
import heapq
import math
import time
from typing import TYPE_CHECKING, Any

from justitia.apps.model import AppSpec
from justitia.sim.result import RunResult

if TYPE_CHECKING:
    from justitia.sim.engine import Simulator


class IncrementalAPI:
    """add_app / run_until / finish (a part of :class:`~justitia.sim.engine.Simulator`)."""

    def _init_incremental(self: Simulator, listener: Any) -> None:
        self.listener = listener
        self._on_call_finished = getattr(listener, "call_finished", None)
        self._on_app_finished = getattr(listener, "app_finished", None)
        self._clock = 0.0  # the latest run_until target: the engine's current time
        self._wall_s = 0.0
        self._progress_every = 1

    # ------------------------------------------------------------------ adding work
    def add_app(self: Simulator, spec: AppSpec) -> None:
        """An application arriving at ``spec.arrival_s``, which must not be before the engine's current
        time (:attr:`time_s`). Its first stage is released when the engine reaches that time."""
        if not spec.arrival_s >= self._clock:
            raise ValueError(f"application {spec.app_id!r} arrives at {spec.arrival_s} s, before the engine's "
                             f"current time {self._clock} s")
        self._add(spec)

    def _add(self: Simulator, spec: AppSpec) -> None:
        if spec.app_id in self.app_ids:
            raise ValueError(f"duplicate app_id {spec.app_id!r} in the workload")
        cap = self.config.kv_capacity
        calls = 0
        for si, st in enumerate(spec.stages):
            for c in st.calls:
                if c.prompt_tokens < 1 or c.output_tokens < 1:
                    raise ValueError(f"application {spec.app_id!r} stage {si}: calls need prompt_tokens >= 1 and "
                                     f"output_tokens >= 1, got ({c.prompt_tokens}, {c.output_tokens})")
                if c.prompt_tokens + c.output_tokens - 1 > cap:
                    raise ValueError(
                        f"application {spec.app_id!r} stage {si}: a call of {c.prompt_tokens} prompt + "
                        f"{c.output_tokens} output tokens cannot fit in the KV capacity of {cap} tokens")
            calls += len(st.calls)
        self.app_ids.add(spec.app_id)
        index = len(self.apps)
        self.apps.append(spec)
        self.records.append(None)
        heapq.heappush(self.arrivals, (spec.arrival_s, index, spec))
        self.total_requests += calls
        self._progress_every = max(1, self.total_requests // 200)

    # ------------------------------------------------------------------ advancing time
    def run_until(self: Simulator, t: float) -> None:
        """Process everything before time ``t``: arrivals and stage releases at or before the engine's
        iteration boundaries, and every iteration that *starts* before ``t`` — so the engine stops at the
        first iteration boundary at or after ``t`` (an idle engine's clock moves to ``t``). Then the
        current time (:attr:`time_s`) becomes ``t``; an app added next may arrive at ``t`` even if the
        iteration in flight ends later: it is queued at that iteration's end, as in :meth:`run`."""
        if math.isnan(t):
            raise ValueError("run_until: the time is NaN")
        self._timed(self._run_until, t)
        if t > self._clock and not math.isinf(t):
            self._clock = t

    def run(self: Simulator) -> RunResult:
        """Simulate every added application to the end and return the result."""
        if not self.apps:
            raise ValueError("the workload has no applications")
        self._timed(self._run_until, math.inf)
        return self.finish()

    def finish(self: Simulator) -> RunResult:
        """The run's result; every added application must have completed (else ``RuntimeError``)."""
        problems = self._unfinished()
        if problems:
            raise RuntimeError("simulation ended inconsistently: " + "; ".join(problems))
        return self._result(self._wall_s)

    def _timed(self: Simulator, step: Any, t: float) -> None:
        """Run ``step(t)``, adding its wall time to the result's; the cyclic garbage collector is paused
        meanwhile (the engine makes no reference cycles; with millions of live objects its full passes
        cost more than the simulation)."""
        gc_was_on = gc.isenabled()
        gc.disable()
        t0 = time.perf_counter()
        try:
            step(t)
        finally:
            self._wall_s += time.perf_counter() - t0
            if gc_was_on:
                gc.enable()

    # ------------------------------------------------------------------ state
    @property
    def time_s(self: Simulator) -> float:
        """The engine's current time: the latest finished :meth:`run_until`'s target (0 before any; during
        a :meth:`run_until`, listeners see the engine's own time as ``now``)."""
        return self._clock

    @property
    def idle(self: Simulator) -> bool:
        """Nothing waiting, running, or due to arrive or be released."""
        return (not self.waiting.requests and self.decode.size == 0 and self.prefilling is None
                and not self.arrivals and not self.stage_releases)

    @property
    def next_event_s(self: Simulator) -> float:
        """When the engine next has something to do: the end of its last iteration if requests wait or
        run, else the next arrival or delayed stage release; ``math.inf`` if idle."""
        if self.waiting.requests or self.decode.size or self.prefilling is not None:
            return self.now
        return self._next_event_s()
