"""Loaders of the real text shipped in PyPI wheels (DESIGN §4)."""

from __future__ import annotations

import json

import pytest

from justitia.runner import texts


def test_truncated_array_decoder_recovers_complete_elements() -> None:
    full = json.dumps([{"a": i, "s": "x,]" * i} for i in range(5)])
    objs, complete = texts.decode_truncated_array(full)
    assert complete and [o["a"] for o in objs] == list(range(5))
    for cut in range(1, len(full)):
        objs, complete = texts.decode_truncated_array(full[:cut])
        # never a partial element, never a wrong one, and it only grows with the cut
        assert [o["a"] for o in objs] == list(range(len(objs)))
        assert not complete or cut == len(full)
    assert texts.decode_truncated_array(full, limit=2)[0] == json.loads(full)[:2]


def test_truncated_array_decoder_rejects_non_array() -> None:
    with pytest.raises(ValueError, match="not a JSON array"):
        texts.decode_truncated_array('{"a": 1}')


def test_sharegpt_truncated_file_yields_many_conversations() -> None:
    convs = texts.sharegpt(None)
    assert len(convs) > 1000
    assert all(any(t.role == "user" for t in c.turns) for c in convs)
    assert {t.role for c in convs[:200] for t in c.turns} == {"user", "assistant"}
    assert len({c.id for c in convs}) > 0.9 * len(convs)
    assert texts.sharegpt(50) == convs[:50]  # a limit is a prefix
    with pytest.raises(ValueError, match="limit"):
        texts.sharegpt(0)


def test_champ_has_270_problems_with_answers() -> None:
    probs = texts.champ()
    assert len(probs) == 270
    assert len({p.id for p in probs}) == 270
    assert sum(1 for p in probs if p.answer) > 250
    assert {p.category for p in probs} >= {"Combinatorics", "Number-Theory", "Polynomial"}


def test_humaneval_has_164_problems() -> None:
    probs = texts.humaneval()
    assert len(probs) == 164
    assert probs[0].task_id == "HumanEval/0"
    assert all(f"def {p.entry_point}" in p.prompt for p in probs)


def test_missing_package_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="pip install no-such-pkg"):
        texts._package_file("no_such_pkg", "x")
