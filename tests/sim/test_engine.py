"""The simulated engine: memory accounting, preemption, stages, determinism, macro-steps, timing."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from sim_helpers import SMALL_LAT, random_apps, small_config

from justitia.apps.model import AppSpec, Call, Stage
from justitia.core.policies.fcfs import FCFS
from justitia.core.policy import Req, policy_names
from justitia.policies import make_policy
from justitia.sim.config import nominal_iteration_s, preset
from justitia.sim.engine import Simulator, arrival_features, make_simulation_policy, simulate

POLICIES = policy_names()


def _run(apps, name, cfg, trace=True):
    sim = Simulator(apps, make_simulation_policy(name, cfg), cfg, trace=trace)
    return sim, sim.run()


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("pfa", [False, True])
def test_memory_accounting_and_every_request_once(name: str, seed: int, pfa: bool) -> None:
    apps = random_apps(seed)
    cfg = small_config(capacity=2048 if seed != 3 else 8192, preempt_for_admission=pfa)
    sim, res = _run(apps, name, cfg)
    assert sim.blocks_in_use == 0 and sim.free == cfg.num_blocks
    assert 0 < sim.max_blocks_in_use <= cfg.num_blocks
    ids = [r["req_id"] for r in sim.requests]
    expected = {f"{a.app_id}/{si}.{j}" for a in apps for si, s in enumerate(a.stages) for j in range(len(s.calls))}
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    assert sim.finished == len(expected)
    assert sorted(r.app_id for r in res.apps) == sorted(a.app_id for a in apps)
    by_id = {a.app_id: a for a in apps}
    for rec in res.apps:
        spec = by_id[rec.app_id]
        assert rec.completion_s > rec.arrival_s == spec.arrival_s
        assert rec.cost == spec.cost and rec.num_calls == spec.num_calls
    assert res.output_tokens == sum(c.output_tokens for a in apps for c in a.calls())


def test_memory_pressure_preempts_the_largest_key() -> None:
    apps = random_apps(7, n=40, rate=20.0)
    cfg = small_config(capacity=1024)
    for name in ("fcfs", "justitia", "vtc"):
        sim, res = _run(apps, name, cfg)
        assert res.preemptions > 0, name
        assert len(sim.preemption_log) == res.preemptions
        for _, _, victim_key, others_max in sim.preemption_log:
            assert others_max is None or victim_key > others_max
        assert sim.blocks_in_use == 0
    # under FCFS the victim is the newest request: recomputed requests are the late arrivals
    sim, _ = _run(apps, "fcfs", cfg)
    arrival = {r["req_id"]: r["arrival_s"] for r in sim.requests}
    for t, victim, key, _ in sim.preemption_log:
        assert key[0][0] == arrival[victim]


def test_ample_memory_never_preempts() -> None:
    apps = random_apps(4)
    _, res = _run(apps, "fcfs", small_config(capacity=1 << 20))
    assert res.preemptions == 0


@pytest.mark.parametrize("name", ["fcfs", "justitia", "vtc"])
def test_stage_waits_for_previous_stage_plus_delay(name: str) -> None:
    apps = random_apps(11, n=25, max_stages=4, delay=0.5)
    sim, _ = _run(apps, name, small_config(capacity=2048))
    by_app: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in sim.requests:
        by_app[r["app_id"]][r["stage"]].append(r)
    checked = 0
    for a in apps:
        stages = by_app[a.app_id]
        for k in range(1, len(a.stages)):
            end_prev = max(r["finish_s"] for r in stages[k - 1])
            for r in stages[k]:
                assert r["arrival_s"] == pytest.approx(end_prev + a.stages[k].delay_s, abs=1e-12)
                assert r["first_scheduled_s"] >= end_prev + a.stages[k].delay_s - 1e-12
                checked += 1
        for r in stages[0]:
            assert r["first_scheduled_s"] >= a.arrival_s
    assert checked > 20


@pytest.mark.parametrize("name", ["fcfs", "justitia", "vtc", "atlas"])
def test_deterministic(name: str) -> None:
    apps = random_apps(5)
    cfg = small_config(capacity=2048)
    a = simulate(apps, make_simulation_policy(name, cfg), cfg)
    b = simulate(apps, make_simulation_policy(name, cfg), cfg)
    a.wall_s = b.wall_s = 0.0
    assert a == b


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("seed,capacity", [(21, 1024), (22, 2048), (23, 1 << 16)])
@pytest.mark.parametrize("exact", [True, False])
def test_macro_steps_equal_single_steps(name: str, seed: int, capacity: int, exact: bool) -> None:
    if not exact and not make_policy(name, 1.0, 1.0).dynamic_keys:
        pytest.skip("exact_dynamic_keys only matters for dynamic-key policies")
    if not exact and name in ("plas", "atlas"):
        pytest.skip("time-dependent keys (anti-starvation) are re-read only at step boundaries in this mode")
    apps = random_apps(seed, n=40, rate=6.0)
    macro = small_config(capacity=capacity, served_every=8, exact_dynamic_keys=exact)
    single = macro.replace(macro_steps=False)
    sm, rm = _run(apps, name, macro)
    ss, rs = _run(apps, name, single)
    assert rm.iterations == rs.iterations and rm.preemptions == rs.preemptions
    assert sm.max_blocks_in_use == ss.max_blocks_in_use
    assert rm.extra["decode_advances"] < rs.extra["decode_advances"]  # it did take multi-iteration steps
    for x, y in zip(rm.apps, rs.apps):
        assert x.app_id == y.app_id
        assert x.completion_s == pytest.approx(y.completion_s, rel=1e-9, abs=1e-9)
    fm = {r["req_id"]: r["finish_s"] for r in sm.requests}
    for r in ss.requests:
        assert fm[r["req_id"]] == pytest.approx(r["finish_s"], rel=1e-9, abs=1e-9)


def test_macro_steps_equal_single_steps_on_gpu_preset() -> None:
    from justitia.apps.arrivals import scale_to_load
    from justitia.apps.workloads import make_workload

    cfg = preset("h100-llama2-7b", check_invariants=True)
    apps = scale_to_load(make_workload("paper-mix", 60, 3), 1.3, cfg.kv_capacity / nominal_iteration_s(cfg))
    for name, pfa in (("fcfs", False), ("justitia", False), ("justitia", True)):
        c = cfg.replace(preempt_for_admission=pfa)
        rm = simulate(apps, make_simulation_policy(name, c), c)
        rs = simulate(apps, make_simulation_policy(name, c), c.replace(macro_steps=False))
        assert rm.preemptions == rs.preemptions and rm.iterations == rs.iterations
        assert rm.preemptions > 0  # memory is the bottleneck at this load
        assert rm.extra["admission_preemptions"] == rs.extra["admission_preemptions"]
        assert (rm.extra["admission_preemptions"] > 0) == pfa
        for x, y in zip(rm.apps, rs.apps):
            assert x.completion_s == pytest.approx(y.completion_s, rel=1e-9)


def test_fcfs_timing_matches_the_latency_model() -> None:
    """n identical requests at t=0 with ample memory: one prefill iteration, then o-1 decode iterations
    whose KV read grows by n per iteration (latency eq. 1), summed by hand."""
    n, p, o = 12, 30, 50
    apps = [AppSpec(f"a{i}", 0.0, "chat", (Stage((Call(p, o),)),)) for i in range(n)]
    cfg = small_config(capacity=1 << 16)
    res = simulate(apps, make_policy("fcfs", cfg.kv_capacity, 1.0), cfg)
    lat = SMALL_LAT
    t = lat.step_s(n * p, 0, 0, n * p * p)
    for j in range(1, o):  # decode iteration j: each request reads its p + j tokens
        t += lat.step_s(0, n, n * (p + j))
    assert res.makespan_s == pytest.approx(t, rel=1e-12)
    assert res.iterations == o
    assert all(r.completion_s == pytest.approx(t, rel=1e-12) for r in res.apps)
    assert res.throughput_tok_s == pytest.approx(n * o / t)
    assert res.preemptions == 0


def test_chunked_prefill_respects_the_token_budget() -> None:
    # one 1200-token prompt with a 512-token budget: chunks of 512, 512, 176 (the last samples token 1)
    apps = [AppSpec("big", 0.0, "chat", (Stage((Call(1200, 3),)),))]
    cfg = small_config(capacity=1 << 14)
    res = simulate(apps, make_policy("fcfs", cfg.kv_capacity, 1.0), cfg)
    lat = SMALL_LAT
    t = (lat.step_s(512, 0, 0, 512**2) + lat.step_s(512, 0, 512, 2 * 512 * 512 + 512**2)
         + lat.step_s(176, 0, 1024, 2 * 1024 * 176 + 176**2) + lat.step_s(0, 1, 1201) + lat.step_s(0, 1, 1202))
    assert res.iterations == 5
    assert res.makespan_s == pytest.approx(t, rel=1e-12)


class RecordingFCFS(FCFS):
    """FCFS that records the service reports it receives (test-only subclass of the real policy)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.held: dict[str, float] = defaultdict(float)
        self.decoded: dict[str, int] = defaultdict(int)
        self.prefill: dict[str, int] = defaultdict(int)

    listens_to_service = True  # served() records what it is told

    def served(self, req: Req, prefill_tokens: int, decode_tokens: int, held_token_iters: float, now: float) -> None:
        self.held[req.app_id] += held_token_iters
        self.decoded[req.app_id] += decode_tokens
        self.prefill[req.app_id] += prefill_tokens


