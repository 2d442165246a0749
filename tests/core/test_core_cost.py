"""Cost eqs. 1–2 (justitia.core.cost) against explicit sums on random cases."""

from __future__ import annotations

import random

import pytest

from justitia.core.cost import app_cost, call_cost, held_token_iters


def explicit_call_cost(p: int, o: int) -> int:
    return sum(p + t for t in range(1, o + 1))


@pytest.mark.parametrize("seed", range(5))
def test_call_cost_closed_form_matches_explicit_sum(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        p, o = rng.randint(0, 5000), rng.randint(0, 2000)
        assert call_cost(p, o) == explicit_call_cost(p, o)
    assert call_cost(0, 0) == 0 and call_cost(7, 0) == 0 and call_cost(0, 1) == 1


def test_app_cost_is_sum_of_calls() -> None:
    rng = random.Random(11)
    calls = [(rng.randint(1, 900), rng.randint(1, 300)) for _ in range(30)]
    assert app_cost(calls) == sum(explicit_call_cost(p, o) for p, o in calls)
    assert app_cost([]) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_held_token_iters_spans_sum_to_call_cost(seed: int) -> None:
    """A call decoded in any number of spans (preempted, resumed) is charged exactly c(p, o)."""
    rng = random.Random(100 + seed)
    for _ in range(100):
        p, o = rng.randint(0, 3000), rng.randint(0, 700)
        cuts = sorted(rng.sample(range(1, o), k=min(rng.randint(0, 6), max(o - 1, 0)))) if o > 1 else []
        bounds = [0, *cuts, o]
        total = sum(held_token_iters(p, a, b - a) for a, b in zip(bounds, bounds[1:]))
        assert total == call_cost(p, o)
        # one span of k iterations after d outputs is the explicit sum of held tokens
        d, k = rng.randint(0, 50), rng.randint(0, 50)
        assert held_token_iters(p, d, k) == sum(p + d + i for i in range(1, k + 1))


@pytest.mark.parametrize("args", [(-1, 5), (5, -1)])
def test_call_cost_rejects_negative_counts(args: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        call_cost(*args)


@pytest.mark.parametrize("args", [(-1, 0, 1), (1, -1, 1), (1, 0, -1)])
def test_held_token_iters_rejects_negative_counts(args: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        held_token_iters(*args)
