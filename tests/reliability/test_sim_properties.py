"""Property-based tests of the simulated engine under every policy.

Random application streams (hypothesis) on a small, memory-scarce simulated engine, so preemption,
chunked prefill and stage releases all happen:

* every request finishes exactly once, every KV block is returned, the block accounting holds at every
  step (``check_invariants``), no policy keeps per-application state after its applications ended;
* a run is deterministic: the same workload and policy give bit-identical results, and wrapping the
  policy in :class:`~justitia.core.safe.SafePolicy` (as the vLLM plugin does) changes nothing;
* a policy that raises at random still serves everything (SafePolicy's FCFS fallback);
* with oracle costs, Justitia finishes every application no later than its fair-sharing finish plus
  the bound of :mod:`justitia.bench.metrics` (bound eq. 5: PGPS term ``C_max / M · iteration_s`` plus
  the application's own critical path plus, where its prompt can wait for room, the cache it leaves
  unused meanwhile), with the reference at the engine's *measured* saturated rate
  as ``justitia simulate`` uses it (at the nominal decode-only rate the bound is exceeded: measured
  1/1322 single-stage and 6/1410 multi-stage apps, by up to 17 % of the allowance, over 300 random
  workloads each; 0 at the measured rate);
* under an endless stream of small applications a large one still finishes, for every policy that
  claims it; SJF does not claim it, and the test shows it starving (a documented contrast).
"""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from justitia.apps.model import AppSpec, Call, Stage
from justitia.bench.experiment import measure_iteration_s
from justitia.bench.metrics import evaluate
from justitia.core.policy import Key, Policy, Req
from justitia.policies import make_policy
from justitia.core.safe import SafePolicy
from justitia.sim.config import EngineConfig, preset
from justitia.sim.engine import Simulator, make_simulation_policy

POLICIES = ["fcfs", "app_fcfs", "vtc", "sjf", "plas", "atlas", "justitia", "req-sjf", "justitia-c", "justitia-plus", "justitia-lane"]
NO_STARVATION = ["fcfs", "app_fcfs", "plas", "atlas", "justitia"]  # sjf and vtc do not (see the contrast test)

# A small engine where memory is scarce: 64 blocks of 16 tokens, 16 sequences, 256-token chunks.
CFG = preset("h100-llama2-7b", capacity_tokens=1024, max_num_seqs=16, max_num_batched_tokens=256,
             check_invariants=True)
