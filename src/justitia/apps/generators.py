"""One generator per application type (paper §5.1's agent classes; DESIGN §6: "applications are sets of correlated,
often parallel inference calls").

Each generator takes a seeded :class:`numpy.random.Generator` and returns one :class:`AppSpec`
(stages of parallel calls; a stage starts when the previous one has finished plus its ``delay_s``).
The same generator state gives the same application. Every call is capped to ``max_model_len``
total tokens (prompt + output, default 4,096: Llama-2-7B's context) by :func:`fit`.

Where a length comes from a real trace it says so; where it is a parametric choice, the docstring
gives the published figure it follows. Parametric lengths are log-normal (``median``, ``sigma`` of
the log), the usual shape of LLM prompt/response lengths, clipped to a range.

Application types (``AppSpec.type``): ``mapreduce``, ``self-consistency``, ``tree-of-thought``,
``debate``, ``react``, ``chat``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from justitia.apps.model import AppSpec, Call, Stage
from justitia.apps.traces import arxiv_lengths, azure_conv

DEFAULT_MAX_MODEL_LEN = 4096
"""Llama-2-7B's context window: every generated call has prompt + output <= this."""

MIN_OUTPUT_CAP = 16
"""Smallest output a call keeps when a long prompt is truncated to fit the context."""


# --------------------------------------------------------------------------------------------- helpers


def fit(prompt: int, output: int, max_model_len: int = DEFAULT_MAX_MODEL_LEN) -> Call:
    """A call whose prompt + output fits ``max_model_len``.

    The output keeps at most half the context; the prompt is then truncated (left truncation, as chat
    clients and agent frameworks drop the oldest history) to what remains. Both stay >= 1.
    """
    if max_model_len < 2:
        raise ValueError(f"max_model_len must be >= 2, got {max_model_len}")
    o = int(output)
    half = max_model_len >> 1
    o = half if o > half else (1 if o < 1 else o)
    p = int(prompt)
    room = max_model_len - o
    p = room if p > room else (1 if p < 1 else p)
    return Call(p, o)


def lognormal_int(
    rng: np.random.Generator, median: float, sigma: float, lo: int, hi: int, size: int | None = None
) -> np.ndarray | int:
    """Integer log-normal draw(s) with the given median, clipped to ``[lo, hi]``."""
    if size is None:
        x = round(float(rng.lognormal(math.log(median), sigma)))
        return lo if x < lo else (hi if x > hi else x)
    x = rng.lognormal(math.log(median), sigma, size)
    return np.clip(np.rint(x), lo, hi).astype(np.int64)


