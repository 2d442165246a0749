"""The paper's agent classes (§5.1): one generator of stage structures per class, built on a real input.

Each generator takes a seeded :class:`numpy.random.Generator`, draws the agent's input (a real text,
:mod:`justitia.apps.paper_inputs`), derives the structure and prompt lengths from it, and returns an
:class:`AppSpec` whose ``app_id`` ends in ``@<ref>`` naming that input. Every call fits LLaMA-7B's
2,048-token context (the paper's A100 engine). Output lengths are log-normal draws (the usual shape
of LLM output lengths) around the figures each docstring names.

=======  =====================================================================  ======
class    method followed (stage structure)                                      size
=======  =====================================================================  ======
cc       FacTool code: claims → test/solution queries → execute → verify        small
kbqa-v   FacTool KB-QA: claims → search queries → retrieve → verify per claim   small
ev       FacTool math: equations → python snippets → execute → verify           small
fv       ReAct on FEVER: thought/action steps (360–380-token prompts) + search  small
alfwi    ReAct on ALFWorld: up to 50 act steps, growing history, env delays     small
cg       CodeT + Reflexion on HumanEval: samples+tests → execute → reflect      medium
pe       Plan-and-Execute: plan → per step (execute, tool, replan) → answer      medium
sc       Self-consistency: 40 CoT samples + vote, for each of 3–6 problems       medium
dm       Graph of Thoughts doc merge: per merge node generate 5 → score 3× →    large
         aggregate → score → refine, merged pairwise-by-4 up a tree
mrs      MapReduce summarization of a large corpus: map chunks → collapse →     large
         reduce (LangChain's map_reduce)
=======  =====================================================================  ======

Sizes are the paper's definition (alone on the A100-40GB / LLaMA-7B engine: small < 1 min, medium
1–10 min, large > 10 min); ``benchmarks/paper_suite_sizes.py`` measures them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from justitia.apps.generators import fit, lognormal_int, pack_greedy
from justitia.apps.model import AppSpec, Call, Stage
from justitia.apps import paper_inputs as inp

CONTEXT = 2048
"""LLaMA-7B's context window (the paper's A100 engine): prompt + output of every call."""

FACTOOL_CLAIM_PROMPT = 600
"""FacTool's claim-extraction prompt (instruction + few-shot examples), tokens."""
FACTOOL_QUERY_PROMPT = 400
"""FacTool's query-generation prompt, tokens."""
FACTOOL_VERIFY_PROMPT = 350
"""FacTool's agreement-verification prompt, tokens."""


def _c(p: int, o: int) -> Call:
    return fit(int(p), int(o), CONTEXT)


def _app(cls: str, app_id: str, ref: str, arrival_s: float, stages: Sequence[Stage]) -> AppSpec:
    return AppSpec(f"{app_id}@{ref}", float(arrival_s), cls, tuple(stages))


def _factool(rng: np.random.Generator, text_tokens: int, n_claims: int, claim_out: int, query_out: float,
             queries: int, tool_s: tuple[float, float], evidence: float, verify_out: float) -> list[Stage]:
    """FacTool's four steps (Chern et al. 2023): claim extraction (one call over the response) → query
    generation (one call per claim) → tool querying (a delay; the evidence enters the next prompts) →
    agreement verification (one call per claim)."""
    extract = Stage((_c(FACTOOL_CLAIM_PROMPT + text_tokens, claim_out * n_claims + 10),))
    claims = lognormal_int(rng, claim_out, 0.3, 8, 200, size=n_claims)
    q_out = lognormal_int(rng, query_out, 0.4, 8, 400, size=n_claims)
    query = Stage(tuple(_c(FACTOOL_QUERY_PROMPT + int(c), int(o) * queries) for c, o in zip(claims, q_out)))
    ev = lognormal_int(rng, evidence, 0.5, 10, 1200, size=n_claims)
    v_out = lognormal_int(rng, verify_out, 0.4, 8, 400, size=n_claims)
    verify = Stage(tuple(_c(FACTOOL_VERIFY_PROMPT + int(c) + int(e), int(o)) for c, e, o in zip(claims, ev, v_out)),
                   round(float(rng.uniform(*tool_s)), 3))
    return [extract, query, verify]


# ----------------------------------------------------------------------------------------- small


