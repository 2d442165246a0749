"""The step clock of ``justitia bench --clock steps``: a stream paced by the engine's own step counter.

On a shared or slow host the engine's step time drifts between runs, and with wall-clock arrivals the
same stream meets a different engine state each run (more arrivals per step on a slow host). Paced by
steps, the stream is the same on every host: an application arriving at stream time ``t`` is released
when the engine has done ``t / step_s`` steps (``step_s``: a fixed reference step time), and its
completion time is measured in engine steps too. Reported in seconds, steps are converted with the
comparison's pooled step time (busy time / steps), the same for every policy, so ratios between
policies are ratios of step counts.

While nothing is in flight the engine does no steps; the clock then jumps to the next arrival (as an
event-driven simulator does), so an idle gap costs no steps. The counter is the engine's count of steps
that scheduled tokens (vLLM's ``vllm:iteration_tokens_total`` counts the same steps), read from a small
file the engine writes each step (:mod:`justitia.vllm.stepfile`): a ``/metrics`` scrape costs 80-350 ms
on 2 busy cores, far too much to poll.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

POLL_S = 0.01  # waits for the next arrival reread the counter every 10 ms (a read is one pread of 8 bytes)

_FMT = struct.Struct("<q")


def read_step_file(path: str | Path) -> int:
    """The step count the engine last wrote to ``path`` (0 before its first step): one read."""
    with StepFileCounter(path) as count:
        return count()


def write_step_file(fd: int, steps: int) -> None:
    os.pwrite(fd, _FMT.pack(steps), 0)


class StepClock:
    """Engine steps since :meth:`start`, plus the steps skipped while idle.

    ``read_steps`` returns the engine's cumulative step count (any origin); ``step_s`` is the reference
    step time that maps stream seconds to steps. Not thread-safe: one event loop uses it; only
    :meth:`now` may be called from elsewhere.
    """

    def __init__(self, read_steps: Callable[[], float], step_s: float, poll_s: float = POLL_S) -> None:
        if not step_s > 0:
            raise ValueError(f"the reference step time must be positive, got {step_s}")
        self._read = read_steps
        self.step_s = step_s
        self.poll_s = poll_s
        self._base = 0.0
        self.skipped = 0.0  # steps credited while idle
        self.in_flight = 0  # applications released and not finished

    def start(self) -> None:
        self._base = float(self._read())
        self.skipped = 0.0

    def engine_steps(self) -> float:
        """Steps the engine did since :meth:`start`."""
        return float(self._read()) - self._base

    def now(self) -> float:
        """The clock, in steps."""
        return self.engine_steps() + self.skipped

    def step_of(self, arrival_s: float) -> float:
        """The step at which an application arriving at stream time ``arrival_s`` is released."""
        return arrival_s / self.step_s

    async def wait_until(self, step: float) -> float:
        """Return once the clock reached ``step`` (the clock then). While nothing is in flight the
        engine does no steps, so the clock jumps to ``step``. Call for the arrivals in order."""
        while True:
            now = self.now()
            if now >= step:
                return now
            if self.in_flight == 0:
                self.skipped += step - now
                return step
            await asyncio.sleep(self.poll_s)


class StepFileCounter:
    """``read_steps`` for :class:`StepClock`: each call rereads the engine's step file (one ``pread`` of
    8 bytes, microseconds). Always fresh, never a cached value: a completion stamped with a count read
    even 10 ms late would miss the engine's last step and make an application look a step faster than
    the engine can serve it (seen on a loaded CI host with a polling thread)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __call__(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return 0  # the engine has not written yet
        for _ in range(3):  # a read racing a write may see a torn value: read until two agree
            a, b = os.pread(self._fd, 8, 0), os.pread(self._fd, 8, 0)
            if a == b:
                break
        return _FMT.unpack(a)[0] if len(a) == 8 else 0

    def __enter__(self) -> StepFileCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


async def release_in_order(jobs: Sequence[Any], clock: StepClock, start: Callable[[Any, float], Any]) -> list[Any]:
    """Release ``jobs`` (each with ``arrival_s``) in arrival order on ``clock``: ``start(job, step)``
    returns the job's coroutine, run as a task (counted in flight from its release to its end);
    returns the tasks in ``jobs`` order."""
    async def tracked(job: Any, step: float) -> Any:
        try:
            return await start(job, step)
        finally:
            clock.in_flight -= 1

    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].arrival_s, i))
    tasks: list[Any] = [None] * len(jobs)
    for i in order:
        step = await clock.wait_until(clock.step_of(jobs[i].arrival_s))
        clock.in_flight += 1  # at once: the next wait must not see an idle engine
        tasks[i] = asyncio.ensure_future(tracked(jobs[i], step))
    return tasks


# ---------------------------------------------------------------------- steps -> seconds
def step_view(run: Any, step_s: float) -> Any:
    """A copy of a step-clocked :class:`~justitia.runner.bench.BenchRun` whose result and measured
    applications carry step-clocked times converted to seconds at ``step_s`` per step (arrival =
    release step, completion = the step it finished at; each app's wall-clock stages are kept)."""
    if not run.app_steps:
        raise ValueError(f"run {run.policy!r} was not step-clocked (no step stamps)")
    apps = []
    for a in run.result.apps:
        first, last = run.app_steps[a.app_id]
        apps.append(dataclasses.replace(a, arrival_s=first * step_s, completion_s=last * step_s))
    measured = [dataclasses.replace(s, arrival_s=run.app_steps[s.app_id][0] * step_s) for s in run.measured]
    span = max(a.completion_s for a in apps) - min(a.arrival_s for a in apps) if apps else 0.0
    result = dataclasses.replace(run.result, apps=apps, makespan_s=span)
    return dataclasses.replace(run, result=result, measured=measured)
