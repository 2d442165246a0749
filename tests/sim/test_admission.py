"""EngineConfig.preempt_for_admission: preempt larger-key running requests to admit the waiting head."""

from __future__ import annotations

import pytest
from sim_helpers import random_apps, small_config

from justitia.apps.model import AppSpec, Call, Stage
from justitia.core.policy import policy_names
from justitia.sim.engine import Simulator, make_simulation_policy


def _run(apps, name, cfg):
    sim = Simulator(apps, make_simulation_policy(name, cfg), cfg, trace=True)
    return sim, sim.run()


@pytest.mark.parametrize("name", policy_names())
@pytest.mark.parametrize("seed", [61, 62])
def test_admission_victims_have_a_larger_key_and_accounting_stays_exact(name: str, seed: int) -> None:
    apps = random_apps(seed, n=40, rate=8.0)
    cfg = small_config(capacity=1536, preempt_for_admission=True, admission_preempt_min_iters=4)
    sim, res = _run(apps, name, cfg)
    assert sim.blocks_in_use == 0 and sim.free == cfg.num_blocks
    assert sim.finished == sum(a.num_calls for a in apps) and len(res.apps) == len(apps)
    assert len(sim.admission_log) == sim.admission_preemptions == res.extra["admission_preemptions"]
    for _, _, victim_key, head_key in sim.admission_log:
        assert victim_key > head_key  # never preempt a request with a smaller key
    assert res.preemptions >= sim.admission_preemptions


def test_default_engine_never_preempts_for_admission() -> None:
    apps = random_apps(61, n=40, rate=8.0)
    sim, res = _run(apps, "justitia", small_config(capacity=1536))
    assert sim.admission_preemptions == 0 and res.extra["admission_preemptions"] == 0


def _big_then_small() -> list[AppSpec]:
    big = AppSpec("big", 0.0, "mapreduce", (Stage(tuple(Call(480, 60) for _ in range(16))),))
    small = AppSpec("small", 0.2, "chat", (Stage((Call(400, 20),)),))
    return [big, small]


BIG_SMALL_CFG = small_config(capacity=8192, max_num_seqs=32, max_num_batched_tokens=8192, admission_preempt_min_iters=4)


def test_small_app_is_admitted_at_once_instead_of_waiting_for_memory() -> None:
    """The big app's 16 calls fill the cache; the small one (smaller Justitia key) arrives later and does
    not fit. vLLM's behaviour makes it wait until a memory preemption frees room (~1 s here); with
    preemption for admission one big call is displaced at once."""
    apps = _big_then_small()
    s0, r0 = _run(apps, "justitia", BIG_SMALL_CFG)
    s1, r1 = _run(apps, "justitia", BIG_SMALL_CFG.replace(preempt_for_admission=True))
    act0 = {a.app_id: a.act_s for a in r0.apps}
    act1 = {a.app_id: a.act_s for a in r1.apps}
    assert s0.admission_preemptions == 0 and s1.admission_preemptions == 1
    assert act1["small"] < 0.5 * act0["small"]
    first = {r["req_id"]: r["first_scheduled_s"] for r in s1.requests}
    assert first["small/0.0"] < 0.2 + 0.02  # admitted in the iteration after its arrival
    assert all(v.startswith("big/") for _, v, _, _ in s1.admission_log)
    assert act1["big"] > act0["big"]  # the price: one big call recomputes


def test_min_iterations_rule_protects_recent_admissions() -> None:
    apps = _big_then_small()
    cfg = BIG_SMALL_CFG.replace(preempt_for_admission=True, admission_preempt_min_iters=10**6)
    sim, _ = _run(apps, "justitia", cfg)
    assert sim.admission_preemptions == 0  # nobody ran long enough to be displaced


@pytest.mark.parametrize("name", ["fcfs", "justitia", "vtc", "sjf", "atlas"])
@pytest.mark.parametrize("seed,capacity", [(71, 1024), (72, 2048)])
def test_macro_steps_equal_single_steps_with_admission_preemption(name: str, seed: int, capacity: int) -> None:
    apps = random_apps(seed, n=40, rate=6.0)
    macro = small_config(capacity=capacity, served_every=8, preempt_for_admission=True, admission_preempt_min_iters=8)
    sm, rm = _run(apps, name, macro)
    ss, rs = _run(apps, name, macro.replace(macro_steps=False))
    assert rm.iterations == rs.iterations and rm.preemptions == rs.preemptions
    assert sm.admission_preemptions == ss.admission_preemptions
    assert sm.max_blocks_in_use == ss.max_blocks_in_use
    for x, y in zip(rm.apps, rs.apps):
        assert x.app_id == y.app_id
        assert x.completion_s == pytest.approx(y.completion_s, rel=1e-9, abs=1e-9)


def test_bad_min_iterations_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="admission_preempt_min_iters"):
        small_config(admission_preempt_min_iters=-1)