def code_checking(rng: np.random.Generator, app_id: str = "cc-00000", arrival_s: float = 0.0) -> AppSpec:
    """CC, FacTool on code: the claims are the function's specified behaviours (one per docstring
    example, at least 2); queries are test inputs plus 3 alternative solutions (FacTool generates
    both); the tool executes them (0.2–1 s); verification per claim. Input: a HumanEval problem."""
    from justitia.runner.texts import humaneval

    h = int(rng.integers(0, len(humaneval())))
    prompt = humaneval()[h].prompt
    tok = inp.est_tokens(prompt, inp.CODE_CHARS_PER_TOKEN)
    n = int(np.clip(prompt.count(">>>") + 2, 2, 8))
    stages = _factool(rng, tok, n, claim_out=30, query_out=90, queries=1, tool_s=(0.2, 1.0), evidence=120, verify_out=60)
    sols = lognormal_int(rng, tok * 0.8 + 40, 0.4, 32, 800, size=3)
    stages[1] = Stage(stages[1].calls + tuple(_c(FACTOOL_QUERY_PROMPT + tok, int(o)) for o in sols))
    return _app("cc", app_id, f"h{h}", arrival_s, stages)


def kbqa_verification(rng: np.random.Generator, app_id: str = "kbqa-v-00000", arrival_s: float = 0.0) -> AppSpec:
    """KBQA-V, FacTool on knowledge-based QA: one claim per two sentences of the answer (1–10), two
    search queries per claim, retrieval 0.5–2 s (a search API), evidence ~300 tokens per claim,
    a reasoned verdict per claim. Input: a ShareGPT question and its answer."""
    pairs = inp.qa_pairs()
    i = int(rng.integers(0, len(pairs)))
    _, q, a = pairs[i]
    n = int(np.clip(round(len(inp.sentences(a)) / 2), 1, 10))
    tok = inp.est_tokens(q) + inp.est_tokens(a)
    stages = _factool(rng, tok, n, claim_out=30, query_out=25, queries=2, tool_s=(0.5, 2.0), evidence=300, verify_out=90)
    return _app("kbqa-v", app_id, f"s{i}", arrival_s, stages)


def equation_verification(rng: np.random.Generator, app_id: str = "ev-00000", arrival_s: float = 0.0) -> AppSpec:
    """EV, FacTool on math: the claims are the calculations of a worked answer (one per sentence of
    problem + answer, 2–8); each becomes a python snippet, executed (0.1–0.5 s), and checked.
    Input: a CHAMP problem with its reference answer."""
    from justitia.runner.texts import champ

    c = int(rng.integers(0, len(champ())))
    text = f"{champ()[c].text}\nAnswer: {champ()[c].answer}"
    tok = inp.est_tokens(text, inp.CODE_CHARS_PER_TOKEN)
    n = int(np.clip(len(inp.sentences(text)) + 1, 2, 8))
    stages = _factool(rng, tok, n, claim_out=25, query_out=60, queries=1, tool_s=(0.1, 0.5), evidence=20, verify_out=40)
    return _app("ev", app_id, f"c{c}", arrival_s, stages)


