"""make_policy registry errors, and properties every policy must have: deterministic keys that
totally order the requests, and no per-application state left after app_finished."""

from __future__ import annotations

import random

import pytest
from core_policy_driver import Driver, assert_no_app_state

from justitia.core.policy import Policy, policy_names
from justitia.policies import make_policy

ALL = ["fcfs", "app_fcfs", "vtc", "sjf", "plas", "atlas", "justitia", "req-sjf", "justitia-c", "justitia-plus", "justitia-lane"]


def test_registry_lists_every_policy() -> None:
    assert sorted(ALL) == policy_names()
    for name in ALL:
        p = make_policy(name, 4096, 0.02)
        assert isinstance(p, Policy) and p.name == name


def test_unknown_policy_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"unknown policy 'lottery'; choose one of: .*justitia"):
        make_policy("lottery", 4096, 0.02)


def test_unknown_estimator_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"unknown estimator 'crystalball'; choose one of: .*oracle"):
        make_policy("justitia-crystalball", 4096, 0.02)
    with pytest.raises(ValueError, match="unknown estimator 'crystalball'"):
        make_policy("sjf", 4096, 0.02, estimator="crystalball")


def test_conflicting_estimators_are_rejected() -> None:
    with pytest.raises(ValueError, match="names estimator 'oracle' but estimator='mlp'"):
        make_policy("justitia-oracle", 4096, 0.02, estimator="mlp")


def test_suffix_names_the_estimator_and_the_policy() -> None:
    p = make_policy("justitia-oracle", 4096, 0.02)
    assert p.name == "justitia-oracle" and p.estimator is not None and p.estimator.name == "oracle"
    assert make_policy("justitia", 4096, 0.02).estimator.name == "oracle"  # type: ignore[union-attr]
    assert make_policy("fcfs", 4096, 0.02).estimator is None


@pytest.mark.parametrize("cap,it,match", [(0, 0.02, "capacity_tokens"), (4096, -1.0, "iteration_s"),
                                          (float("inf"), 0.02, "capacity_tokens")])
def test_bad_capacity_is_rejected(cap: float, it: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_policy("justitia", cap, it)


def play(policy: Policy, seed: int, checkpoints: list[list[tuple]] | None = None) -> Driver:
    """A random but reproducible history of 12 multi-stage applications; records the live keys."""
    rng = random.Random(seed)
    d = Driver(policy)
    t = 0.0
    apps: dict[str, int] = {}  # app -> stages left
    live: list = []
    for step in range(200):
        t += rng.choice([0.0, 0.0, 0.01, 0.3])
        roll = rng.random()
        if roll < 0.1 and len(apps) + len(d.p.apps) < 24 and step < 120:
            aid = f"app{step}"
            d.app(aid, t, cost=float(rng.randint(1_000, 2_000_000)), weight=rng.choice([1.0, 1.0, 2.0]))
            apps[aid] = rng.randint(1, 3)
            for c in range(rng.randint(1, 3)):
                live.append(d.req(aid, t, prompt=rng.randint(10, 500), stage=0, call=c))
        elif roll < 0.7 and live:
            r = rng.choice(live)
            d.serve(r, t, decode=rng.randint(1, 40), prefill=rng.choice([0, r.prompt_tokens]))
        elif live:
            r = live.pop(rng.randrange(len(live)))
            d.finish(r, t)
            if not any(x.app_id == r.app_id for x in live):
                apps[r.app_id] -= 1
                if apps[r.app_id] == 0:
                    del apps[r.app_id]
                    d.finish_app(r.app_id, t)
                else:
                    stage = r.stage + 1
                    for c in range(rng.randint(1, 3)):
                        live.append(d.req(r.app_id, t, prompt=rng.randint(10, 500), stage=stage, call=c))
        if checkpoints is not None and step % 10 == 0:
            checkpoints.append([d.p.key(r) for r in live])
    for r in live:
        d.finish(r, t)
    for aid in list(apps):
        d.finish_app(aid, t)
    return d


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("seed", range(3))
def test_keys_are_deterministic_and_totally_ordered(name: str, seed: int) -> None:
    first: list[list[tuple]] = []
    second: list[list[tuple]] = []
    play(make_policy(name, 4096, 0.02), seed, first)
    play(make_policy(name, 4096, 0.02), seed, second)
    assert first == second  # same events, same keys
    assert sum(len(c) for c in first) > 20
    for keys in first:
        assert len(set(keys)) == len(keys)  # no two requests tie: a total order
        sorted(keys)  # and all keys compare with each other


@pytest.mark.parametrize("name", ALL)
def test_no_state_leaks_after_a_whole_history(name: str) -> None:
    d = play(make_policy(name, 4096, 0.02), seed=7)
    assert not d.reqs
    assert_no_app_state(d.p, allow={"thresholds"})
    assert getattr(d.p, "_deep_calls", 0) == 0
    clock = getattr(d.p, "clock", None)
    if clock is not None:
        d.at(1e9)
        assert len(clock) == 0
