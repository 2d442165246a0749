"""The bench plan: built once from the command line, presets filled in, bad input refused by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from justitia.cli import build_parser
from justitia.runner.bench_plan import BenchPlan, ServerSpec, plan_from_args


def _plan(*argv: str) -> BenchPlan:
    return plan_from_args(build_parser().parse_args(["bench", *argv]))


def test_quick_preset_and_defaults() -> None:
    p = _plan("--quick")
    assert p.policies == ("fcfs", "justitia") and p.n_apps == 20 and p.sizes == "quick" and p.rate == 1.0
    assert p.name == "real-mix-quick" and p.clock == "steps" and p.step_s == pytest.approx(0.1)
    assert p.server == ServerSpec(kv_tokens=2048, model=None, prefix_caching=True, trace=False)
    assert p.out == Path("results/bench") and p.plots and p.hint and p.repeat == 1
    full = _plan()
    assert full.policies == ("fcfs", "vtc", "justitia") and full.n_apps == 40 and full.name == "real-mix-full"
    assert full.clock == "wall" and _plan("--quick", "--clock", "wall").clock == "wall"
    assert _plan("--quick", "--endpoint", "http://127.0.0.1:1", "--policies", "fcfs").clock == "wall"  # no counter there


def test_options_reach_the_plan(tmp_path) -> None:
    wl = tmp_path / "mine.jsonl"
    wl.write_text("")
    p = _plan("--policies", "vtc,justitia-mlp", "--workload", str(wl), "--clock", "steps", "--step-ms", "40",
              "--compare-sim", "--no-hint", "--trace", "--kv-tokens", "1024", "--repeat", "3", "--port", "18500",
              "--out", str(tmp_path / "o"), "--no-plots")
    assert p.policies == ("vtc", "justitia-mlp") and p.name == "mine" and p.n_apps is None  # every app of the file
    assert p.clock == "steps" and p.step_s == pytest.approx(0.04) and p.repeat == 3 and p.port == 18500
    # --compare-sim: no prefix cache (the simulator has none)
    assert p.server == ServerSpec(kv_tokens=1024, prefix_caching=False, trace=True)
    assert not p.hint and not p.plots and p.compare_sim


def test_plan_is_frozen() -> None:
    p = _plan("--quick")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.repeat = 2  # type: ignore[misc]


@pytest.mark.parametrize("argv, message", [
    (["--policies", "fcfs,nope"], "unknown policy 'nope'"),
    (["--policies", "fcfs,,vtc"], "comma-separated"),
    (["--apps", "-3"], "--apps must be >= 1, got -3"),
    (["--rate", "0"], "--rate must be a positive number"),
    (["--rate", "nan"], "--rate must be a positive number"),
    (["--kv-tokens", "8"], "--kv-tokens must be >= 16, got 8"),
    (["--repeat", "0"], "--repeat must be >= 1, got 0"),
    (["--step-ms", "0"], "--step-ms must be a positive number of milliseconds"),
    (["--port", "70000"], "--port must be a TCP port"),
    (["--workload", "/nonexistent/wl.jsonl"], "workload file not found: /nonexistent/wl.jsonl"),
    (["--endpoint", "http://127.0.0.1:1", "--policies", "fcfs,justitia"], "one policy"),
    (["--endpoint", "http://127.0.0.1:1", "--policies", "fcfs", "--clock", "steps"], "cannot be used with --endpoint"),
])
def test_bad_arguments_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError) as e:
        _plan(*argv)
    assert message in str(e.value)


def test_a_plan_built_in_code_is_checked_too() -> None:
    with pytest.raises(ValueError, match="--apps: a number of applications is needed without --workload"):
        BenchPlan(name="x", policies=("fcfs",), server=ServerSpec(2048), out=Path("o"), n_apps=None, rate=1.0,
                  sizes="quick")
    with pytest.raises(ValueError, match="--clock must be one of wall, steps"):
        BenchPlan(name="x", policies=("fcfs",), server=ServerSpec(2048), out=Path("o"), n_apps=2, rate=1.0,
                  sizes="quick", clock="sundial")
