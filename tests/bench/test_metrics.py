"""Metrics against numbers worked out by hand.

Fluid reference (M=100, iteration 0.01 s, rate 10,000 token·it/s): a (1000) and b (3000) arrive at 0
and share 5,000/s each; a leaves at 0.2 s, b then has 2,000 left alone at 10,000/s. At 0.3 s c (500)
arrives: b has 1,000 left, both get 5,000/s, c leaves at 0.4 s, b has 500 left alone -> 0.45 s.
"""

from __future__ import annotations

import math

import pytest

from justitia.apps.model import AppSpec, Call, Stage
from justitia.bench.metrics import critical_path_s, evaluate, fragmentation_blocking_s, pfq_bound_s
from justitia.sim.result import AppRecord, RunResult

M, IT = 100.0, 0.01  # as in conftest.py


def test_fair_finish_and_delay_by_hand(run, workload):
    m = evaluate(run, workload)
    got = {a.app_id: a for a in m.apps}
    assert got["a"].fair_finish_s == pytest.approx(0.2)
    assert got["b"].fair_finish_s == pytest.approx(0.45)
    assert got["c"].fair_finish_s == pytest.approx(0.4)
    assert got["a"].delay_vs_fair_s == pytest.approx(0.3)
    assert got["b"].delay_vs_fair_s == pytest.approx(0.55)
    assert got["c"].delay_vs_fair_s == pytest.approx(0.5)
    assert got["c"].act_s == pytest.approx(0.6)
    assert got["c"].fair_act_s == pytest.approx(0.1)


def test_act_percentiles_by_hand(run, workload):
    s = evaluate(run, workload).summary()
    # ACTs 0.5, 1.0, 0.6 -> sorted 0.5, 0.6, 1.0; linear interpolation between order statistics
    assert s["apps"] == 3
    assert s["mean_act_s"] == pytest.approx(0.7)
    assert s["p50_act_s"] == pytest.approx(0.6)
    assert s["p90_act_s"] == pytest.approx(0.6 + 0.8 * 0.4)
    assert s["p99_act_s"] == pytest.approx(0.6 + 0.98 * 0.4)
    assert s["max_act_s"] == pytest.approx(1.0)
    assert s["mean_delay_vs_fair_s"] == pytest.approx(0.45)
    assert s["max_delay_vs_fair_s"] == pytest.approx(0.55)
    assert s["throughput_tok_s"] == pytest.approx(25.0)
    assert s["preemptions"] == 3


def test_fair_bound_is_largest_cost_over_capacity_in_seconds(run):
    # C_max = 3000 token·it, M = 100 tokens -> 30 iterations -> 0.3 s
    assert pfq_bound_s([1000, 3000, 500], M, IT) == pytest.approx(0.3)
    assert evaluate(run).fair_bound_s == pytest.approx(0.3)


def test_bound_without_workload_is_pfq_term_alone(run):
    m = evaluate(run)
    # a's delay equals the bound exactly (not over), b 0.55 and c 0.5 are over 0.3
    assert [a.over_bound for a in m.apps] == [False, True, True]
    assert m.summary()["apps_over_fair_bound"] == 2
    assert m.apps_over_pfq_bound == 2


def test_critical_path_adds_to_the_allowance(run, workload):
    m = evaluate(run, workload)
    got = {a.app_id: a for a in m.apps}
    # a: 1 prefill + 4 decode iterations; b: 5 it, 0.2 s tool delay, 5 it; c: 5 it
    assert got["a"].critical_path_s == pytest.approx(0.05)
    assert got["b"].critical_path_s == pytest.approx(0.30)
    # + bound eq. 5: the hand workload's prompts do not fit beside the others in M = 100: p_i / M (capped
    # at 1) of the longest other call's 5 iterations, 0.05 s for b, 0.97 · 0.05 s for c; + the step in
    # progress at arrival (one 0.01 s iteration)
    assert got["b"].allowed_delay_s == pytest.approx(0.60 + 0.05 + 0.01)
    assert got["c"].allowed_delay_s == pytest.approx(0.35 + 0.97 * 0.05 + 0.01)
    # b (0.55 <= 0.66) is within its engine-aware allowance now; c (0.5 > 0.4085) is not
    assert not got["b"].over_bound and got["c"].over_bound and not got["a"].over_bound
    assert m.apps_over_fair_bound == 1
    assert m.apps_over_pfq_bound == 2


