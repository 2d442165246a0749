"""Builders of bench runs without a server, shared by the bench and step-clock tests."""

from __future__ import annotations

from justitia.core.cost import call_cost
from justitia.runner import bench
from justitia.runner.bench import BenchRun, Job, JobOutcome
from justitia.runner.server_stats import ServerStats
from justitia.runner.sdk import App, CallRecord
from justitia.sim.result import AppRecord, RunResult


def app_with_calls(calls: list[tuple[int, float, float, int, int]], start: float, end: float) -> App:
    """An App that ran ``calls`` = (stage, start, end, prompt tokens, completion tokens)."""
    class C:
        completions = chat = object()

    a = App(C(), type="t", model="m")
    a.start_s, a.end_s = start, end
    for i, (stage, s, e, p, o) in enumerate(calls):
        a.calls.append(CallRecord(i, "chat", s, e, p, o, stage=stage))
    return a


def bench_run(policy: str, acts: dict[str, float], itl: tuple[float, float], cap: float = 2048.0,
              steps: float = 0.0, busy: float = 0.0) -> BenchRun:
    """A run of ``policy`` with one single-call app per ``acts`` entry (name -> ACT), app i arriving at i."""
    outs, recs, specs = [], [], []
    for i, (name, act) in enumerate(acts.items()):
        app = app_with_calls([(0, 100.0 + i, 100.0 + i + act, 50, 10)], 100.0 + i, 100.0 + i + act)
        job = Job(name, "t", float(i), 1.0, 1000.0, lambda a: None)
        outs.append(JobOutcome(job, app))
        recs.append(AppRecord(name, "t", float(i), float(i) + act, call_cost(50, 10), num_calls=1))
        specs.append(bench.measured_spec(outs[-1], 100.0))
    res = RunResult(policy, recs, cap, 0.1, makespan_s=max(r.completion_s for r in recs), output_tokens=10 * len(recs))
    stats = ServerStats(cap, 32, 0, itl[0], itl[1], steps=steps)
    return BenchRun(policy, res, outs, stats, 100.0, specs, busy_s=busy)
