"""Bench plumbing without a server: metrics parsing, measured specs, one reference for all runs,
the calibration fit and the sim-vs-real replay (real simulator). The real runs: test_e2e.py."""

from __future__ import annotations

import math

import pytest

from justitia.apps.model import AppSpec
from justitia.runner import bench, server_stats
from justitia.runner.bench import Job, JobOutcome
from justitia.runner.bench_report import evaluate_runs
from justitia.runner.calibrate import RealRun, Sample, compare_sim, fit_nonneg, save_calibration

from bench_helpers import app_with_calls, bench_run

METRICS = """# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="m"} 7.0
vllm:inter_token_latency_seconds_sum{engine="0",model_name="m"} 12.5
vllm:inter_token_latency_seconds_count{engine="0",model_name="m"} 100.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.01",model_name="m"} 3.0
vllm:prompt_tokens_total{engine="0",model_name="m"} 1000.0
vllm:generation_tokens_total{engine="0",model_name="m"} 400.0
vllm:cache_config_info{block_size="32",engine="0",num_gpu_blocks="65",num_gpu_blocks_override="65"} 1.0
"""


def test_parse_metrics() -> None:
    s = server_stats.parse_metrics(METRICS)
    assert s.capacity_tokens == 64 * 32  # 65 blocks minus vLLM's null block
    assert s.block_size == 32
    assert (s.preemptions, s.itl_sum_s, s.itl_count) == (7.0, 12.5, 100.0)
    assert (s.prompt_tokens, s.generation_tokens) == (1000.0, 400.0)
    d = server_stats.diff(s, server_stats.parse_metrics(METRICS.replace("} 7.0", "} 2.0").replace("} 12.5", "} 2.5")))
    assert d.preemptions == 5.0 and d.itl_sum_s == 10.0 and d.itl_count == 0.0


def test_measured_spec_has_real_stages_delays_and_tokens() -> None:
    app = app_with_calls([(0, 1.0, 3.0, 100, 20), (0, 1.1, 4.0, 120, 30), (1, 4.5, 6.0, 80, 5)], 1.0, 6.0)
    out = JobOutcome(Job("mr-1", "mapreduce", 0.5, 1.0, None, lambda a: None), app)
    spec = bench.measured_spec(out, t0=0.5)
    assert spec.app_id == "mr-1" and spec.arrival_s == pytest.approx(0.5)
    assert [[(c.prompt_tokens, c.output_tokens) for c in s.calls] for s in spec.stages] == [[(100, 20), (120, 30)], [(80, 5)]]
    assert spec.stages[1].delay_s == pytest.approx(0.5)  # client think time between stages


def test_one_reference_for_all_runs() -> None:
    a = bench_run("fcfs", {"x": 4.0, "y": 2.0}, (10.0, 100.0))
    b = bench_run("justitia", {"x": 1.0, "y": 2.0}, (30.0, 100.0))
    cap, it_s, metrics = evaluate_runs([a, b])
    assert cap == 2048.0
    assert it_s == pytest.approx(40.0 / 200.0)  # pooled, not each run's own
    # the same reference: identical fair finish times for each app under both policies
    fa = {m.app_id: m.fair_finish_s for m in metrics[0].apps}
    fb = {m.app_id: m.fair_finish_s for m in metrics[1].apps}
    assert fa == fb
    # by hand: each app costs 50·10 + 10·11/2 = 555 token·iterations (cost eq. 1) and runs alone in the
    # reference (y arrives at 1 s, long after x left) at M / step = 2048 / 0.2 = 10,240 per second
    assert fa == pytest.approx({"x": 555 / 10_240, "y": 1.0 + 555 / 10_240})
    # allowance (bound eq. 5): C_max / M · step = 555 / 10,240 s plus the critical path, 10 decode steps of
    # 0.2 s, plus the step in progress at arrival (0.2 s)
    assert [m.allowed_delay_s for m in metrics[0].apps] == pytest.approx([555 / 10_240 + 10 * 0.2 + 0.2] * 2)
    assert (metrics[0].mean_act_s, metrics[1].mean_act_s) == pytest.approx((3.0, 1.5))  # (4 + 2) / 2, (1 + 2) / 2
    with pytest.raises(ValueError, match="different KV capacities"):
        evaluate_runs([a, bench_run("vtc", {"x": 1.0}, (1.0, 10.0), cap=4096.0)])
    with pytest.raises(ValueError, match="no engine steps measured"):
        evaluate_runs([bench_run("fcfs", {"x": 1.0}, (0.0, 0.0))])