def fact_verification(rng: np.random.Generator, app_id: str = "fv-00000", arrival_s: float = 0.0) -> AppSpec:
    """FV, ReAct on FEVER (Yao et al. 2023): 2–6 sequential thought/action steps, each a query
    generation whose prompt is 360–380 tokens (the paper's App. A), a Wikipedia search between steps
    (0.5–1.5 s), then a verdict over the observations. Longer claims take more steps.
    Input: one sentence of a ShareGPT answer (the claim)."""
    pairs = inp.qa_pairs()
    i = int(rng.integers(0, len(pairs)))
    sents = inp.sentences(pairs[i][2])
    j = int(rng.integers(0, len(sents)))
    tok = inp.est_tokens(sents[j])
    steps = int(np.clip(1 + tok // 12 + rng.integers(0, 2), 2, 6))
    outs = lognormal_int(rng, 50, 0.4, 12, 200, size=steps)
    stages = [Stage((_c(int(rng.integers(360, 381)), int(outs[k])),), 0.0 if k == 0 else round(float(rng.uniform(0.5, 1.5)), 3))
              for k in range(steps)]
    obs = int(lognormal_int(rng, 120, 0.5, 20, 600)) * steps
    stages.append(Stage((_c(380 + obs, int(lognormal_int(rng, 30, 0.4, 4, 100))),), round(float(rng.uniform(0.5, 1.5)), 3)))
    return _app("fv", app_id, f"s{i}.{j}", arrival_s, stages)


ALFWORLD_STEPS = ((8, 16), (14, 26), (14, 26), (14, 26), (8, 16), (18, 34))
"""Action steps of ReAct's successful ALFWorld trajectories per task type (pick, clean, heat, cool,
examine, pick two): 2-step tasks take ~10, the multi-step ones ~20, pick-two ~25 (ReAct caps at 50)."""
REACT_ALFWORLD_PROMPT = 1100
"""ReAct's ALFWorld prompt: two few-shot trajectories of the same task type, ~1,100 tokens."""


def alfworld_interaction(rng: np.random.Generator, app_id: str = "alfwi-00000", arrival_s: float = 0.0) -> AppSpec:
    """ALFWI, ReAct on ALFWorld: one call per action; the prompt is the few-shot prompt + the episode
    so far (each step adds its action and the observation), left-truncated at the context; an
    occasional "think:" step outputs more; the environment answers in 0.05–0.2 s.
    Input: an ALFWorld task (:func:`paper_inputs.alfworld_task`)."""
    t = int(rng.integers(0, len(inp.ALFWORLD_TASKS)))
    o = int(rng.integers(0, len(inp.ALFWORLD_OBJECTS)))
    r = int(rng.integers(0, len(inp.ALFWORLD_RECEPTACLES)))
    prompt = REACT_ALFWORLD_PROMPT + inp.est_tokens(inp.alfworld_task(t, o, r))
    steps = int(rng.integers(ALFWORLD_STEPS[t][0], ALFWORLD_STEPS[t][1] + 1))
    stages = []
    for k in range(steps):
        out = int(lognormal_int(rng, 45, 0.4, 10, 150)) if rng.random() < 0.3 else int(lognormal_int(rng, 12, 0.3, 4, 40))
        stages.append(Stage((_c(prompt, out),), 0.0 if k == 0 else round(float(rng.uniform(0.05, 0.2)), 3)))
        prompt += out + int(lognormal_int(rng, 30, 0.5, 5, 150))
    return _app("alfwi", app_id, f"a{t}.{o}.{r}", arrival_s, stages)


# ---------------------------------------------------------------------------------------- medium


def code_generation(rng: np.random.Generator, app_id: str = "cg-00000", arrival_s: float = 0.0) -> AppSpec:
    """CG, CodeT (Chen et al. 2022) with Reflexion-style repair (Shinn et al. 2023) on HumanEval:
    each round samples 20 solutions and one batch of tests in parallel, executes them in a sandbox
    (2–6 s), and writes a reflection on the failures that enters the next round's prompt; 3–6 rounds.
    Input: a HumanEval problem (more docstring examples → more rounds)."""
    from justitia.runner.texts import humaneval

    h = int(rng.integers(0, len(humaneval())))
    prompt = humaneval()[h].prompt
    tok = inp.est_tokens(prompt, inp.CODE_CHARS_PER_TOKEN)
    rounds = int(np.clip(3 + prompt.count(">>>") // 2 + rng.integers(0, 2), 3, 6))
    ctx = 250 + tok
    stages: list[Stage] = []
    for k in range(rounds):
        sols = lognormal_int(rng, 2.5 * tok + 120, 0.5, 32, 1500, size=20)
        tests = int(lognormal_int(rng, 300, 0.4, 50, 1000))
        stages.append(Stage(tuple(_c(ctx, int(s)) for s in sols) + (_c(ctx + 150, tests),),
                            0.0 if k == 0 else round(float(rng.uniform(2.0, 6.0)), 3)))
        refl = int(lognormal_int(rng, 250, 0.4, 40, 800))
        stages.append(Stage((_c(ctx + int(np.median(sols)) + 200, refl),), round(float(rng.uniform(2.0, 6.0)), 3)))
        ctx += refl
    return _app("cg", app_id, f"h{h}", arrival_s, stages)


def plan_and_execute(rng: np.random.Generator, app_id: str = "pe-00000", arrival_s: float = 0.0) -> AppSpec:
    """PE, plan-and-execute (Wang et al.'s Plan-and-Solve as LangChain's planner/executor/replanner):
    a plan of ``n`` steps (4 + one per ~80 tokens of the answer it got, 4–12); each step runs an executor
    call (prompt: executor instructions + request + results so far), a tool (1–5 s: search, python,
    APIs), and a replan
    call; a final answer. Input: a ShareGPT request and the answer it got (its scope)."""
    pairs = inp.qa_pairs()
    i = int(rng.integers(0, len(pairs)))
    _, q, a = pairs[i]
    task = inp.est_tokens(q)
    n = int(np.clip(4 + inp.est_tokens(a) // 80 + rng.integers(0, 2), 4, 12))
    stages = [Stage((_c(400 + task, 40 * n),))]
    done = 0
    for _ in range(n):
        out = int(lognormal_int(rng, 400, 0.4, 64, 1200))
        stages.append(Stage((_c(500 + task + done, out),)))
        done += min(out, 300)
        stages.append(Stage((_c(450 + task + 40 * n + done, int(lognormal_int(rng, 200, 0.4, 20, 600))),),
                            round(float(rng.uniform(1.0, 5.0)), 3)))
    stages.append(Stage((_c(300 + task + done, int(lognormal_int(rng, 500, 0.4, 64, 1500))),)))
    return _app("pe", app_id, f"s{i}", arrival_s, stages)


SC_SAMPLES = 40
"""Self-consistency's sampled reasoning paths (Wang et al., ICLR 2023 sample 40)."""
SC_FEW_SHOT = 750
"""The 8-shot chain-of-thought prompt of Wei et al. (2022) for math word problems, ~750 tokens."""


def self_consistency(rng: np.random.Generator, app_id: str = "sc-00000", arrival_s: float = 0.0) -> AppSpec:
    """SC, self-consistency over a problem set: an agent answers 3–6 consecutive CHAMP problems one
    after another, each by 40 chain-of-thought samples in parallel (8-shot CoT prompt + problem) and a
    majority vote on the client (Wang et al. evaluate one question at a time). Solutions: log-normal,
    median 450 tokens + 4 per problem token, σ 0.5 (CHAMP's measured CoT answers: median 386–584).
    One question alone takes ~20 s on the A100 engine (1k decode steps at most), so the paper's
    medium size (1–10 min) needs several. Input: the problems, concatenated."""
    from justitia.runner.texts import champ

    probs = champ()
    c = int(rng.integers(0, len(probs)))
    n = int(rng.integers(3, 7))
    stages = []
    for k in range(n):
        tok = inp.est_tokens(probs[(c + k) % len(probs)].text, inp.CODE_CHARS_PER_TOKEN)
        outs = lognormal_int(rng, 450 + 4 * tok, 0.5, 48, CONTEXT, size=SC_SAMPLES)
        stages.append(Stage(tuple(_c(SC_FEW_SHOT + tok, int(o)) for o in outs)))
    return _app("sc", app_id, f"c{c}+{n}", arrival_s, stages)


# ----------------------------------------------------------------------------------------- large


def document_merging(rng: np.random.Generator, app_id: str = "dm-00000", arrival_s: float = 0.0) -> AppSpec:
    """DM, Graph of Thoughts' document merging (Besta et al., AAAI 2024) over a corpus: documents are
    merged 4 at a time (GoT merges 4 NDAs) up a tree; every merge node runs GoT's graph — generate 5
    merges → score each 3× → aggregate the best (5 attempts) → score each 3× → refine the best.
    Nodes of one level run in parallel. Documents are ShareGPT conversations cut to 350 tokens
    (4 fit a prompt); 96–256 of them. Input: the corpus."""
    n_docs = int(rng.integers(96, 257))
    start = int(rng.integers(0, inp.sharegpt_doc_tokens().size))
    level = [int(min(t, 350)) for t in inp.corpus_tokens(start, n_docs).tolist()]
    stages: list[Stage] = []
    while len(level) > 1:
        groups = [level[k:k + 4] for k in range(0, len(level), 4)]
        nxt = []
        per_node = [_got_node(rng, sum(g)) for g in groups]
        for step in range(5):
            stages.append(Stage(tuple(c for node, _ in per_node for c in node[step])))
        nxt = [m for _, m in per_node]
        level = nxt
    return _app("dm", app_id, f"s{start}+{n_docs}", arrival_s, stages)


def _got_node(rng: np.random.Generator, docs: int) -> tuple[list[list[Call]], int]:
    """The five stages of one GoT merge of ``docs`` tokens of documents, and the merged length."""
    merged = lognormal_int(rng, min(0.5 * docs + 100, 700), 0.3, 64, 1000, size=5)
    gen = [_c(300 + docs, int(m)) for m in merged]
    score = [_c(250 + docs + int(m), int(lognormal_int(rng, 60, 0.4, 10, 200))) for m in merged for _ in range(3)]
    best = int(np.sort(merged)[-3:].sum())
    agg_out = lognormal_int(rng, int(np.median(merged)), 0.3, 64, 1000, size=5)
    agg = [_c(250 + best, int(m)) for m in agg_out]
    score2 = [_c(250 + docs + int(m), int(lognormal_int(rng, 60, 0.4, 10, 200))) for m in agg_out for _ in range(3)]
    final = int(lognormal_int(rng, int(np.median(agg_out)), 0.3, 64, 1000))
    refine = [_c(300 + docs + int(agg_out.max()), final)]
    return [gen, score, agg, score2, refine], min(final, 350)


MRS_CHUNK = 1000
"""Map chunk size in tokens (LangChain's summarization how-to; fits LLaMA-7B's 2,048 context)."""


def mapreduce_summarization(rng: np.random.Generator, app_id: str = "mrs-00000", arrival_s: float = 0.0) -> AppSpec:
    """MRS, LangChain's map_reduce summarization of a large corpus: ShareGPT conversations (1,000–2,200
    of them, 1,400–2,600: 2.5–4.5 M tokens) split into 1,000-token chunks → one summary per chunk (output = a real arXiv
    abstract length, ``arxiv_summarization_lengths.csv``, clipped to [32, 512]) → collapse groups of
    summaries that fit one prompt, level by level → one final summary. Input: the corpus."""
    from justitia.apps.traces import arxiv_lengths

    arx = arxiv_lengths()
    n_docs = int(rng.integers(1400, 2601))
    start = int(rng.integers(0, inp.sharegpt_doc_tokens().size))
    chunks: list[int] = []
    for d in inp.corpus_tokens(start, n_docs).tolist():
        full, rest = divmod(int(d), MRS_CHUNK)
        chunks.extend([MRS_CHUNK] * full + ([rest] if rest else []))
    stages: list[Stage] = []
    inputs = [c + 40 for c in chunks]
    while True:
        outs = np.clip(arx.output_tokens[rng.integers(0, len(arx), len(inputs))], 32, 512)
        stages.append(Stage(tuple(_c(p, int(o)) for p, o in zip(inputs, outs.tolist()))))
        summaries = [c.output_tokens for c in stages[-1].calls]
        if len(summaries) == 1:
            break
        inputs = [g + 60 for g in pack_greedy(summaries, CONTEXT - 512 - 60)]
    return _app("mrs", app_id, f"s{start}+{n_docs}", arrival_s, stages)


PAPER_CLASSES: dict[str, Callable[..., AppSpec]] = {
    "cc": code_checking, "kbqa-v": kbqa_verification, "ev": equation_verification, "fv": fact_verification,
    "alfwi": alfworld_interaction, "cg": code_generation, "pe": plan_and_execute, "sc": self_consistency,
    "dm": document_merging, "mrs": mapreduce_summarization,
}
"""Class name → generator ``(rng, app_id, arrival_s) -> AppSpec``."""

SIZE_OF = {"cc": "small", "kbqa-v": "small", "ev": "small", "fv": "small", "alfwi": "small",
           "cg": "medium", "pe": "medium", "sc": "medium", "dm": "large", "mrs": "large"}
"""The paper's size class of each agent class (§5.1)."""

SIZE_SHARES = {"small": 0.72, "medium": 0.26, "large": 0.02}
"""Share of agents per size class (§5.1); classes of one size share it equally."""


def class_counts(n_apps: int) -> dict[str, int]:
    """How many agents of each size class among ``n_apps``: 72 / 26 / 2 % (§5.1), largest remainder."""
    raw = {k: v * n_apps for k, v in SIZE_SHARES.items()}
    out = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - out[k], reverse=True)[: n_apps - sum(out.values())]:
        out[k] += 1
    return out


def make_paper_suite(n_apps: int, seed: int, arrivals: Sequence[float]) -> list[AppSpec]:
    """``n_apps`` agents of the paper's classes at the given (sorted) submission times.

    Exactly :func:`class_counts` agents per size class; within a size class each agent's class is
    drawn uniformly; the order of classes over the arrivals is a seeded shuffle. Ids:
    ``f"{class}-{i:05d}@{ref}"`` (``i`` the arrival index, ``ref`` the input, :mod:`paper_inputs`).
    """
    if len(arrivals) != n_apps:
        raise ValueError(f"need {n_apps} arrival times, got {len(arrivals)}")
    rng = np.random.default_rng([seed, 11])
    by_size: dict[str, list[str]] = {}
    for cls, size in SIZE_OF.items():
        by_size.setdefault(size, []).append(cls)
    classes = [str(rng.choice(by_size[size])) for size, k in class_counts(n_apps).items() for _ in range(k)]
    rng.shuffle(classes)
    return [PAPER_CLASSES[c](rng, f"{c}-{i:05d}", float(arrivals[i])) for i, c in enumerate(classes)]
