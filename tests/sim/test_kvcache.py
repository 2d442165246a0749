"""Closed-form block demand of the lock-step decode group vs iterating request by request."""

from __future__ import annotations

import random

import pytest

from justitia.sim.kvcache import allocs_over, blocks_for, steps_until_full


def _brute(contexts: list[int], bs: int, k: int) -> int:
    return sum(blocks_for(c + k, bs) - blocks_for(c, bs) for c in contexts)


@pytest.mark.parametrize("seed", range(20))
def test_allocs_and_steps_until_full_match_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    bs = rng.choice([1, 4, 16])
    g = rng.randint(0, 1000)
    contexts = [rng.randint(1, 300) for _ in range(rng.randint(1, 40))]
    cnt = [0] * bs
    for c in contexts:
        cnt[(c - g) % bs] += 1  # base = context - g
    n = len(contexts)
    for k in range(0, 3 * bs + 5):
        assert allocs_over(cnt, g, k, bs, n) == _brute(contexts, bs, k)
    free = rng.randint(0, 5 * n)
    k = steps_until_full(cnt, g, free, bs, n)
    assert _brute(contexts, bs, k) <= free < _brute(contexts, bs, k + 1)


def test_empty_group_never_fills() -> None:
    assert steps_until_full([0] * 16, 5, 0, 16, 0) > 10**12