def _uniform_int(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in ``[lo, hi]`` (both inclusive)."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    return int(rng.integers(lo, hi + 1))


# --------------------------------------------------------------------------------------- MapReduce

MAP_INSTRUCTION_TOKENS = 40
"""LangChain's map prompt "Write a concise summary of the following: ... CONCISE SUMMARY:" plus chat
template, ~40 Llama-2 tokens."""
REDUCE_INSTRUCTION_TOKENS = 60
"""LangChain's reduce prompt ("The following is a set of summaries: ... distill it into a final,
consolidated summary"), ~60 tokens."""


def pack_greedy(sizes: list[int], budget: int) -> list[int]:
    """Group ``sizes`` in order, greedily, into groups whose sum stays within ``budget`` (a size larger
    than the budget forms a group alone): LangChain's collapse step of map-reduce summarization."""
    groups: list[int] = []
    cur = 0
    for s in sizes:
        if cur and cur + s > budget:
            groups.append(cur)
            cur = 0
        cur += s
    groups.append(cur)
    return groups


def mapreduce(
    rng: np.random.Generator,
    app_id: str = "mapreduce-00000",
    arrival_s: float = 0.0,
    *,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    chunk_tokens: int = 1000,
    docs_median: float = 2.0,
    docs_sigma: float = 1.0,
    max_docs: int = 64,
    reduce_output_cap: int = 1024,
) -> AppSpec:
    """MapReduce summarization of a large file (DESIGN §6, the paper's first example).

    * The file is a bundle of ``n_docs`` arXiv papers, ``n_docs = ceil(LogNormal(median 2, σ 1))``
      capped at 64 (median 2, p90 ≈ 8, p99 ≈ 21 papers). The number of documents per job is our choice
      (no public trace of summarization job sizes); a log-normal gives the heavy tail of real file
      sizes. Each paper's length is a real row of ``arxiv_summarization_lengths.csv``.
    * Map: each paper is split into chunks of ``chunk_tokens`` (1,000: the chunk size of LangChain's
      summarization how-to, ``CharacterTextSplitter.from_tiktoken_encoder(chunk_size=1000)``), so
      ``N = Σ_doc ceil(len_doc / chunk)`` parallel calls; prompt = chunk + map instruction; output =
      a real arXiv abstract length (median 167 tokens) clipped to [32, 512].
    * Collapse (LangChain ``ReduceDocumentsChain`` with ``token_max``): while the concatenated
      summaries do not fit one prompt (``max_model_len - reduce_output_cap``), they are grouped
      greedily and each group is summarized by one call (an extra stage).
    * Reduce: one call whose prompt is the concatenated summaries + instruction and whose output is a
      real arXiv abstract length (capped at ``reduce_output_cap``).
    """
    arx = arxiv_lengths()
    n_docs = int(min(max_docs, max(1, math.ceil(rng.lognormal(math.log(docs_median), docs_sigma)))))
    docs = np.maximum(arx.prompt_tokens[rng.integers(0, len(arx), n_docs)], 1)
    chunks: list[int] = []
    for d in docs.tolist():
        full, rest = divmod(int(d), chunk_tokens)
        chunks.extend([chunk_tokens] * full)
        if rest:
            chunks.append(rest)
    outs = np.clip(arx.output_tokens[rng.integers(0, len(arx), len(chunks))], 32, 512)
    stages = [Stage(tuple(fit(c + MAP_INSTRUCTION_TOKENS, int(o), max_model_len) for c, o in zip(chunks, outs.tolist())))]
    summaries = [c.output_tokens for c in stages[0].calls]
    budget = max(max_model_len - min(reduce_output_cap, max_model_len // 2) - REDUCE_INSTRUCTION_TOKENS, 1)
    while sum(summaries) > budget and len(summaries) > 1:
        groups = pack_greedy(summaries, budget)
        if len(groups) == len(summaries):  # every summary alone fills a prompt: pair them up
            groups = [sum(summaries[i:i + 2]) for i in range(0, len(summaries), 2)]
        outs = np.clip(arx.output_tokens[rng.integers(0, len(arx), len(groups))], 32, 512)
        stage = Stage(tuple(fit(g + REDUCE_INSTRUCTION_TOKENS, int(o), max_model_len) for g, o in zip(groups, outs.tolist())))
        stages.append(stage)
        summaries = [c.output_tokens for c in stage.calls]
    final_out = int(np.clip(arx.output_tokens[rng.integers(0, len(arx))], 32, reduce_output_cap))
    stages.append(Stage((fit(sum(summaries) + REDUCE_INSTRUCTION_TOKENS, final_out, max_model_len),)))
    return AppSpec(app_id, float(arrival_s), "mapreduce", tuple(stages))


# -------------------------------------------------------------------------------- self-consistency


def self_consistency(
    rng: np.random.Generator,
    app_id: str = "self-consistency-00000",
    arrival_s: float = 0.0,
    *,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    k_min: int = 4,
    k_max: int = 16,
    output_median: float = 450.0,
) -> AppSpec:
    """Self-consistency (Wang et al., ICLR 2023): ``k`` parallel chain-of-thought samples of one math
    question, then a majority vote on the client (no call). One stage of ``k`` calls sharing a prompt.

    * ``k`` uniform in [4, 16]: Wang et al. sample up to 40 paths but most of the gain comes within
      the first 5–15, the range deployed systems use.
    * prompt: 0-shot or 5-shot (equal odds). Measured on the CHAMP competition-math dataset
      (``champ-dataset`` wheel, 270 problems, Mistral/Llama SentencePiece tokenizer): the 0-shot prompt
      is median 89 tokens (p90 125), the 5-shot prompt median 422 (p90 504); drawn log-normal with
      those medians (σ 0.3 and 0.13).
    * outputs: CoT solutions, log-normal median 450 tokens, σ 0.5, [32, 2048]. Measured on CHAMP's
      0-shot answers: median 386 (GPT-4), 425 (PaLM 2), 584 (GPT-3.5), log-σ 0.44–0.58; samples of
      one question vary in length independently.
    """
    k = _uniform_int(rng, k_min, k_max)
    if rng.random() < 0.5:
        p = lognormal_int(rng, 89, 0.3, 32, 512)
    else:
        p = lognormal_int(rng, 422, 0.13, 256, 1024)
    outs = lognormal_int(rng, output_median, 0.5, 32, 2048, size=k)
    calls = tuple(fit(p, o, max_model_len) for o in outs.tolist())
    return AppSpec(app_id, float(arrival_s), "self-consistency", (Stage(calls),))


# --------------------------------------------------------------------------------- tree of thought

TOT_PROPOSE_TOKENS = 300
"""ToT's propose prompt: instruction + few-shot examples (Yao et al. 2023, Game of 24 prompts ≈ 300 tokens)."""
TOT_VALUE_TOKENS = 250
"""ToT's value prompt: instruction + few-shot valuations (≈ 250 tokens)."""


def tree_of_thought(
    rng: np.random.Generator,
    app_id: str = "tree-of-thought-00000",
    arrival_s: float = 0.0,
    *,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    depth_range: tuple[int, int] = (2, 4),
    beam_range: tuple[int, int] = (2, 5),
    branch_range: tuple[int, int] = (2, 3),
) -> AppSpec:
    """Tree-of-thought BFS / beam search (Yao et al., NeurIPS 2023): rounds of parallel expansions.

    Depth ``d`` in [2, 4] (ToT: 3 steps for Game of 24, 2 for creative writing), beam ``b`` in [2, 5]
    (ToT keeps b = 5), branching ``f`` in [2, 3] thoughts per state. Round ``r`` has two stages:
    *expand* (each kept state proposes ``f`` next thoughts: prompt = question + propose prompt + the
    state's path so far, so prompts grow with depth; thought log-normal median 96 tokens) and *value*
    (one call per candidate: value prompt + path, a short verdict, median 24 tokens). The ``b`` best
    candidates (here: chosen at random — the lengths do not depend on which) are kept. A final stage of
    one call writes the answer from the best path (median 160 tokens).
    """
    d = _uniform_int(rng, *depth_range)
    b = _uniform_int(rng, *beam_range)
    f = _uniform_int(rng, *branch_range)
    q = lognormal_int(rng, 150, 0.4, 32, 1024)
    paths = np.zeros(1, dtype=np.int64)  # path length (tokens) of each kept state; the root has none
    stages: list[Stage] = []
    for _ in range(d):
        parents = np.repeat(paths, f)
        thoughts = lognormal_int(rng, 96, 0.5, 16, 512, size=parents.size)
        stages.append(Stage(tuple(
            fit(q + TOT_PROPOSE_TOKENS + int(pp), int(t), max_model_len)
            for pp, t in zip(parents.tolist(), thoughts.tolist())
        )))
        cand = parents + thoughts
        verdicts = lognormal_int(rng, 24, 0.5, 4, 128, size=cand.size)
        stages.append(Stage(tuple(
            fit(q + TOT_VALUE_TOKENS + int(c), int(v), max_model_len) for c, v in zip(cand.tolist(), verdicts.tolist())
        )))
        keep = rng.permutation(cand.size)[: min(b, cand.size)]
        paths = cand[np.sort(keep)]
    best = int(paths[0])
    stages.append(Stage((fit(q + TOT_PROPOSE_TOKENS + best, lognormal_int(rng, 160, 0.5, 16, 1024), max_model_len),)))
    return AppSpec(app_id, float(arrival_s), "tree-of-thought", tuple(stages))


# ---------------------------------------------------------------------------- multi-agent debate

DEBATE_INSTRUCTION_TOKENS = 60
"""Du et al.'s round prompt ("These are the solutions to the problem from other agents: ... Using the
reasoning from other agents as additional advice, can you give an updated answer?"), ~60 tokens."""


def debate(
    rng: np.random.Generator,
    app_id: str = "debate-00000",
    arrival_s: float = 0.0,
    *,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    agents_range: tuple[int, int] = (2, 4),
    rounds_range: tuple[int, int] = (2, 4),
    answer_median: float = 256.0,
) -> AppSpec:
    """Multi-agent debate (Du et al., ICML 2024): ``R`` rounds of ``A`` parallel agents.

    ``A`` in [2, 4] and ``R`` in [2, 4] (Du et al. use 3 agents and 2 rounds, and study up to 4 of
    each). Round 1: each agent answers the question (log-normal median 150 tokens + 30 instruction
    tokens). Round ``r > 1``: each agent's prompt is its conversation so far — the question, and for
    every earlier round its own answer, the other agents' answers and the debate instruction — so
    prompts grow round by round (truncated at the context). Answers are CoT, log-normal median 256
    tokens (σ 0.5, [32, 1024]).
    """
    a = _uniform_int(rng, *agents_range)
    r = _uniform_int(rng, *rounds_range)
    q = lognormal_int(rng, 150, 0.4, 32, 1024) + 30
    history = np.full(a, q, dtype=np.int64)
    stages: list[Stage] = []
    for rnd in range(r):
        answers = lognormal_int(rng, answer_median, 0.5, 32, 1024, size=a)
        stages.append(Stage(tuple(fit(int(h), int(o), max_model_len) for h, o in zip(history.tolist(), answers.tolist()))))
        # next prompt: own history + every agent's answer this round + the debate instruction
        history = history + int(answers.sum()) + DEBATE_INSTRUCTION_TOKENS
    return AppSpec(app_id, float(arrival_s), "debate", tuple(stages))


# ------------------------------------------------------------------------------------------ ReAct


def react(
    rng: np.random.Generator,
    app_id: str = "react-00000",
    arrival_s: float = 0.0,
    *,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    steps_range: tuple[int, int] = (3, 10),
    tool_delay_s: tuple[float, float] = (0.5, 2.0),
) -> AppSpec:
    """A sequential ReAct chain (Yao et al., ICLR 2023): ``S`` stages of one call each.

    ``S`` in [3, 10] (ReAct's HotpotQA / FEVER trajectories take up to 7 and 5 steps; tool-using
    agents often more). The first prompt is a system prompt with tool descriptions and examples plus the
    task, log-normal median 700 tokens (σ 0.3). Each step outputs a thought + action (median 80 tokens)
    and the tool returns an observation (median 150 tokens, σ 0.8: search results vary widely); the next
    prompt is the previous one + output + observation (history grows; truncated at the context). The
    tool runs between stages: ``delay_s`` uniform in [0.5, 2.0] s (a web search / API call).
    """
    s = _uniform_int(rng, *steps_range)
    prompt = lognormal_int(rng, 700, 0.3, 128, 2048)
    outs = lognormal_int(rng, 80, 0.5, 16, 400, size=s)
    obs = lognormal_int(rng, 150, 0.8, 10, 1000, size=s)
    delays = rng.uniform(*tool_delay_s, size=s)
    stages: list[Stage] = []
    for i in range(s):
        stages.append(Stage((fit(prompt, int(outs[i]), max_model_len),), 0.0 if i == 0 else round(float(delays[i]), 3)))
        prompt += int(outs[i]) + int(obs[i])
    return AppSpec(app_id, float(arrival_s), "react", tuple(stages))


# ------------------------------------------------------------------------------------------- chat


def chat(
    rng: np.random.Generator,
    app_id: str = "chat-00000",
    arrival_s: float = 0.0,
    *,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
) -> AppSpec:
    """A single chat request: one (prompt, output) pair drawn from the Azure 2023 conversation trace
    (``azure_conv_2023.csv``: median prompt 1,020 / output 129 tokens; prompts above the context are
    left-truncated by :func:`fit`)."""
    tr = azure_conv()
    i = int(rng.integers(0, len(tr)))
    call = fit(int(tr.prompt_tokens[i]), int(tr.output_tokens[i]), max_model_len)
    return AppSpec(app_id, float(arrival_s), "chat", (Stage((call,)),))


GENERATORS: dict[str, Callable[..., AppSpec]] = {
    "mapreduce": mapreduce,
    "self-consistency": self_consistency,
    "tree-of-thought": tree_of_thought,
    "debate": debate,
    "react": react,
    "chat": chat,
}
"""Application type → generator ``(rng, app_id, arrival_s, *, max_model_len, ...) -> AppSpec``."""
