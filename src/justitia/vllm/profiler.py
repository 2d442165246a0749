"""The plugin's trace file and step-time profile (what the scheduler saw, where a step's time went).

With ``JUSTITIA_TRACE_FILE=/path/trace.jsonl`` the scheduler writes one JSON line per application or
request event, a ``preempted`` line per victim, and, every :data:`PROFILE_EVERY` engine steps, a
``profile`` line decomposing the step time (the paper's scheduling overhead, §5.5 Fig. 12, next to
the model run). Without the variable nothing is written and nothing is timed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

PROFILE_EVERY = 100
"""Engine steps between two ``profile`` lines."""
PROFILE_FIELDS: tuple[str, ...] = ("steps", "tokens", "reqs", "new_reqs", "plugin_s", "sched_s", "exec_s",
                                   "update_s", "loop_s", "random_steps", "random_reqs", "random_exec_s")


class TraceWriter:
    """Append-only JSONL trace (thread-safe; line-buffered). :meth:`emit` is a no-op when closed."""

    def __init__(self, path: str | None, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._file: IO[str] | None = open(path, "a", buffering=1, encoding="utf-8") if path else None  # noqa: SIM115

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def emit(self, event: str, **fields: Any) -> None:
        if self._file is None:
            return
        line = json.dumps({"event": event, "t": round(self._clock(), 6), **fields}, default=str)
        with self._lock:
            self._file.write(line + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class StepProfiler:
    """Step-time decomposition written to the trace (``profile`` events): ``plugin_s`` (the plugin's
    work before vLLM's schedule), ``sched_s`` (vLLM's schedule), ``exec_s`` (schedule end to
    update_from_output: the model run), ``update_s`` (update_from_output incl. the plugin's
    accounting), ``loop_s`` (update end to the next schedule: the engine loop / output path);
    ``random_*``: steps with a request sampling at temperature > 0 (vLLM's random-sampling path)."""

    def __init__(self, trace: TraceWriter) -> None:
        self.trace = trace
        self.totals: dict[str, float] = dict.fromkeys(PROFILE_FIELDS, 0.0)
        self._random = 0  # requests sampling at temperature > 0 in the step in flight
        self._sched_end: float | None = None
        self._last_end: float | None = None

    def scheduled(self, t0: float, t1: float, so: Any, requests: Mapping[str, Any]) -> None:
        """``schedule()`` ran: the plugin from ``t0`` to ``t1``, vLLM's part from ``t1`` to now."""
        p = self.totals
        t2 = time.monotonic()
        if self._last_end is not None:
            p["loop_s"] += t0 - self._last_end
        p["plugin_s"] += t1 - t0
        p["sched_s"] += t2 - t1
        self._sched_end = t2
        if not so.total_num_scheduled_tokens:
            return
        p["steps"] += 1
        p["tokens"] += so.total_num_scheduled_tokens
        p["reqs"] += len(so.num_scheduled_tokens)
        p["new_reqs"] += len(so.scheduled_new_reqs)
        rnd = 0
        for rid in so.num_scheduled_tokens:
            r = requests.get(rid)
            sp = r.sampling_params if r is not None else None
            if sp is not None and sp.temperature > 0:
                rnd += 1
        self._random = rnd
        if rnd:
            p["random_steps"] += 1
            p["random_reqs"] += rnd

    def updated(self, t_start: float, so: Any, busy: bool) -> None:
        """``update_from_output()`` ran from ``t_start`` to now; ``busy``: requests remain."""
        p = self.totals
        end = time.monotonic()
        if self._sched_end is not None:
            p["exec_s"] += t_start - self._sched_end
            if self._random:
                p["random_exec_s"] += t_start - self._sched_end
            self._sched_end = None
        p["update_s"] += end - t_start
        self._last_end = end if busy else None
        if p["steps"] and p["steps"] % PROFILE_EVERY == 0 and so.total_num_scheduled_tokens:
            self.trace.emit("profile", **{k: round(v, 6) for k, v in p.items()})