def test_critical_path_with_chunked_prefill(workload):
    b = workload[1]
    # stage 1: ceil(197/100)=2 + 4; stage 2: ceil(394/100)=4 + 4, plus 0.2 s
    assert critical_path_s(b, IT, prefill_tokens_per_iter=100) == pytest.approx(0.06 + 0.2 + 0.08)
    with pytest.raises(ValueError, match="prefill_tokens_per_iter"):
        critical_path_s(b, IT, prefill_tokens_per_iter=0)


def test_same_reference_for_every_policy_when_iteration_is_fixed(workload, make_run):
    r1 = make_run("x")
    r2 = make_run("y")
    r2.iteration_s = 0.02  # a run that measured slower iterations
    m1 = evaluate(r1, workload, iteration_s=IT)
    m2 = evaluate(r2, workload, iteration_s=IT)
    assert [a.fair_finish_s for a in m1.apps] == [a.fair_finish_s for a in m2.apps]
    # ... whereas the run's own (slower) iteration time halves the fluid rate: a and b get 2,500/s
    # each, at 0.3 s a has 250 left and c joins (3 share 5,000/s) -> a leaves at 0.45 s
    m3 = evaluate(r2, workload)
    assert m3.apps[0].fair_finish_s == pytest.approx(0.45)
    assert m3.fair_bound_s == pytest.approx(0.6)


def test_faster_completion_lowers_delay_and_count(workload, make_run):
    early = evaluate(make_run(completions=(0.2, 0.45, 0.4)), workload)
    assert max(a.delay_vs_fair_s for a in early.apps) == pytest.approx(0.0, abs=1e-12)
    assert early.apps_over_fair_bound == 0


def test_workload_mismatch_is_an_error(run, workload):
    with pytest.raises(ValueError, match="1 app\\(s\\) without a record"):
        evaluate(RunResult("p", run.apps[:2], M, IT, 1.0), workload)


def test_unfinished_app_is_an_error(workload, make_run):
    r = make_run()
    r.apps[1] = AppRecord("b", "mapreduce", 0.0, math.inf, 3000.0)
    with pytest.raises(ValueError, match="app 'b'"):
        evaluate(r, workload)


def test_bad_capacity_is_an_error(run):
    with pytest.raises(ValueError, match="capacity_tokens"):
        evaluate(run, capacity_tokens=0)


def test_critical_path_can_use_the_real_iteration_time(run, workload):
    # reference at 0.01 s per iteration, critical paths timed at 0.02 s: c's path doubles to 0.10 s
    m = evaluate(run, workload, path_iteration_s=0.02)
    c = next(a for a in m.apps if a.app_id == "c")
    assert c.critical_path_s == pytest.approx(0.10)
    assert c.allowed_delay_s == pytest.approx(0.3 + 0.10 + 0.97 * 0.10 + 0.02)  # eq. 5's terms at 0.02 s too
    assert c.fair_finish_s == pytest.approx(0.4)  # the reference itself is unchanged


def test_blocking_by_running_requests_applies_only_if_the_prompt_can_be_kept_out() -> None:
    big = AppSpec("big", 0.0, "t", (Stage((Call(600, 9),)),))
    other = AppSpec("o", 0.0, "t", (Stage((Call(283, 300), Call(10, 50))),))
    small = AppSpec("s", 0.0, "t", (Stage((Call(100, 320),)),))
    # 600 + 583 + 60 + 420 > 1024: 600/1024 of the longest other call (1 prefill iteration at 256 + 319
    # decode), not big's own; with room for everything at once the term is 0
    assert fragmentation_blocking_s(big, [big, other, small], 1024, 0.01, 256) == pytest.approx(600 / 1024 * 3.20)
    assert fragmentation_blocking_s(big, [big, other, small], 10_000, 0.01, 256) == 0.0
    assert fragmentation_blocking_s(big, [big, small], 1024, 0.01, 256) == 0.0  # 600 + 420 fits
    assert fragmentation_blocking_s(big, [big], 1024, 0.01, 256) == 0.0
