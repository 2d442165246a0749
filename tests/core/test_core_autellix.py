"""Autellix PLAS / ATLAS: levels, FCFS inside a level, critical path, anti-starvation."""

from __future__ import annotations

import math

import pytest
from core_policy_driver import Driver, assert_no_app_state

from justitia.core.policies.autellix import ATLAS, PLAS

IT = 0.02


def test_levels_grow_exponentially() -> None:
    p = PLAS(1000, IT)  # defaults: base 256 tokens, ratio 2, 8 levels
    assert p.thresholds == [256, 512, 1024, 2048, 4096, 8192, 16384]
    assert [p.level_of(s) for s in (0, 255, 256, 511, 512, 1023, 1024, 16383, 16384, 1e9)] == [0, 0, 1, 1, 2, 2, 3, 6, 7, 7]
    q = PLAS(1000, IT, base_tokens=10, ratio=3, num_levels=3)
    assert q.thresholds == [10, 30] and q.level_of(29.9) == 1 and q.level_of(10_000) == 2


def test_plas_demotes_a_program_after_it_passes_a_threshold() -> None:
    d = Driver(PLAS(1000, IT))
    d.app("A", 0.0)
    a = d.req("A", 0.0)
    d.app("B", 1.0)
    b = d.req("B", 1.0)
    d.serve(a, 1.5, decode=255)
    assert d.order() == [a.req_id, b.req_id]  # same level 0: FCFS by program arrival
    v0 = d.p.version
    d.serve(a, 1.52, decode=1)  # 256: crosses θ_0
    assert d.p.version > v0
    assert d.order() == [b.req_id, a.req_id]
    assert d.victim([a, b]) == a.req_id
    # B catches up to the same level: FCFS by program arrival again
    d.serve(b, 2.0, decode=300)
    assert d.order() == [a.req_id, b.req_id]


def test_plas_sums_service_over_calls_and_keeps_it_across_calls() -> None:
    d = Driver(PLAS(1000, IT))
    d.app("A", 0.0)
    calls = [d.req("A", 0.0, call=i) for i in range(3)]
    for r in calls:
        d.serve(r, 1.0, decode=100)
        d.finish(r, 1.0)
    assert d.p.attained("A") == 300
    nxt = d.req("A", 2.0, stage=1)  # a later call inherits the program's attained service
    d.app("B", 2.0)
    b = d.req("B", 2.0)
    assert d.order([nxt, b]) == [b.req_id, nxt.req_id]


def test_atlas_uses_critical_path_not_total() -> None:
    plas, atlas = Driver(PLAS(1000, IT)), Driver(ATLAS(1000, IT))
    for d in (plas, atlas):
        d.app("A", 0.0)
        s0 = [d.req("A", 0.0, stage=0, call=i) for i in range(3)]
        for r, n in zip(s0, (150, 100, 120)):
            d.serve(r, 1.0, decode=n)
        d.app("B", 1.0)
        d.req("B", 1.0)
    assert plas.p.attained("A") == 370 and atlas.p.attained("A") == 150  # Σ vs max of the stage
    assert plas.order()[0].startswith("B")  # A demoted to level 1 under PLAS
    assert atlas.order()[0].startswith("A")  # still level 0 under ATLAS: earlier program first
    # next stage: the critical path adds this stage's longest call
    for r in [r for r in atlas.reqs.values() if r.app_id == "A"]:
        atlas.finish(r, 2.0)
    s1 = [atlas.req("A", 2.0, stage=1, call=i) for i in range(2)]
    atlas.serve(s1[0], 3.0, decode=50)
    atlas.serve(s1[1], 3.0, decode=90)
    assert atlas.p.attained("A") == 150 + 90
    atlas.serve(s1[0], 3.1, decode=20)  # 70 < 90: the stage maximum does not move
    assert atlas.p.attained("A") == 240
    atlas.serve(s1[1], 3.2, decode=16)  # 106: past θ_0 = 256
    assert atlas.p.attained("A") == 256
    assert atlas.order()[0].startswith("B")


