"""Incremental re-keying (Policy.changed_apps): the engine re-keys only the waiting requests of the
applications whose keys changed; the result must be identical to re-keying the whole queue."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sim_helpers import random_apps, small_config

from justitia.core.policy import Policy, policy_names
from justitia.core.safe import SafePolicy
from justitia.policies import make_policy
from justitia.sim.config import nominal_iteration_s, preset
from justitia.sim.engine import Simulator, make_simulation_policy

TRACKING = ["vtc", "sjf", "plas", "atlas", "justitia-lane"]


def _pair(apps, name, cfg, **kw):
    out = []
    for full in (False, True):
        pol = make_simulation_policy(name, cfg, **kw)
        if full:
            pol.changed_apps = lambda: None  # type: ignore[method-assign]  # "any key may have changed"
        sim = Simulator(apps, pol, cfg, trace=True)
        res = sim.run()
        res.wall_s = 0.0
        out.append((sim, res))
    return out


def test_tracking_policies_declare_that_they_report_changed_apps() -> None:
    reporting = {n for n in policy_names() if make_policy(n, 1.0, 1.0).reports_changed_apps}
    assert reporting == set(TRACKING)
    for name in TRACKING:
        assert type(make_policy(name, 1.0, 1.0)).changed_apps is not Policy.changed_apps


def _count_calls(policy: Policy, counts: Counter[str], *names: str) -> None:
    """Count calls of the policy's methods ``names`` (instance attributes shadow the methods)."""
    for n in names:
        def call(*args: Any, _f: Any = getattr(policy, n), _n: str = n) -> Any:
            counts[_n] += 1
            return _f(*args)
        setattr(policy, n, call)


@pytest.mark.parametrize("name", ["justitia", "vtc", "fcfs"])
def test_safe_policy_keeps_the_wrapped_policys_fast_paths(name: str) -> None:
    """A SafePolicy-wrapped policy gives the identical run, and the engine calls the wrapped policy
    exactly as often as the bare one: the wrapper declares its capabilities (cached order across app
    events, changed_apps reports, no served() calls for a policy that ignores them)."""
    apps = random_apps(61, n=40, rate=8.0, max_calls=6)
    cfg = small_config(capacity=1024, served_every=8)
    runs = []
    for wrap in (False, True):
        inner = make_simulation_policy(name, cfg)
        counts: Counter[str] = Counter()
        _count_calls(inner, counts, "key", "served", "changed_apps")
        pol = SafePolicy(inner) if wrap else inner
        res = Simulator(apps, pol, cfg).run()
        res.wall_s = 0.0
        runs.append((pol, res, counts))
    (bare, a, ca), (safe, b, cb) = runs
    assert a == b and a.preemptions > 0
    assert ca == cb  # same engine path: no extra re-keying, no extra service reports
    assert ca["key"] > 0 and safe.fallbacks == 0
    for cap in ("dynamic_keys", "app_events_keep_keys", "listens_to_service", "reports_changed_apps", "needs_cost"):
        assert getattr(safe, cap) == getattr(bare, cap), cap
    assert (ca["changed_apps"] > 0) == bare.reports_changed_apps
    assert (ca["served"] > 0) == bare.listens_to_service


@pytest.mark.parametrize("name", TRACKING)
@pytest.mark.parametrize("seed,capacity,exact,pfa", [(51, 1024, True, False), (52, 2048, True, True),
                                                     (53, 1024, False, False), (54, 4096, True, False)])
def test_incremental_rekey_gives_the_identical_run(name: str, seed: int, capacity: int, exact: bool, pfa: bool) -> None:
    apps = random_apps(seed, n=40, rate=8.0, max_calls=6)
    cfg = small_config(capacity=capacity, exact_dynamic_keys=exact, preempt_for_admission=pfa, served_every=8)
    (sa, a), (sb, b) = _pair(apps, name, cfg)
    assert a == b
    assert [r["req_id"] for r in sa.requests] == [r["req_id"] for r in sb.requests]
    assert a.preemptions > 0 or capacity > 2048  # memory pressure exercised the victim path


@pytest.mark.parametrize("name", ["plas", "atlas"])
def test_anti_starvation_promotions_are_seen_by_incremental_rekey(name: str) -> None:
    """A short starvation ratio makes many requests cross their deadline while waiting: the time rule of
    changed_apps() must re-key them exactly when the full re-key would."""
    apps = random_apps(57, n=50, rate=12.0, max_out=400)
    cfg = small_config(capacity=1024, served_every=4)
    (sa, a), (sb, b) = _pair(apps, name, cfg, base_tokens=16.0, starvation_ratio=0.5)
    assert sa.policy.promotions > 0  # type: ignore[attr-defined]
    assert a == b


def test_incremental_rekey_on_the_gpu_preset() -> None:
    from justitia.apps.arrivals import scale_to_load
    from justitia.apps.workloads import make_workload

    cfg = preset("h100-llama2-7b")
    apps = scale_to_load(make_workload("paper-mix", 80, 2), 1.5, cfg.kv_capacity / nominal_iteration_s(cfg))
    for name in TRACKING:
        (_, a), (_, b) = _pair(apps, name, cfg)
        assert a == b, name