@pytest.mark.parametrize("capacity", [1024, 1 << 16])
def test_served_reports_add_up_to_cost_eq_1_even_with_recompute(capacity: int) -> None:
    apps = random_apps(31, n=30, rate=10.0)
    cfg = small_config(capacity=capacity)
    pol = RecordingFCFS(cfg.kv_capacity, nominal_iteration_s(cfg))
    res = simulate(apps, pol, cfg)
    for a in apps:
        assert pol.held[a.app_id] == a.cost  # exact: cost eq. 1 whatever the spans and preemptions
        assert pol.decoded[a.app_id] == sum(c.output_tokens for c in a.calls())
        assert pol.prefill[a.app_id] >= sum(c.prompt_tokens for c in a.calls())
    if capacity == 1024:
        assert res.preemptions > 0
        assert sum(pol.prefill.values()) > sum(c.prompt_tokens for a in apps for c in a.calls())  # recompute


def test_app_info_carries_oracle_cost_and_arrival_features() -> None:
    apps = random_apps(3, n=5)
    seen = {}

    class Spy(FCFS):
        def app_arrived(self, app, now):  # noqa: ANN001
            seen[app.app_id] = (app, now)
            super().app_arrived(app, now)

    cfg = small_config()
    simulate(apps, Spy(cfg.kv_capacity, 1.0), cfg)
    for a in apps:
        info, now = seen[a.app_id]
        assert info.cost_hint == a.cost and info.weight == a.weight and info.app_type == a.type
        assert now == a.arrival_s
        first = [c.prompt_tokens for c in a.stages[0].calls]
        assert info.features == arrival_features(a)
        assert info.features["first_stage_calls"] == len(first)
        assert info.features["prompt_tokens_total"] == sum(first)
        assert info.features["prompt_tokens_max"] == max(first)