def test_anti_starvation_promotes_to_top_level_and_keeps_it_for_one_quantum() -> None:
    d = Driver(PLAS(1000, IT))  # β = 8
    d.app("A", 0.0)
    a1 = d.req("A", 0.0)
    d.serve(a1, 1.0, decode=1000)  # T_A = 1000 → level 2
    d.finish(a1, 1.0)
    a2 = d.req("A", 2.0)
    d.app("B", 2.0)
    b = d.req("B", 2.0)
    limit = 8 * 1000 * IT  # 160 s of waiting
    d.at(2.0 + limit - 1.0)
    assert not d.p.starving(a2)
    assert d.order() == [b.req_id, a2.req_id]
    v0 = d.p.version
    d.at(2.0 + limit)
    assert d.p.version > v0  # time alone can change keys
    assert d.p.starving(a2)
    assert d.p.key(a2)[0] == 0
    assert d.order() == [a2.req_id, b.req_id]  # top level, and A arrived first
    d.serve(a2, 2.0 + limit + 5 * IT, decode=5)  # admitted right then: no longer waiting, but promoted
    assert d.p.promotions == 1 and not d.p.starving(a2)
    assert d.order() == [a2.req_id, b.req_id]
    d.serve(a2, 2.0 + limit + 200 * IT, decode=195)
    assert d.order() == [a2.req_id, b.req_id]
    d.serve(a2, 2.0 + limit + 256 * IT, decode=56)  # used base = 256 tokens at the top
    assert d.order() == [b.req_id, a2.req_id]
    # a new program waits only β·max(T, 1) iterations before it counts as starving
    assert d.p.starving(b, now=2.0 + 8 * IT) and not d.p.starving(b, now=2.0 + 7 * IT)


def test_running_in_a_long_service_span_is_not_waiting() -> None:
    d = Driver(PLAS(1000, IT))
    d.app("A", 0.0)
    a = d.req("A", 0.0)
    d.serve(a, 0.3, decode=300)  # T_A = 300 → level 1; limit = 8·300·IT = 48 s
    d.serve(a, 0.3 + 3000 * IT, decode=3000)  # one 60 s report of continuous running
    assert d.p.promotions == 0 and d.p.key(a)[0] == d.p.level_of(3300) == 4


def test_time_changes_keys_only_below_the_top_level() -> None:
    d = Driver(PLAS(1000, IT))
    d.app("A", 0.0)
    a = d.req("A", 0.0)
    d.serve(a, 0.5, decode=100)
    v0 = d.p.version
    d.at(100.0)  # only Q0 requests: waiting cannot change a key
    assert d.p.version == v0 and d.p.key(a)[0] == 0
    d.serve(a, 100.0, decode=200)  # T = 300: Q1, where waiting long enough means starving
    v1 = d.p.version
    assert v1 > v0
    d.at(101.0)
    assert d.p.version > v1


def test_anti_starvation_can_be_disabled() -> None:
    d = Driver(PLAS(1000, IT, starvation_ratio=math.inf))
    d.app("A", 0.0)
    a = d.req("A", 0.0)
    d.serve(a, 1.0, decode=600)
    d.at(1e6)
    assert not d.p.starving(a) and d.p.key(a)[0] == 2


@pytest.mark.parametrize("cls", [PLAS, ATLAS])
def test_no_state_after_app_finished(cls: type) -> None:
    d = Driver(cls(1000, IT))
    for i in range(4):
        d.app(f"a{i}", float(i))
        for s in range(2):
            r = d.req(f"a{i}", i + 0.3 * s, stage=s)
            d.serve(r, i + 0.3 * s + 0.1, decode=30)
    d.finish_app("a0", 5.0)
    assert "a0" not in d.p.apps and d.p._deep_calls >= 0
    for i in range(1, 4):
        d.finish_app(f"a{i}", 10.0)
    assert_no_app_state(d.p, allow={"thresholds"})
    assert d.p._deep_calls == 0


@pytest.mark.parametrize("kwargs,match", [
    ({"base_tokens": 0}, "base_tokens"),
    ({"ratio": 1.0}, "ratio"),
    ({"num_levels": 0}, "num_levels"),
    ({"starvation_ratio": 0}, "starvation_ratio"),
])
def test_bad_parameters_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PLAS(1000, IT, **kwargs)
