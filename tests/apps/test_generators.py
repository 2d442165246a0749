from __future__ import annotations

import math

import numpy as np
import pytest

from justitia.apps import generators as g
from justitia.apps.model import AppSpec, dump_jsonl, load_jsonl
from justitia.apps.traces import arxiv_lengths, azure_conv

TYPES = list(g.GENERATORS)


def _many(t: str, n: int, seed: int = 0, **kw) -> list[AppSpec]:
    rng = np.random.default_rng(seed)
    return [g.GENERATORS[t](rng, f"{t}-{i:05d}", float(i), **kw) for i in range(n)]


@pytest.mark.parametrize("t", TYPES)
def test_deterministic_and_seed_sensitive(t: str) -> None:
    a = _many(t, 30, seed=1)
    assert a == _many(t, 30, seed=1)
    assert a != _many(t, 30, seed=2)
    assert all(x.type == t for x in a)


@pytest.mark.parametrize("t", TYPES)
def test_jsonl_round_trip(t: str, tmp_path) -> None:
    apps = _many(t, 20, seed=3)
    f = tmp_path / "w.jsonl"
    dump_jsonl(apps, f)
    assert load_jsonl(f) == apps


@pytest.mark.parametrize("t", TYPES)
@pytest.mark.parametrize("max_len", [4096, 1024, 256])
def test_every_call_fits_the_context(t: str, max_len: int) -> None:
    for app in _many(t, 60, seed=4, max_model_len=max_len):
        for c in app.calls():
            assert c.prompt_tokens >= 1 and c.output_tokens >= 1
            assert c.prompt_tokens + c.output_tokens <= max_len


def test_fit_truncates_prompt_first_and_keeps_half_for_output() -> None:
    assert g.fit(100, 50, 4096) == g.Call(100, 50)
    assert g.fit(5000, 300, 4096) == g.Call(3796, 300)
    assert g.fit(100, 3000, 4096) == g.Call(100, 2048)
    assert g.fit(0, 0, 4096) == g.Call(1, 1)
    with pytest.raises(ValueError):
        g.fit(1, 1, 1)


def test_mapreduce_structure_matches_document_chunks() -> None:
    arx = arxiv_lengths()
    doc_set = set(arx.prompt_tokens.tolist())
    seen_collapse = False
    for app in _many("mapreduce", 300, seed=5):
        first, last = app.stages[0], app.stages[-1]
        assert len(last.calls) == 1
        # map prompts: chunks of <= 1000 tokens + the map instruction
        chunks = [c.prompt_tokens - g.MAP_INSTRUCTION_TOKENS for c in first.calls]
        assert all(1 <= c <= 1000 for c in chunks)
        # chunks come whole-paper by whole-paper: a run of full chunks closes with a partial one, and
        # each paper's length (the sum of its run) is a real arXiv paper length
        docs, cur = [], 0
        for c in chunks:
            cur += c
            if c < 1000:
                docs.append(cur)
                cur = 0
        if cur:
            docs.append(cur)
        # (a paper of exactly k·1000 tokens has no partial chunk and merges with the next run)
        assert all(any(d - k * 1000 in doc_set for k in range(d // 1000 + 1)) for d in docs)
        assert len(first.calls) == sum(math.ceil(d / 1000) for d in docs)
        assert all(32 <= c.output_tokens <= 512 for c in first.calls)
        # every later stage summarizes the previous stage's outputs: its prompts sum to them
        for prev, nxt in zip(app.stages, app.stages[1:]):
            produced = sum(c.output_tokens for c in prev.calls)
            consumed = sum(c.prompt_tokens - g.REDUCE_INSTRUCTION_TOKENS for c in nxt.calls)
            assert consumed == produced or (len(nxt.calls) == 1 and nxt.calls[0].prompt_tokens + nxt.calls[0].output_tokens == 4096)
        if len(app.stages) > 2:
            seen_collapse = True
            assert len(app.stages[1].calls) < len(first.calls)
        assert all(s.delay_s == 0 for s in app.stages)
    assert seen_collapse, "big files must need a collapse stage before the reduce"


def test_self_consistency_is_one_stage_of_k_samples_of_one_prompt() -> None:
    ks = []
    for app in _many("self-consistency", 300, seed=6):
        assert len(app.stages) == 1
        calls = app.stages[0].calls
        ks.append(len(calls))
        assert len({c.prompt_tokens for c in calls}) == 1
    assert min(ks) == 4 and max(ks) == 16


def test_tree_of_thought_rounds_expand_then_value_with_growing_prompts() -> None:
    for app in _many("tree-of-thought", 200, seed=7):
        *rounds, final = app.stages
        assert len(final.calls) == 1 and len(rounds) % 2 == 0
        depth = len(rounds) // 2
        assert 2 <= depth <= 4
        expand = rounds[0::2]
        value = rounds[1::2]
        assert len(expand[0].calls) in (2, 3)  # the root's branching
        for e, v in zip(expand, value):
            assert len(e.calls) == len(v.calls)
        lows = [min(c.prompt_tokens for c in e.calls) for e in expand]
        assert all(b >= a + 16 for a, b in zip(lows, lows[1:])), "every path grows by a thought a round"
        assert all(max(c.output_tokens for c in v.calls) <= 128 for v in value)


def test_debate_rounds_of_parallel_agents_see_previous_answers() -> None:
    for app in _many("debate", 200, seed=8):
        r = len(app.stages)
        a = len(app.stages[0].calls)
        assert 2 <= r <= 4 and 2 <= a <= 4
        assert all(len(s.calls) == a for s in app.stages)
        for prev, nxt in zip(app.stages, app.stages[1:]):
            answers = sum(c.output_tokens for c in prev.calls)
            for cp, cn in zip(prev.calls, nxt.calls):
                if cn.prompt_tokens + cn.output_tokens < 4096:  # not truncated
                    assert cn.prompt_tokens == cp.prompt_tokens + answers + g.DEBATE_INSTRUCTION_TOKENS


def test_react_is_a_sequential_chain_with_tool_delays() -> None:
    delays = []
    for app in _many("react", 200, seed=9):
        assert 3 <= len(app.stages) <= 10
        assert all(len(s.calls) == 1 for s in app.stages)
        assert app.stages[0].delay_s == 0
        delays += [s.delay_s for s in app.stages[1:]]
        calls = [s.calls[0] for s in app.stages]
        for c0, c1 in zip(calls, calls[1:]):
            truncated = c1.prompt_tokens + c1.output_tokens == 4096
            # the history grows by the previous output plus a tool observation (>= 10 tokens)
            assert truncated or c1.prompt_tokens >= c0.prompt_tokens + c0.output_tokens + 10
    assert 0.5 <= min(delays) and max(delays) <= 2.0
    assert max(delays) - min(delays) > 1.0


def test_chat_calls_are_trace_rows() -> None:
    tr = azure_conv()
    pairs = set(zip(tr.prompt_tokens.tolist(), tr.output_tokens.tolist()))
    apps = _many("chat", 300, seed=10)
    inside = [a for a in apps if a.stages[0].calls[0].prompt_tokens + a.stages[0].calls[0].output_tokens < 4096]
    assert len(inside) > 250
    for a in inside:
        c = a.stages[0].calls[0]
        assert (c.prompt_tokens, c.output_tokens) in pairs