def test_bad_input_is_a_clear_error() -> None:
    cfg = small_config(capacity=1024)
    pol = make_policy("fcfs", cfg.kv_capacity, 1.0)
    with pytest.raises(ValueError, match="no applications"):
        simulate([], pol, cfg)
    huge = AppSpec("huge", 0.0, "chat", (Stage((Call(1000, 100),)),))
    with pytest.raises(ValueError, match="'huge'.*cannot fit in the KV capacity of 1024"):
        simulate([huge], pol, cfg)
    a = AppSpec("x", 0.0, "chat", (Stage((Call(10, 10),)),))
    with pytest.raises(ValueError, match="duplicate app_id 'x'"):
        simulate([a, a], pol, cfg)
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        small_config(max_num_batched_tokens=8, max_num_seqs=16)


def test_result_carries_the_fair_reference_basis() -> None:
    cfg = preset("h100-llama2-7b")
    apps = random_apps(2, n=10)
    res = simulate(apps, make_simulation_policy("justitia", cfg), cfg)
    assert res.capacity_tokens == 122_800
    assert res.iteration_s == nominal_iteration_s(cfg)
    assert res.policy == "justitia"
    assert math.isfinite(res.makespan_s) and res.makespan_s >= max(a.completion_s for a in res.apps)


@pytest.mark.parametrize("name", ["fcfs", "app_fcfs", "justitia"])
def test_cached_order_across_app_events_changes_nothing(name: str) -> None:
    """Policies declaring ``app_events_keep_keys`` let the engine keep its waiting order across app
    arrivals/finishes; forcing a full re-key instead must give the identical run."""
    apps = random_apps(41, n=40, rate=8.0)
    cfg = small_config(capacity=2048)
    fast = make_simulation_policy(name, cfg)
    slow = make_simulation_policy(name, cfg)
    assert type(fast).app_events_keep_keys
    slow.app_events_keep_keys = False  # type: ignore[misc]  # instance override: always re-key
    a = simulate(apps, fast, cfg)
    b = simulate(apps, slow, cfg)
    a.wall_s = b.wall_s = 0.0
    assert a == b


def test_progress_reports_finished_requests_up_to_the_total() -> None:
    apps = random_apps(8, n=20)
    calls: list[tuple[int, int]] = []
    cfg = small_config()
    simulate(apps, make_policy("fcfs", cfg.kv_capacity, 1.0), cfg, progress=lambda d, t: calls.append((d, t)))
    total = sum(a.num_calls for a in apps)
    assert calls and calls[-1] == (total, total)
    assert all(b[0] > a[0] for a, b in zip(calls, calls[1:]))


@pytest.mark.parametrize("name", ["a100-llama2-7b", "a100-llama3-8b"])
def test_other_presets_run_with_exact_accounting(name: str) -> None:
    cfg = preset(name, check_invariants=True)
    apps = random_apps(9, n=30, max_prompt=3000, max_out=400)
    sim = Simulator(apps, make_simulation_policy("justitia", cfg), cfg)
    res = sim.run()
    assert sim.blocks_in_use == 0 and len(res.apps) == 30
    assert res.iteration_s == nominal_iteration_s(cfg)


@pytest.mark.parametrize("name", ["vtc", "plas"])
def test_inexact_dynamic_keys_keep_exact_accounting(name: str) -> None:
    apps = random_apps(12, n=40, rate=8.0)
    cfg = small_config(capacity=1024, exact_dynamic_keys=False)
    sim, res = _run(apps, name, cfg)
    assert sim.blocks_in_use == 0 and sim.finished == sum(a.num_calls for a in apps)
    assert res.preemptions > 0
    for _, _, victim_key, others_max in sim.preemption_log:
        assert others_max is None or victim_key > others_max