# Small budgets keep the file under a minute on 2 cores; JUSTITIA_PROPERTY_EXAMPLES=300 searches deeper.
EXAMPLES = int(os.environ.get("JUSTITIA_PROPERTY_EXAMPLES", "30"))
PROPS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=max(EXAMPLES // 2, 1), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def workloads(draw: Any, max_apps: int = 6, max_stages: int = 3, weights: bool = True) -> list[AppSpec]:
    """1–``max_apps`` applications of 1–``max_stages`` stages of 1–4 parallel calls each."""
    n = draw(st.integers(1, max_apps))
    apps = []
    for i in range(n):
        arrival = draw(st.integers(0, 2000)) / 1000.0  # ms resolution: simultaneous arrivals happen
        stages = []
        for _ in range(draw(st.integers(1, max_stages))):
            k = draw(st.integers(1, 4))
            calls = tuple(Call(draw(st.integers(1, 600)), draw(st.integers(1, 300))) for _ in range(k))
            stages.append(Stage(calls, draw(st.sampled_from([0.0, 0.0, 0.05]))))
        w = draw(st.sampled_from([1.0, 1.0, 0.5, 2.0])) if weights else 1.0
        apps.append(AppSpec(f"a{i}", arrival, f"t{len(stages)}", tuple(stages), w))
    return apps


def run(apps: list[AppSpec], policy: Policy, cfg: EngineConfig = CFG) -> tuple[Simulator, Any]:
    sim = Simulator(apps, policy, cfg, trace=True)
    return sim, sim.run()


def inner(policy: Policy) -> Policy:
    return policy.inner if isinstance(policy, SafePolicy) else policy  # type: ignore[attr-defined]


def container_sizes(policy: Policy) -> dict[str, int]:
    return {k: len(v) for k, v in vars(inner(policy)).items() if isinstance(v, (dict, set, list))}


def assert_no_policy_state(policy: Policy, before: dict[str, int]) -> None:
    """Every container of the policy is back to its size before the run (configuration lists such as
    PLAS's thresholds stay; per-application / per-request state is gone)."""
    p = inner(policy)
    after = container_sizes(policy)
    grown = {k: (before.get(k, 0), n) for k, n in after.items() if n != before.get(k, 0)}
    assert not grown, f"{p.name} keeps state after every app ended: {grown}"
    clock = getattr(p, "clock", None)
    if clock is not None:  # the fair-sharing reference drains once virtual time passes every F
        clock.advance(clock.now + 1e9)
        assert len(clock) == 0


# ---------------------------------------------------------------------- exactly once, blocks, no leaks
@pytest.mark.parametrize("name", POLICIES)
@PROPS
@given(apps=workloads())
def test_every_request_finishes_once_and_every_block_returns(name: str, apps: list[AppSpec]) -> None:
    policy = make_simulation_policy(name, CFG)
    before = container_sizes(policy)
    sim, res = run(apps, policy)
    total = sum(a.num_calls for a in apps)
    ids = Counter(r["req_id"] for r in sim.requests)
    assert len(ids) == total and all(c == 1 for c in ids.values())  # each request finished exactly once
    assert sim.finished == total
    assert sim.blocks_in_use == 0 and sim.free == sim.num_blocks  # every KV block returned
    assert sim.max_blocks_in_use <= sim.num_blocks
    # every application finished once, when its last request did, and stages ran in order
    assert sorted(r.app_id for r in res.apps) == sorted(a.app_id for a in apps)
    by_app: dict[str, list[dict[str, Any]]] = {}
    for r in sim.requests:
        by_app.setdefault(r["app_id"], []).append(r)
    specs = {a.app_id: a for a in apps}
    for rec in res.apps:
        reqs = by_app[rec.app_id]
        assert len(reqs) == specs[rec.app_id].num_calls
        assert rec.completion_s == max(r["finish_s"] for r in reqs) >= rec.arrival_s
        for s in range(1, len(specs[rec.app_id].stages)):
            prev_end = max(r["finish_s"] for r in reqs if r["stage"] == s - 1)
            assert min(r["arrival_s"] for r in reqs if r["stage"] == s) >= prev_end
    assert_no_policy_state(policy, before)


# ---------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", POLICIES)
@FEW
@given(apps=workloads())
def test_runs_are_deterministic_and_safe_wrapping_changes_nothing(name: str, apps: list[AppSpec]) -> None:
    cfg = CFG.replace(check_invariants=False)

    def outcome(policy: Policy) -> tuple[Any, ...]:
        sim, res = run(apps, policy, cfg)
        return (tuple((a.app_id, a.completion_s) for a in res.apps), res.preemptions, res.iterations,
                tuple((r["req_id"], r["finish_s"]) for r in sim.requests))

    first = outcome(make_simulation_policy(name, cfg))
    assert outcome(make_simulation_policy(name, cfg)) == first  # bit-identical
    safe = SafePolicy(make_simulation_policy(name, cfg))
    wrapped = outcome(safe)
    assert safe.fallbacks == 0
    # SafePolicy listens to service reports even for policies that ignore them, which can split the
    # simulator's closed-form decode advances differently: same schedule, float-rounding-close times.
    assert wrapped[1:3] == first[1:3]
    assert [a for a, _ in wrapped[0]] == [a for a, _ in first[0]]
    for (_, t1), (_, t2) in zip(wrapped[0], first[0]):
        assert math.isclose(t1, t2, rel_tol=1e-9, abs_tol=1e-9)


# ---------------------------------------------------------------------- a randomly failing policy
class Flaky(Policy):
    """Wraps a real policy and raises in key()/served(): always at the first key() call, then with
    probability ``p`` (seeded); :attr:`injected` counts the faults raised."""

    def __init__(self, real: Policy, p: float, seed: int) -> None:
        super().__init__(real.capacity_tokens, real.iteration_s)
        self.real, self.p, self.rng = real, p, random.Random(seed)
        self.name = f"flaky-{real.name}"
        self.dynamic_keys = real.dynamic_keys  # type: ignore[misc]
        self.injected = 0

    def _maybe(self) -> None:
        if self.injected == 0 or self.rng.random() < self.p:
            self.injected += 1
            raise RuntimeError("injected policy fault")

    def app_arrived(self, app: Any, now: float) -> None:
        self.real.app_arrived(app, now)

    def request_arrived(self, req: Req, now: float) -> None:
        self.real.request_arrived(req, now)

    listens_to_service = True  # served() records what it is told

    def served(self, req: Req, prefill: int, decode: int, held: float, now: float) -> None:
        self._maybe()
        self.real.served(req, prefill, decode, held, now)

    def request_finished(self, req: Req, now: float) -> None:
        self.real.request_finished(req, now)

    def app_finished(self, app_id: str, now: float) -> None:
        self.real.app_finished(app_id, now)

    def tick(self, now: float) -> None:
        self.real.tick(now)

    def key(self, req: Req) -> Key:
        self._maybe()
        return self.real.key(req)


@pytest.mark.parametrize("name", ["justitia", "vtc"])
@FEW
@given(apps=workloads(max_apps=8), seed=st.integers(0, 2**16))
def test_a_randomly_failing_policy_never_loses_a_request(name: str, apps: list[AppSpec], seed: int) -> None:
    flaky = Flaky(make_simulation_policy(name, CFG), p=0.2, seed=seed)
    safe = SafePolicy(flaky)
    before = container_sizes(flaky.real)
    sim, res = run(apps, safe)
    assert sim.finished == sum(a.num_calls for a in apps) and sim.blocks_in_use == 0
    assert len(res.apps) == len(apps)
    # faults did happen, and every one was caught and counted by the wrapper
    assert flaky.injected >= 1 and safe.fallbacks == flaky.injected
    assert 1 <= safe.fallback_steps <= safe.fallbacks
    assert_no_policy_state(flaky.real, before)


# ---------------------------------------------------------------------- the fair-sharing bound
def check_bound(apps: list[AppSpec], name: str = "justitia") -> Any:
    """Justitia with oracle costs, judged as ``justitia simulate`` judges it: the reference and the
    policy's clock run at the engine's measured saturated rate (:func:`measure_iteration_s`), and
    critical paths are timed at its measured saturated iteration (bound eq. 5 of bench.metrics)."""
    cfg = CFG.replace(check_invariants=False)
    it_s, path_s = measure_iteration_s(apps, cfg)
    policy = make_policy(name, cfg.kv_capacity, it_s)  # oracle estimator: true costs
    _, res = run(apps, policy, cfg)
    return evaluate(res, apps, iteration_s=it_s, capacity_tokens=cfg.kv_capacity,
                    prefill_tokens_per_iter=cfg.max_num_batched_tokens, path_iteration_s=path_s)


def lane_slack_s(m: Any, name: str) -> float:
    """The extra delay ``justitia-lane`` may add to bound eq. 5: its lane serves one application's calls
    right behind the head, ahead of everyone else's turn, for as long as that application is the lane
    (at most its whole cost): ``C_max / M`` at the reference rate, i.e. the run's ``fair_bound_s``
    (bound eq. 1). 0 for every other policy.
    (CI's hypothesis found apps 0.1-1 % over the plain bound under the lane: the lane app jumped ahead.)"""
    return m.fair_bound_s if name == "justitia-lane" else 0.0


def over_bound(apps: list[AppSpec], name: str) -> list[tuple[str, float, float]]:
    m = check_bound(apps, name)
    slack = lane_slack_s(m, name)
    return [(a.app_id, a.delay_vs_fair_s, a.allowed_delay_s + slack) for a in m.apps
            if a.delay_vs_fair_s > a.allowed_delay_s + slack + 1e-9]


@pytest.mark.parametrize("name", ["justitia", "justitia-lane"])
@settings(max_examples=EXAMPLES + 10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(apps=workloads(max_apps=8, max_stages=1))
def test_justitia_oracle_single_stage_apps_finish_within_the_fair_bound(name: str, apps: list[AppSpec]) -> None:
    if name == "justitia":
        m = check_bound(apps, name)
        late = [(a.app_id, a.delay_vs_fair_s, a.allowed_delay_s) for a in m.apps if a.over_bound]
        assert m.apps_over_fair_bound == 0, late
    else:  # the lane's bound: eq. 5 + C_max / M
        assert not over_bound(apps, name)


@pytest.mark.parametrize("name", ["justitia", "justitia-lane"])
@FEW
@given(apps=workloads(max_apps=8, max_stages=3))
def test_justitia_oracle_multi_stage_apps_finish_within_the_fair_bound(name: str, apps: list[AppSpec]) -> None:
    # Stages and tool delays break the fluid assumption; bound eq. 5 adds each app's critical path.
    assert not over_bound(apps, name)


@pytest.mark.parametrize("name", ["justitia", "justitia-plus", "justitia-lane"])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(apps=workloads(max_apps=8, max_stages=2))
def test_justitia_oracle_finishes_within_the_papers_bound_plus_its_critical_path(name: str, apps: list[AppSpec]) -> None:
    # The paper's Theorem B.1 (bound eq. 4 of bench.metrics: (2·c_max + C_max) / M at the reference
    # rate), with each app's critical path added: the fluid reference lets an app use all of M at once.
    m = check_bound(apps, name)
    assert m.paper_bound_s >= m.fair_bound_s > 0
    slack = lane_slack_s(m, name)
    late = [(a.app_id, a.delay_vs_fair_s, m.paper_bound_s + a.critical_path_s + slack) for a in m.apps
            if a.delay_vs_fair_s > m.paper_bound_s + a.critical_path_s + slack + 1e-6]
    assert not late


# ---------------------------------------------------------------------- starvation
SMALL = Call(50, 20)
LARGE = Stage(tuple(Call(300, 200) for _ in range(2)))
# Engine for the stream: 2048 KV tokens, 32 sequences. One small app every 5.5 ms (~180/s): FCFS keeps
# up with the stream (its makespan ends with the stream), but a small request is almost always waiting
# when KV frees up — the situation in which a policy that always prefers small apps starves a big one.
STREAM_CFG = preset("h100-llama2-7b", capacity_tokens=2048, max_num_seqs=32, max_num_batched_tokens=512)
GAP_S = 0.0055


def stream(duration_s: float, gap_s: float = GAP_S, large_at: float = 0.3) -> list[AppSpec]:
    """One large app (2 calls of 300+200 tokens) in an endless-looking stream of 1-call apps."""
    apps = [AppSpec("large", large_at, "large", (LARGE,))]
    for i in range(int(duration_s / gap_s)):
        apps.append(AppSpec(f"s{i}", i * gap_s, "small", (Stage((SMALL,)),)))
    return apps


def large_finish(name: str, apps: list[AppSpec]) -> float:
    _, res = run(apps, make_simulation_policy(name, STREAM_CFG), STREAM_CFG)
    return next(a.completion_s for a in res.apps if a.app_id == "large")


# VTC (measured): each new application is lifted to the smallest counter of the active ones, so a stream
# of new small applications always has counters <= the large application's; the large one runs only when
# no small one waits. VTC bounds service gaps between *backlogged* clients, which short-lived apps never are.


@pytest.mark.parametrize("name", NO_STARVATION)
def test_a_large_app_is_not_starved_by_an_endless_stream(name: str) -> None:
    # The same policy on a stream twice as long: the large app's finish does not move with the
    # stream's length (it is served while the stream still runs), so no stream length starves it.
    short, long = large_finish(name, stream(24.0)), large_finish(name, stream(48.0))
    assert short < 24.0, f"{name}: the large app finished at {short:.2f}s, after the 24 s stream ended"
    assert math.isclose(short, long, rel_tol=1e-6), (short, long)


@pytest.mark.parametrize("name", ["sjf", "vtc"])
def test_sjf_and_vtc_starve_the_large_app_documented_contrast(name: str) -> None:
    # SJF (smallest remaining cost first) and VTC (see the note above) serve the large app only once the
    # stream ends, later and later as the stream grows.
    short, long = large_finish(name, stream(24.0)), large_finish(name, stream(48.0))
    assert short > 24.0 and long > 48.0, (short, long)


# ---------------------------------------------------------------------- regressions found by the properties
def _app(app_id: str, t: float, calls: list[tuple[int, int]], w: float = 1.0) -> AppSpec:
    return AppSpec(app_id, t, "t1", (Stage(tuple(Call(p, o) for p, o in calls)),), w)


LOST_PREFILL = [
    _app("a0", 0.128, [(1, 250)], 0.5), _app("a1", 0.0, [(339, 88), (213, 118), (130, 76)]), _app("a2", 0.048, [(1, 1)]),
    _app("a3", 0.073, [(345, 76)]), _app("a4", 0.257, [(65, 7), (341, 98), (1, 1), (1, 1)], 2.0),
    _app("a5", 0.0, [(1, 1)]), _app("a6", 0.725, [(72, 2), (183, 1)]), _app("a7", 0.224, [(250, 78)]),
]


# Found by test_justitia_oracle_single_stage_apps_finish_within_the_fair_bound at 200 examples: a decoder
# preempted itself (the iteration stopped), the prefilling request was not scheduled that iteration, and
# the post-process dropped it with its KV blocks. Fixed in Simulator._detailed_step.
def test_regression_prefilling_request_survives_a_stopped_iteration() -> None:
    cfg = CFG.replace(check_invariants=True)
    policy = make_policy("justitia", cfg.kv_capacity, 0.007284291065173025)  # the measured rate of this workload
    sim, _ = run(LOST_PREFILL, policy, cfg)
    assert sim.finished == 14 and sim.blocks_in_use == 0


# Found by test_justitia_oracle_single_stage_apps_finish_within_the_fair_bound: a3's 283+300-token call
# is admitted 0.1 ms before a0's 600-token prompt arrives; a0 needs 38 of the 64 blocks, a3 holds 18-37
# for its 300 iterations and is never preempted to admit a waiting request, so a0 waits it out with the
# cache partly empty (prompts large against M, outside Theorem B.1). In the second, two 274-token
# sequences keep a 577-token prompt out. Bound eq. 3 alone is exceeded; eq. 5 (+ p_i / M of the longest other
# call's duration) of bench.metrics covers both.
FRAGMENTED = [
    AppSpec("a0", 0.261, "t1", (Stage((Call(600, 9),)),)),
    AppSpec("a1", 0.005, "t1", (Stage((Call(2, 2),)),), 0.5),
    AppSpec("a2", 0.002, "t1", (Stage((Call(4, 3), Call(1, 48), Call(1, 174), Call(1, 138)), 0.05),), 2.0),
    AppSpec("a3", 0.21, "t1", (Stage((Call(283, 300),), 0.05),), 2.0),
]
FRAGMENTED_BY_TWO = [
    AppSpec("a0", 0.309, "t1", (Stage((Call(577, 1),)),)),
    AppSpec("a1", 0.0, "t1", (Stage((Call(1, 1),)),)),
    AppSpec("a2", 0.0, "t1", (Stage((Call(154, 120), Call(1, 1))),)),
    AppSpec("a3", 0.0, "t1", (Stage((Call(153, 120),)),)),
]


@pytest.mark.parametrize("apps", [FRAGMENTED, FRAGMENTED_BY_TWO], ids=["one-blocker", "two-blockers"])
def test_regression_a_prompt_kept_out_by_running_requests_is_within_the_bound(apps: list[AppSpec]) -> None:
    m = check_bound(apps)
    a0 = next(a for a in m.apps if a.app_id == "a0")
    # the blocking really happened: a0 is later than bound eq. 3 alone allows ...
    assert a0.delay_vs_fair_s > m.fair_bound_s + a0.critical_path_s
    # ... because it waited for a request admitted before it arrived: it finished last
    assert a0.completion_s == max(a.completion_s for a in m.apps)
    # and bound eq. 5 covers it
    assert m.apps_over_fair_bound == 0


def test_regression_an_app_arriving_mid_step_waits_for_it_within_bound_eq5() -> None:
    """Found by CI's hypothesis run: three one-token apps 1-3 ms apart; a2 arrives while a1's step runs and
    steps are not preempted, so it waits for that step: 0.1 ms past bound eq. 5 until eq. 5 counted the step
    in progress (one iteration). Now within it, under justitia and under the lane's bound."""
    one = (Stage((Call(1, 1),)),)
    apps = [AppSpec("a0", 0.004, "t1", one), AppSpec("a1", 0.0, "t1", one), AppSpec("a2", 0.001, "t1", one)]
    m = check_bound(apps, "justitia")
    a2 = next(a for a in m.apps if a.app_id == "a2")
    assert a2.delay_vs_fair_s > a2.critical_path_s + m.fair_bound_s  # it did wait for a1's step
    assert m.apps_over_fair_bound == 0
    assert not over_bound(apps, "justitia-lane")
