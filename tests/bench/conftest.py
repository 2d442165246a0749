"""Hand-built runs with numbers small enough to check by hand (see test_metrics.py for the arithmetic)."""

from __future__ import annotations

import pytest

from justitia.apps.model import AppSpec, Call, Stage
from justitia.sim.result import AppRecord, RunResult

# M = 100 tokens, iteration 0.01 s  ->  fluid rate 10,000 token·iterations per second.
M = 100.0
IT = 0.01


def hand_workload() -> list[AppSpec]:
    one = (Call(197, 5),)  # cost 5*197 + 15 = 1000
    return [
        AppSpec("a", 0.0, "chat", (Stage(one),)),
        AppSpec("b", 0.0, "mapreduce", (Stage(one), Stage((Call(197, 5), Call(197, 5)), delay_s=0.2))),  # 3000
        AppSpec("c", 0.3, "chat", (Stage((Call(97, 5),)),)),  # 5*97 + 15 = 500
    ]


def hand_run(policy: str = "p", completions: tuple[float, float, float] = (0.5, 1.0, 0.9)) -> RunResult:
    specs = hand_workload()
    recs = [
        AppRecord(s.app_id, s.type, s.arrival_s, done, s.cost, num_calls=s.num_calls, estimated_cost=s.cost * 1.5)
        for s, done in zip(specs, completions)
    ]
    return RunResult(policy=policy, apps=recs, capacity_tokens=M, iteration_s=IT, makespan_s=max(completions),
                     output_tokens=25, preemptions=3)


@pytest.fixture
def workload() -> list[AppSpec]:
    return hand_workload()


@pytest.fixture
def run() -> RunResult:
    return hand_run()


@pytest.fixture
def make_run():  # type: ignore[no-untyped-def]
    """Factory ``make_run(policy="p", completions=(0.5, 1.0, 0.9))`` of hand-built runs."""
    return hand_run
