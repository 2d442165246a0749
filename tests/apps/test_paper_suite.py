"""The paper's agent classes: structure of each generator, the inputs behind them, the 72/26/2 mix
and the Mooncake window arrivals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from justitia.apps import paper_inputs as inp
from justitia.apps import paper_suite as ps
from justitia.apps.arrivals import density_rate, window_arrivals
from justitia.apps.workloads import make_workload


def _apps(cls: str, n: int = 12, seed: int = 3):
    rng = np.random.default_rng(seed)
    return [ps.PAPER_CLASSES[cls](rng, f"{cls}-{i:05d}") for i in range(n)]


@pytest.mark.parametrize("cls", [c for c in ps.PAPER_CLASSES if c != "mrs"])
def test_every_class_is_deterministic_fits_the_context_and_names_its_input(cls: str) -> None:
    a, b = _apps(cls, 4), _apps(cls, 4)
    assert a == b and a != _apps(cls, 4, seed=4)
    for app in a:
        assert app.type == cls and app.app_id.startswith(f"{cls}-") and "@" in app.app_id
        assert all(c.prompt_tokens + c.output_tokens <= ps.CONTEXT for c in app.calls())
        text = inp.paper_suite_input_text(app)
        assert text.strip() and text == inp.paper_suite_input_text(app)


@pytest.mark.parametrize("cls", ["cc", "kbqa-v", "ev"])
def test_factool_classes_extract_then_query_then_verify_per_claim(cls: str) -> None:
    for app in _apps(cls):
        extract, query, verify = app.stages
        assert len(extract.calls) == 1 and extract.delay_s == 0.0
        n_claims = len(verify.calls)
        extra = 3 if cls == "cc" else 0  # FacTool's code queries add 3 alternative solutions
        assert 1 <= n_claims <= 10 and len(query.calls) == n_claims + extra
        assert verify.delay_s > 0  # the tool (execution / search) runs before verification
        assert extract.calls[0].prompt_tokens > ps.FACTOOL_CLAIM_PROMPT


def test_fv_query_prompts_are_360_to_380_tokens_with_search_between() -> None:
    for app in _apps("fv", 20):
        *steps, verdict = app.stages
        assert 2 <= len(steps) <= 6
        assert all(len(s.calls) == 1 and 360 <= s.calls[0].prompt_tokens <= 380 for s in steps)
        assert all(0.5 <= s.delay_s <= 1.5 for s in app.stages[1:])
        assert verdict.calls[0].prompt_tokens > 380


def test_alfwi_is_a_sequential_episode_whose_history_grows() -> None:
    for app in _apps("alfwi", 20):
        t = int(inp.split_ref(app.app_id)[1:].split(".")[0])
        lo, hi = ps.ALFWORLD_STEPS[t]
        assert lo <= len(app.stages) <= hi
        prompts = [s.calls[0].prompt_tokens for s in app.stages]
        assert all(len(s.calls) == 1 for s in app.stages)
        # grows by each action + observation until left-truncated at the context (outputs <= 150)
        assert all(b >= min(a, ps.CONTEXT - 150) for a, b in zip(prompts, prompts[1:])) and prompts[-1] > prompts[0]
        assert all(0.05 <= s.delay_s <= 0.2 for s in app.stages[1:])


def test_sc_samples_40_paths_per_problem_sharing_the_prompt() -> None:
    for app in _apps("sc"):
        n = int(inp.split_ref(app.app_id).split("+")[1])
        assert 3 <= n <= 6 and len(app.stages) == n
        for s in app.stages:
            assert len(s.calls) == ps.SC_SAMPLES and len({c.prompt_tokens for c in s.calls}) == 1


def test_cg_rounds_sample_20_solutions_and_tests_then_reflect() -> None:
    for app in _apps("cg"):
        assert len(app.stages) % 2 == 0 and 3 <= len(app.stages) // 2 <= 6
        for k in range(0, len(app.stages), 2):
            assert len(app.stages[k].calls) == 21 and len(app.stages[k + 1].calls) == 1
            assert 2.0 <= app.stages[k + 1].delay_s <= 6.0


def test_pe_plans_then_executes_and_replans_each_step() -> None:
    for app in _apps("pe"):
        n = (len(app.stages) - 2) // 2
        assert 4 <= n <= 12 and len(app.stages) == 2 * n + 2
        assert all(len(s.calls) == 1 for s in app.stages)
        assert app.stages[0].calls[0].output_tokens == min(40 * n, ps.CONTEXT // 2)
        assert all(1.0 <= app.stages[2 + 2 * k].delay_s <= 5.0 for k in range(n))


def test_dm_runs_gots_five_steps_per_level_of_a_4_ary_merge_tree() -> None:
    for app in _apps("dm", 3):
        n_docs = int(inp.split_ref(app.app_id).split("+")[1])
        levels = math.ceil(math.log(n_docs, 4) - 1e-9)
        assert len(app.stages) == 5 * levels
        nodes = math.ceil(n_docs / 4)
        assert [len(app.stages[k].calls) for k in range(5)] == [5 * nodes, 15 * nodes, 5 * nodes, 15 * nodes, nodes]
        assert [len(s.calls) for s in app.stages[-5:]] == [5, 15, 5, 15, 1]


def test_mrs_maps_every_1000_token_chunk_then_collapses_to_one_summary() -> None:
    rng = np.random.default_rng(0)
    app = ps.mapreduce_summarization(rng, "mrs-00000")
    start, n = (int(x) for x in inp.split_ref(app.app_id)[1:].split("+"))
    chunks = sum(math.ceil(t / ps.MRS_CHUNK) for t in inp.corpus_tokens(start, n).tolist())
    assert len(app.stages[0].calls) == chunks and 1400 <= n <= 2600
    assert all(32 <= c.output_tokens <= 512 for c in app.stages[0].calls)
    fan = [len(s.calls) for s in app.stages]
    assert fan == sorted(fan, reverse=True) and fan[-1] == 1 and fan[-2] > 1


def test_class_counts_are_72_26_2_percent() -> None:
    assert ps.class_counts(300) == {"small": 216, "medium": 78, "large": 6}
    assert sum(ps.class_counts(7).values()) == 7


def test_paper_suite_workload_mix_ids_and_window() -> None:
    apps = make_workload("paper-suite", 300, seed=1)
    sizes = [ps.SIZE_OF[a.type] for a in apps]
    assert (sizes.count("small"), sizes.count("medium"), sizes.count("large")) == (216, 78, 6)
    assert set(a.type for a in apps) == set(ps.PAPER_CLASSES)
    assert sorted(int(a.app_id.split("@")[0].rsplit("-", 1)[1]) for a in apps) == list(range(300))
    assert apps[0].arrival_s == 0.0 and 0.9 * 1080 < apps[-1].arrival_s <= 1080.0
    fast = make_workload("paper-suite", 300, seed=1, rate=density_rate(3))
    assert fast[-1].arrival_s == pytest.approx(apps[-1].arrival_s / 3)


def test_window_arrivals_squeeze_the_trace_into_the_window() -> None:
    t = window_arrivals(300, 360.0, np.random.default_rng(0))
    assert t.size == 300 and t[0] == 0.0 and np.all(np.diff(t) >= 0) and t[-1] <= 360.0
    with pytest.raises(ValueError, match="window_s"):
        window_arrivals(3, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="input ref"):
        inp.split_ref("chat-00001")
