"""Answer extraction, voting, the code check and the seeded stream of real applications."""

from __future__ import annotations

import pytest

from justitia.core.cost import call_cost
from justitia.runner import realapps as r


@pytest.mark.parametrize("text, expected", [
    ("so we get \\boxed{239}. Done", "239"),
    ("first \\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("Step 1... The answer is 120.", "120"),
    ("Thus the final answer is: No.", "no"),
    ("The answer is x=2, y=1.", "x=2,y=1"),
    ("We find 3 cases, then 12 more, total 1,000", "1000"),
    ("Answer: $ 42 $", "42"),
    ("the value is 7.0", "7"),
    ("no numbers here", None),
    ("", None),
])
def test_extract_answer(text, expected) -> None:
    assert r.extract_answer(text) == expected


def test_majority_vote_counts_and_breaks_ties_by_first_seen() -> None:
    assert r.majority_vote(["3", "1", "3", None, "4"]) == ("3", 2)
    assert r.majority_vote(["2", "5", "5", "2"]) == ("2", 2)
    assert r.majority_vote([None, "7"]) == ("7", 1)
    assert r.majority_vote([None, None]) == (None, 0)
    assert r.majority_vote([]) == (None, 0)


def test_code_check() -> None:
    ok = "def f(x):\n    \"\"\"doc\"\"\"\n    return x + 1\n"
    assert r.code_check(ok, "f")
    assert not r.code_check(ok, "g")  # wrong function
    assert not r.code_check("def f(x):\n    \"\"\"doc\"\"\"\n    pass\n", "f")  # empty body
    assert not r.code_check("def f(x):\n    ...\n", "f")
    assert not r.code_check("def f(x)\n    return 1\n", "f")  # syntax error
    reply = "Here:\n```python\ndef f(x):\n    return 2\n```\nIt returns 2."
    assert r.extract_code(reply) == "def f(x):\n    return 2\n"
    assert r.code_check(r.extract_code(reply), "f")
    assert r.extract_code("```python\ndef f():\n    return 1") == "def f():\n    return 1"  # unclosed
    assert r.extract_code("plain") == "plain"


def test_stream_is_seeded_and_valid() -> None:
    a = r.make_stream(30, 0.5, seed=3)
    assert a == r.make_stream(30, 0.5, seed=3)
    assert a != r.make_stream(30, 0.5, seed=4)
    assert a[0].arrival_s == 0.0
    assert all(x.arrival_s <= y.arrival_s for x, y in zip(a, a[1:]))
    assert len({p.name for p in a}) == 30
    assert {p.app_type for p in a} <= set(r.APP_TYPES)
    assert len({p.app_type for p in a}) >= 4  # a mix, not one type
    # Poisson at 0.5/s: 29 gaps of mean 2 s
    assert 25 < a[-1].arrival_s < 120


@pytest.mark.parametrize("kwargs, match", [
    ({"n_apps": 0}, "n_apps"), ({"rate": 0.0}, "rate"), ({"sizes": "huge"}, "sizes"),
    ({"mix": {"nope": 1.0}}, "nope"), ({"mix": {"chat": 0.0}}, "mix"),
])
def test_stream_bad_arguments(kwargs, match) -> None:
    args = {"n_apps": 3, "rate": 1.0, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        r.make_stream(**args)


def test_planned_structure_matches_the_app_type() -> None:
    s = r.Sizes()
    for p in r.make_stream(40, 1.0, seed=1):
        stages = p.planned_calls()
        n = [len(st) for st in stages]
        if p.app_type == "chat":
            assert n == [1]
        elif p.app_type == "mapreduce":
            assert len(n) == 2 and 1 <= n[0] <= s.mapreduce_max_chunks and n[1] == 1
            # map prompts are long text chunks
            assert max(pt for pt, _ in stages[0]) > 200
        elif p.app_type == "self-consistency":
            assert n == [s.sc_samples]
        elif p.app_type == "debate":
            assert n == [s.debate_agents] * s.debate_rounds
            assert stages[1][0][0] > stages[0][0][0]  # later rounds read the others
        elif p.app_type == "best-of-n":
            assert n == [s.bon_samples]
        assert p.cost_hint() == sum(call_cost(a, b) for st in stages for a, b in st)