def test_reference_step_time_is_busy_time_over_engine_steps() -> None:
    # inter-token latency (here 0.3 s and 0.5 s) includes preempted waiting; the step time does not
    a = bench_run("fcfs", {"x": 4.0}, (30.0, 100.0), steps=200.0, busy=20.0)
    b = bench_run("justitia", {"x": 1.0}, (50.0, 100.0), steps=300.0, busy=36.0)
    _, it_s, _ = evaluate_runs([a, b])
    assert it_s == pytest.approx(56.0 / 500.0)
    assert a.step_s == pytest.approx(0.1) and b.step_s == pytest.approx(0.12)


def test_busy_time_is_the_union_of_call_intervals() -> None:
    assert bench.busy_time([(0, 2), (1, 3), (5, 6), (5.5, 5.7), (math.nan, 9)]) == pytest.approx(4.0)
    assert bench.busy_time([]) == 0.0
    assert bench.busy_time([(3, 4), (0, 1)]) == pytest.approx(2.0)


def test_a_failed_app_is_compared_under_no_policy() -> None:
    from justitia.runner.bench_report import common_apps, restrict

    a = bench_run("fcfs", {"x": 4.0, "y": 2.0, "z": 1.0}, (10.0, 100.0), steps=10, busy=1.0)
    b = bench_run("justitia", {"x": 1.0, "z": 2.0}, (10.0, 100.0), steps=10, busy=1.0)  # y failed here
    keep = common_apps([a, b])
    assert keep == {"x", "z"}
    ra, rb = restrict([a, b], keep)
    assert sorted(x.app_id for x in ra.result.apps) == ["x", "z"]
    assert sorted(s.app_id for s in ra.measured) == ["x", "z"]
    assert len(a.result.apps) == 3  # the originals are untouched (calls.csv keeps every call)
    _, _, metrics = evaluate_runs([ra, rb])
    assert [len(m.apps) for m in metrics] == [2, 2]


def test_engine_cores_leave_a_core_for_the_frontends() -> None:
    from justitia.runner.bench_servers import engine_cores

    assert engine_cores(2, [0, 1], sequential=False) == (False, [1, 1])  # 2 engines + frontends > 2 cores
    assert engine_cores(3, [0, 1, 2, 3], sequential=False) == (True, [1, 2, 3])
    assert engine_cores(3, [0, 1, 2, 3], sequential=True) == (False, [3, 3, 3])
    assert engine_cores(2, [4], sequential=False) == (False, [None, None])


def test_call_rows_and_figures() -> None:
    r = bench_run("fcfs", {"x": 4.0, "y": 2.0, "z": 1.0}, (10.0, 100.0))
    rows = bench.call_rows(r)
    assert [row["app_id"] for row in rows] == ["x", "y", "z"]
    assert rows[0]["latency_s"] == pytest.approx(4.0) and rows[0]["start_s"] == pytest.approx(0.0)
    f = bench.run_figures(r)
    assert f["calls"] == 3 and f["call_latency_p50_s"] == pytest.approx(2.0)
    assert 2.0 < f["call_latency_p99_s"] <= 4.0
    assert f["mean_itl_s"] == pytest.approx(0.1)


