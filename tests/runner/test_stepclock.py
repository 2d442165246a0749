"""The step clock of ``bench --clock steps`` against a fake engine step counter: release steps, the idle
jump, stamps that do not depend on the engine's wall speed, and the conversion of steps to seconds."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import pytest

from bench_helpers import bench_run

from justitia.runner import bench
from justitia.runner.stepclock import (
    StepClock, StepFileCounter, read_step_file, release_in_order, step_view, write_step_file,
)


class FakeEngine:
    """A step counter that advances one step every ``tick_s`` while the clock has work in flight."""

    def __init__(self, tick_s: float) -> None:
        self.steps = 1000  # any origin: the clock counts from its start()
        self.tick_s = tick_s

    def __call__(self) -> int:
        return self.steps

    async def run(self, clock: StepClock, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.tick_s)
            if clock.in_flight:
                self.steps += 1


@dataclass
class J:
    name: str
    arrival_s: float
    work_steps: int


JOBS = [J("late", 10.0, 5), J("first", 0.0, 20), J("second", 0.5, 10), J("third", 1.2, 30)]


def _play(tick_s: float) -> tuple[dict[str, tuple[float, float]], float]:
    async def main() -> tuple[dict[str, tuple[float, float]], float]:
        engine = FakeEngine(tick_s)
        clock = StepClock(engine, step_s=0.1, poll_s=tick_s / 8)
        clock.start()
        stop = asyncio.Event()
        runner = asyncio.ensure_future(engine.run(clock, stop))

        async def start(job: J, step: float) -> tuple[str, float, float]:
            while clock.now() < step + job.work_steps:
                await asyncio.sleep(tick_s / 8)
            return job.name, step, clock.now()

        tasks = await release_in_order(JOBS, clock, start)
        done = await asyncio.gather(*tasks)
        stop.set()
        await runner
        return {n: (a, b) for n, a, b in done}, clock.skipped

    return asyncio.run(main())


def test_release_by_steps_idle_jump_and_host_independence() -> None:
    fast, skipped_fast = _play(0.002)
    slow, skipped_slow = _play(0.006)  # an engine 3x slower in wall time: the same steps
    assert fast == slow and skipped_fast == skipped_slow
    # arrival t is released at step t / 0.1 while the engine is busy
    assert fast["first"] == (0.0, 20.0)
    assert fast["second"] == (5.0, 15.0)
    assert fast["third"] == (12.0, 42.0)
    # idle from step 42 (nothing in flight): the clock jumps to the late arrival's step 100
    assert skipped_fast == pytest.approx(58.0)
    assert fast["late"] == (100.0, 105.0)


def test_wait_until_returns_at_once_when_reached_and_refuses_bad_step_time() -> None:
    clock = StepClock(lambda: 7, step_s=0.05)
    clock.start()
    assert clock.step_of(1.0) == pytest.approx(20.0)
    assert asyncio.run(clock.wait_until(0.0)) == 0.0 and clock.skipped == 0.0
    with pytest.raises(ValueError, match="reference step time must be positive"):
        StepClock(lambda: 0, step_s=0.0)


def test_step_file_round_trip_and_counter(tmp_path) -> None:
    path = tmp_path / "steps"
    assert read_step_file(path) == 0  # the engine has not written yet
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        write_step_file(fd, 12345)
        assert read_step_file(path) == 12345
        with StepFileCounter(path) as count:
            assert count() == 12345
            write_step_file(fd, 12346)
            assert count() == 12346  # every read is fresh: a completion never sees a stale count
        assert StepFileCounter(tmp_path / "absent")() == 0
    finally:
        os.close(fd)


def test_step_view_converts_steps_to_seconds() -> None:
    run = bench_run("justitia", {"a": 3.0, "b": 5.0}, (0.0, 0.0), steps=100, busy=8.0)
    run.app_steps = {"a": (0.0, 30.0), "b": (10.0, 70.0)}
    v = step_view(run, 0.2)
    got = {a.app_id: (a.arrival_s, a.completion_s) for a in v.result.apps}
    assert got == {"a": (0.0, 6.0), "b": (2.0, 14.0)}
    assert {s.app_id: s.arrival_s for s in v.measured} == {"a": 0.0, "b": 2.0}
    assert v.result.makespan_s == pytest.approx(14.0)
    assert run.result.apps[0].completion_s == 3.0  # the wall-clock run is left as it was
    with pytest.raises(ValueError, match="not step-clocked"):
        step_view(bench_run("fcfs", {"a": 1.0}, (0.0, 0.0)), 0.2)


def test_step_clocked_acts_rank_by_steps_whatever_the_pooled_step_time() -> None:
    """The verdict is a ratio of step counts: the pooled step time scales every policy alike."""
    from justitia.runner.bench_report import evaluate_runs
    runs = []
    for pol, steps in (("fcfs", {"a": (0.0, 40.0), "b": (5.0, 85.0)}), ("justitia", {"a": (0.0, 20.0), "b": (5.0, 95.0)})):
        r = bench_run(pol, {"a": 1.0, "b": 1.0}, (0.0, 0.0), steps=200, busy=20.0 if pol == "fcfs" else 40.0)
        r.app_steps = steps
        runs.append(r)
    _, it_s, _ = evaluate_runs(runs)
    assert it_s == pytest.approx(60.0 / 400)  # pooled: Σ busy / Σ steps
    _, _, m = evaluate_runs([step_view(r, it_s) for r in runs])
    assert m[0].mean_act_s == pytest.approx(60.0 * it_s) and m[1].mean_act_s == pytest.approx(55.0 * it_s)
    assert bench.BenchRun.__dataclass_fields__["app_steps"]  # the run carries its step stamps