class _RecordingApp:
    """Stands in for the SDK's App: records what a job's program asks the server for."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[int], int, bool]] = []
        self.stage = 0

    def next_stage(self) -> None:
        self.stage += 1

    async def complete(self, prompt: list[int], *, max_tokens: int, last: bool, **kw: object) -> None:
        assert kw["extra_body"] == {"ignore_eos": True}  # decode exactly max_tokens
        self.calls.append((self.stage, prompt, max_tokens, last))


def test_spec_job_sends_exact_lengths_stage_by_stage() -> None:
    import asyncio

    spec = AppSpec.from_json({"app_id": "a", "arrival_s": 1.0, "type": "x", "stages": [
        {"calls": [{"prompt_tokens": 5, "output_tokens": 3}] * 2},
        {"calls": [{"prompt_tokens": 7, "output_tokens": 1}]}]})
    job = bench.spec_job(spec)
    assert job.cost_hint == 2 * (3 * 5 + 3 * 4 / 2) + (1 * 7 + 1)  # cost eq. 1 by hand: 42 + 8
    assert bench.spec_job(spec, hint=False).cost_hint is None
    app = _RecordingApp()
    asyncio.run(job.run(app))  # type: ignore[arg-type]
    assert [(st, len(p), mt, last) for st, p, mt, last in app.calls] == [(0, 5, 3, False), (0, 5, 3, False),
                                                                         (1, 7, 1, True)]
    assert app.calls[0][1] != app.calls[1][1]  # distinct random prompts: no prefix-cache hits
    again = _RecordingApp()
    asyncio.run(bench.spec_job(spec).run(again))  # type: ignore[arg-type]
    assert [c[1] for c in again.calls] == [c[1] for c in app.calls]  # seeded: the same prompts each run


def test_calibration_fit_recovers_a_known_model() -> None:
    a, b, c, d, e = 0.02, 1e-4, 2e-3, 5e-6, 3e-7
    samples = []
    for p in (64, 256, 512, 1024, 2000):
        samples.append(Sample("prefill", p, 0, 0, a + b * p + e * p * p))
    for n, p in ((1, 64), (4, 64), (8, 256), (16, 64), (16, 512)):
        kv = n * (p + 24)
        samples.append(Sample("decode", 0, n, kv, a + c * n + d * kv))
    m = fit_nonneg(samples)
    for got, want in zip((m.a, m.b, m.c, m.d, m.e), (a, b, c, d, e)):
        assert got == pytest.approx(want, rel=1e-3)
    # noise that would make a coefficient negative: it is dropped, never negative
    noisy = [Sample(s.kind, s.prefill_tokens, s.decode_tokens, s.kv_tokens_read,
                    s.seconds * (1.3 if s.decode_tokens >= 8 else 1.0)) for s in samples]
    m2 = fit_nonneg(noisy)
    assert min(m2.a, m2.b, m2.c, m2.d, m2.e) >= 0.0
    with pytest.raises(ValueError, match="at least 5"):
        fit_nonneg(samples[:3])


def test_compare_sim_replays_runs_in_the_simulator(tmp_path) -> None:
    from justitia.sim.latency import LinearLatency

    lat = LinearLatency(0.05, 1e-4, 1e-3, 1e-6)
    path = save_calibration(tmp_path / "cal.json", lat, [], {})
    big = AppSpec.from_json({"app_id": "big", "arrival_s": 0.0, "type": "sc",
                             "stages": [{"calls": [{"prompt_tokens": 100, "output_tokens": 100}] * 8}]})
    small = AppSpec.from_json({"app_id": "small", "arrival_s": 0.5, "type": "chat",
                               "stages": [{"calls": [{"prompt_tokens": 50, "output_tokens": 20}]}]})
    runs = [RealRun(p, [big, small], {"big": big.cost, "small": small.cost}, {"big": 12.0, "small": act}, 12.0, 0)
            for p, act in (("fcfs", 9.0), ("justitia", 2.0))]
    out = compare_sim(runs, capacity_tokens=1024, iteration_s=0.06, calibration=path)
    assert set(out["policies"]) == {"fcfs", "justitia"}
    sim = {p: v["sim_mean_act_s"] for p, v in out["policies"].items()}
    # the simulator, like the "real" numbers here, lets the small app overtake under justitia
    assert sim["justitia"] < sim["fcfs"]
    assert out["ranking_identical"] and out["real_ranking"] == ["justitia", "fcfs"]
    assert math.isfinite(out["max_mean_act_error"])
    # the simulated step time is reported next to the real one
    assert all(0.05 < v["sim_step_s"] < 1.0 for v in out["policies"].values())


def test_repeats_are_summarised_per_policy() -> None:
    from justitia.runner.bench_repeat import aggregate

    def rep(j_ratio: float, step: float, order: list[str]) -> dict:
        pol = {"fcfs": {"mean_act_s": 10.0, "mean_act_vs_fcfs": 1.0, "throughput_vs_fcfs": 1.0, "engine_steps": 100,
                        "step_s": step, "apps_over_fair_bound": 2, "max_delay_vs_fair_s": 5.0, "preemptions": 3,
                        "output_tok_s": 50.0},
               "justitia": {"mean_act_s": 10.0 * j_ratio, "mean_act_vs_fcfs": j_ratio, "throughput_vs_fcfs": 0.98,
                            "engine_steps": 102, "step_s": step, "apps_over_fair_bound": 0,
                            "max_delay_vs_fair_s": 1.0, "preemptions": 4, "output_tok_s": 49.0}}
        return {"workload": "w", "policies": pol, "order": order}

    agg = aggregate([rep(0.6, 0.07, ["fcfs", "justitia"]), rep(0.8, 0.08, ["justitia", "fcfs"])])
    j = agg["policies"]["justitia"]
    assert j["mean_act_vs_fcfs"] == pytest.approx({"mean": 0.7, "min": 0.6, "max": 0.8})
    assert j["per_repeat"]["step_s"] == [0.07, 0.08] and j["mean_act_s"] == pytest.approx(7.0)
    assert agg["policies"]["fcfs"]["apps_over_fair_bound_total"] == 4
    assert agg["orders"] == [["fcfs", "justitia"], ["justitia", "fcfs"]]
    with pytest.raises(ValueError, match="no repeats"):
        aggregate([])
    # with --compare-sim each repeat's agreement is carried along
    reps = [rep(0.6, 0.07, ["fcfs", "justitia"]), rep(0.8, 0.08, ["justitia", "fcfs"])]
    for r, err in zip(reps, (0.1, 0.3)):
        r["sim_vs_real"] = {"policies": {"fcfs": {"sim_over_real": 1 - err}, "justitia": {"sim_over_real": 1 + err}},
                            "ranking_identical": err < 0.2, "max_mean_act_error": err}
    agg = aggregate(reps)
    assert agg["policies"]["justitia"]["sim_over_real"] == [1.1, 1.3]
    assert agg["sim_vs_real"] == {"ranking_identical": [True, False], "max_mean_act_error": [0.1, 0.3]}


def test_compare_sim_step_matched_replay_rescales_the_model(tmp_path) -> None:
    from justitia.sim.latency import LinearLatency

    lat = LinearLatency(0.05, 1e-4, 1e-3, 1e-6)
    path = save_calibration(tmp_path / "cal.json", lat, [], {})
    app = AppSpec.from_json({"app_id": "a", "arrival_s": 0.0, "type": "sc",
                             "stages": [{"calls": [{"prompt_tokens": 100, "output_tokens": 50}] * 4}]})
    first = compare_sim([RealRun("fcfs", [app], {}, {"a": 10.0}, 10.0, 0)], 4096, 0.1, calibration=path)
    v0 = first["policies"]["fcfs"]
    assert "speed_factor" not in v0  # no measured step time: no matched replay
    # the host ran twice as slow per step as calibrated: one app alone, so its ACT doubles too
    run = RealRun("fcfs", [app], {}, {"a": 10.0}, 10.0, 0, step_s=2.0 * v0["sim_step_s"])
    v = compare_sim([run], 4096, 0.1, calibration=path)["policies"]["fcfs"]
    assert v["speed_factor"] == pytest.approx(2.0)
    assert v["sim_matched_mean_act_s"] == pytest.approx(2.0 * v["sim_mean_act_s"], rel=1e-6)
