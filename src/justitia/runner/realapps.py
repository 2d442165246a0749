"""Real LLM applications written with the SDK, on real text (issue 5 §2, DESIGN §4, §6).

Each application is a real async program over :class:`justitia.runner.sdk.App`; what it sends depends
on what the model answered before (the debate reads the other agents, the reduce reads the map
summaries, the vote counts real extracted answers):

==================  ==========================================================================
type                structure
==================  ==========================================================================
chat                one ShareGPT user turn → one chat call
mapreduce           a long ShareGPT conversation cut into chunks → one summary per chunk in
                    parallel → one combine call over the summaries (the paper's own example)
self-consistency    a CHAMP problem → ``k`` samples at temperature 0.8 in parallel → majority
                    vote on the extracted answers (the paper's "parallel search directions")
debate              a CHAMP problem → ``agents`` parallel answers per round, for ``rounds``
                    rounds, each agent reading the others' previous answers → majority vote
best-of-n           a HumanEval prompt → ``n`` chat samples in parallel → the first whose code
                    block parses and defines the function (a real check; no model code is run)
==================  ==========================================================================

The model is small and the CPU slow, so ``max_tokens`` is small, but the call structure (fan-out,
rounds, a reduce) and the relative lengths (long map prompts, short chat, many math samples) are real.
:func:`make_stream` draws a seeded stream of :class:`AppPlan` with Poisson arrivals.
"""

from __future__ import annotations

import ast
import asyncio
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from justitia.core.cost import call_cost
from justitia.runner import texts
from justitia.runner.sdk import App, text_of

# Fallback when the served model's tokenizer is not at hand: conservative (an upper bound for English
# and code with a Llama-style BPE), so cost hints do not under-estimate (Justitia refines an
# under-estimated app by doubling its estimate, which pushes it back in the queue).
CHARS_PER_TOKEN = 2.5
CHAT_OVERHEAD_TOKENS = 40  # chat template (incl. SmolLM2's default system prompt) around one message


@dataclass(frozen=True, slots=True)
class Sizes:
    """Length knobs of the real applications (tokens; characters for text cuts)."""

    chat_max_tokens: int = 64
    chat_prompt_chars: int = 1600
    mapreduce_chunk_chars: int = 1400
    mapreduce_max_chunks: int = 6
    mapreduce_map_tokens: int = 40
    mapreduce_reduce_tokens: int = 80
    sc_samples: int = 6
    sc_max_tokens: int = 96
    debate_agents: int = 3
    debate_rounds: int = 2
    debate_max_tokens: int = 64
    debate_quote_chars: int = 300
    bon_samples: int = 4
    bon_max_tokens: int = 96


SIZES = {"quick": Sizes(), "full": Sizes(mapreduce_max_chunks=8, sc_samples=8, sc_max_tokens=128,
                                         bon_samples=6, bon_max_tokens=128, debate_max_tokens=80)}


@dataclass(frozen=True, slots=True)
class AppPlan:
    """One application of a stream: its type, the text it works on, and when it arrives."""

    name: str  # stable id in reports, e.g. "debate-007"
    app_type: str
    item: int  # index into the text source of its type
    arrival_s: float
    sizes: Sizes = field(default_factory=Sizes)
    weight: float = 1.0

    def planned_calls(self) -> list[list[tuple[int, int]]]:
        """Stages of ``(prompt_tokens, max_tokens)`` as known at arrival: exact prompt tokens of the
        first stage (the served model's tokenizer), upper bounds for prompts that embed outputs."""
        return APP_TYPES[self.app_type].plan(self)

    def cost_hint(self) -> float:
        """Cost eq. 2 of the planned calls with every call decoding its full ``max_tokens``."""
        return float(sum(call_cost(p, o) for stage in self.planned_calls() for p, o in stage))


def _tok(chars: int) -> int:
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


_TOKENIZER: list[Any] = []


def _tokenizer() -> Any:
    """The bundled model's tokenizer (local files only), or ``None`` when it is not built/installed."""
    if not _TOKENIZER:
        tok = None
        try:
            from justitia.vllm.model import default_model_dir

            d = default_model_dir()
            if (d / "tokenizer.json").exists():
                import transformers

                tok = transformers.AutoTokenizer.from_pretrained(str(d), local_files_only=True)
        except Exception:  # noqa: BLE001 - any failure means: fall back to the character estimate
            tok = None
        _TOKENIZER.append(tok)
    return _TOKENIZER[0]


@lru_cache(maxsize=4096)
def chat_tokens(content: str) -> int:
    """Prompt tokens of one user message through the chat template (exact with the model's tokenizer)."""
    tok = _tokenizer()
    if tok is not None:
        text = tok.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False)
        return len(tok(text, add_special_tokens=False)["input_ids"])
    return _tok(len(content)) + CHAT_OVERHEAD_TOKENS


# ---------------------------------------------------------------------- answers
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_ANSWER_IS = re.compile(r"(?:final answer|the answer|answer)\s*(?:is\s*:?|:|=)\s*\$?\s*([^\n$]+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*(?:/\d+)?")


def normalize_answer(s: str) -> str:
    """Canonical form for voting: lower case, no spaces, ``$``, trailing punctuation or ``1,000`` commas."""
    s = s.strip().strip("$").strip()
    s = re.sub(r"\\(?:text|mathrm)\{([^{}]*)\}", r"\1", s)
    s = s.rstrip(".;:!").strip().lower()
    s = re.sub(r"\s+", "", s)
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d+\.0+", s):
        s = s.split(".")[0]
    return s


def extract_answer(text: str) -> str | None:
    """The final answer a solution states: the last ``\\boxed{}``, else the last "answer is X", else
    the last number; ``None`` when there is none. Normalised by :func:`normalize_answer`."""
    if not text:
        return None
    boxed = _BOXED.findall(text)
    if boxed:
        a = normalize_answer(boxed[-1])
        return a or None
    stated = _ANSWER_IS.findall(text)
    if stated:
        cand = stated[-1].strip()
        # keep a short answer: up to the first sentence end
        cand = re.split(r"(?<=[^\d])\.\s|\.$", cand)[0]
        a = normalize_answer(cand[:60])
        if a:
            return a
    nums = _NUMBER.findall(text)
    if nums:
        return normalize_answer(nums[-1])
    return None


def majority_vote(answers: Sequence[str | None]) -> tuple[str | None, int]:
    """The most frequent non-``None`` answer and its count; ties go to the answer seen first."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, 0
    best = max(counts.values())
    for a in answers:
        if a is not None and counts[a] == best:
            return a, best
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------- code
_CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def extract_code(reply: str) -> str:
    """The first fenced code block of a reply (an unclosed one runs to the end), else the reply."""
    m = _CODE_BLOCK.search(reply)
    return m.group(1) if m else reply


def code_check(code: str, entry_point: str) -> bool:
    """A real check without executing model code: ``code`` parses as Python and defines
    ``entry_point`` with a body that is more than a docstring / ``pass`` / ``...``."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            body = [b for b in node.body
                    if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)
                            and (isinstance(b.value.value, str) or b.value.value is Ellipsis))]
            return any(not isinstance(b, ast.Pass) for b in body)
    return False


# ---------------------------------------------------------------------- applications
Runner = Callable[[App, AppPlan], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class AppType:
    name: str
    source: str  # "sharegpt-short" | "sharegpt-long" | "champ" | "humaneval"
    plan: Callable[[AppPlan], list[list[tuple[int, int]]]]
    run: Runner


def _user_turn(conv: texts.Conversation) -> str:
    return next(t.text for t in conv.turns if t.role == "user")


def _transcript(conv: texts.Conversation) -> str:
    return "\n\n".join(f"{t.role.upper()}: {t.text}" for t in conv.turns)


def _chunks(text: str, size: int, limit: int) -> list[str]:
    """Cut ``text`` into up to ``limit`` chunks of about ``size`` characters at whitespace."""
    out: list[str] = []
    i = 0
    while i < len(text) and len(out) < limit:
        j = min(len(text), i + size)
        if j < len(text):
            k = text.rfind(" ", i + size // 2, j)
            j = k if k != -1 else j
        out.append(text[i:j].strip())
        i = j
    return [c for c in out if c]


# -- chat --------------------------------------------------------------------------------------
def _plan_chat(p: AppPlan) -> list[list[tuple[int, int]]]:
    conv = source_items("sharegpt-short")[p.item]
    return [[(chat_tokens(_user_turn(conv)[: p.sizes.chat_prompt_chars]), p.sizes.chat_max_tokens)]]


async def run_chat(app: App, p: AppPlan) -> dict[str, Any]:
    conv = source_items("sharegpt-short")[p.item]
    msg = _user_turn(conv)[: p.sizes.chat_prompt_chars]
    r = await app.chat([{"role": "user", "content": msg}], max_tokens=p.sizes.chat_max_tokens, last=True,
                       temperature=0.0)
    return {"reply": text_of(r)}


# -- mapreduce -----------------------------------------------------------------------------------
_MAP = "Summarize this part of a conversation in two sentences.\n\n{chunk}"
_REDUCE = "Combine these partial summaries of one conversation into one short summary.\n\n{parts}"


def _plan_mapreduce(p: AppPlan) -> list[list[tuple[int, int]]]:
    chunks = _chunks(_transcript(source_items("sharegpt-long")[p.item]), p.sizes.mapreduce_chunk_chars,
                     p.sizes.mapreduce_max_chunks)
    s = p.sizes
    maps = [(chat_tokens(_MAP.format(chunk=c)), s.mapreduce_map_tokens) for c in chunks]
    # the reduce reads the summaries: each at most map_tokens, plus its "i. " and a newline
    reduce_p = chat_tokens(_REDUCE.format(parts="")) + len(chunks) * (s.mapreduce_map_tokens + 6)
    return [maps, [(reduce_p, s.mapreduce_reduce_tokens)]]


async def run_mapreduce(app: App, p: AppPlan) -> dict[str, Any]:
    s = p.sizes
    chunks = _chunks(_transcript(source_items("sharegpt-long")[p.item]), s.mapreduce_chunk_chars, s.mapreduce_max_chunks)
    maps = await asyncio.gather(*(
        app.chat([{"role": "user", "content": _MAP.format(chunk=c)}], max_tokens=s.mapreduce_map_tokens, temperature=0.0)
        for c in chunks))
    parts = "\n".join(f"{i + 1}. {text_of(r).strip()}" for i, r in enumerate(maps))
    app.next_stage()
    final = await app.chat([{"role": "user", "content": _REDUCE.format(parts=parts)}],
                           max_tokens=s.mapreduce_reduce_tokens, last=True, temperature=0.0)
    return {"chunks": len(chunks), "summary": text_of(final)}


# -- self-consistency ------------------------------------------------------------------------------
_SOLVE = "Solve this math problem. Think step by step, then end with 'The answer is X'.\n\n{q}"


def _plan_sc(p: AppPlan) -> list[list[tuple[int, int]]]:
    q = source_items("champ")[p.item].text
    return [[(chat_tokens(_SOLVE.format(q=q)), p.sizes.sc_max_tokens)] * p.sizes.sc_samples]


async def run_self_consistency(app: App, p: AppPlan) -> dict[str, Any]:
    prob = source_items("champ")[p.item]
    s = p.sizes
    msgs = [{"role": "user", "content": _SOLVE.format(q=prob.text)}]
    k = s.sc_samples
    outs = await asyncio.gather(*(
        app.chat(msgs, max_tokens=s.sc_max_tokens, temperature=0.8, seed=i, last=(i == k - 1)) for i in range(k)))
    answers = [extract_answer(text_of(r)) for r in outs]
    vote, count = majority_vote(answers)
    return {"answers": answers, "vote": vote, "votes": count,
            "correct": vote is not None and vote == normalize_answer(prob.answer)}


# -- debate ----------------------------------------------------------------------------------------
_DEBATE = ("Solve this math problem.\n\n{q}\n\nOther agents answered:\n{others}\n\n"
           "Use their reasoning if it helps, then end with 'The answer is X'.")


def _plan_debate(p: AppPlan) -> list[list[tuple[int, int]]]:
    s = p.sizes
    q = source_items("champ")[p.item].text
    first = chat_tokens(_SOLVE.format(q=q))
    # later rounds quote the other agents: each a prefix of an answer of at most max_tokens tokens
    quote = min(s.debate_max_tokens, _tok(s.debate_quote_chars))
    later = chat_tokens(_DEBATE.format(q=q, others="")) + (s.debate_agents - 1) * (quote + 8)
    return [[(first, s.debate_max_tokens)] * s.debate_agents] + \
        [[(later, s.debate_max_tokens)] * s.debate_agents for _ in range(s.debate_rounds - 1)]


async def run_debate(app: App, p: AppPlan) -> dict[str, Any]:
    prob = source_items("champ")[p.item]
    s = p.sizes
    n = s.debate_agents
    prev: list[str] = []
    for rnd in range(s.debate_rounds):
        final_round = rnd == s.debate_rounds - 1
        if rnd:
            app.next_stage()
        prompts = []
        for a in range(n):
            if not prev:
                prompts.append(_SOLVE.format(q=prob.text))
            else:
                others = "\n".join(f"Agent {b + 1}: {prev[b][: s.debate_quote_chars].strip()}" for b in range(n) if b != a)
                prompts.append(_DEBATE.format(q=prob.text, others=others))
        outs = await asyncio.gather(*(
            app.chat([{"role": "user", "content": pr}], max_tokens=s.debate_max_tokens, temperature=0.7,
                     seed=rnd * n + a, last=final_round and a == n - 1)
            for a, pr in enumerate(prompts)))
        prev = [text_of(r) for r in outs]
    answers = [extract_answer(t) for t in prev]
    vote, count = majority_vote(answers)
    return {"answers": answers, "vote": vote, "votes": count,
            "correct": vote is not None and vote == normalize_answer(prob.answer)}


# -- best-of-n -------------------------------------------------------------------------------------
_CODE = "Complete this Python function. Reply with the whole function in one ```python code block.\n\n```python\n{prompt}```"


def _plan_bon(p: AppPlan) -> list[list[tuple[int, int]]]:
    prompt = source_items("humaneval")[p.item].prompt
    return [[(chat_tokens(_CODE.format(prompt=prompt)), p.sizes.bon_max_tokens)] * p.sizes.bon_samples]


async def run_best_of_n(app: App, p: AppPlan) -> dict[str, Any]:
    prob = source_items("humaneval")[p.item]
    s = p.sizes
    n = s.bon_samples
    msgs = [{"role": "user", "content": _CODE.format(prompt=prob.prompt)}]
    outs = await asyncio.gather(*(
        app.chat(msgs, max_tokens=s.bon_max_tokens, temperature=0.8, seed=i, last=(i == n - 1)) for i in range(n)))
    codes = [extract_code(text_of(r)) for r in outs]
    ok = [code_check(c, prob.entry_point) for c in codes]
    pick = ok.index(True) if any(ok) else None
    return {"passed": sum(ok), "pick": pick, "solution": None if pick is None else codes[pick]}


APP_TYPES: dict[str, AppType] = {
    "chat": AppType("chat", "sharegpt-short", _plan_chat, run_chat),
    "mapreduce": AppType("mapreduce", "sharegpt-long", _plan_mapreduce, run_mapreduce),
    "self-consistency": AppType("self-consistency", "champ", _plan_sc, run_self_consistency),
    "debate": AppType("debate", "champ", _plan_debate, run_debate),
    "best-of-n": AppType("best-of-n", "humaneval", _plan_bon, run_best_of_n),
}

# share of each type in a stream (by count): chat is the bulk of traffic, the rest are the
# task-parallel applications of the paper (mirrors justitia.apps.workloads.paper-mix)
DEFAULT_MIX: dict[str, float] = {"chat": 0.35, "mapreduce": 0.15, "self-consistency": 0.2, "debate": 0.15,
                                 "best-of-n": 0.15}

_SHAREGPT_LIMIT = 3000
_LONG_CHARS = 6000


def source_items(source: str) -> Sequence[Any]:
    """The items an application type draws from (cached loaders; ShareGPT split short / long)."""
    if source in ("sharegpt-short", "sharegpt-long"):
        convs = texts.sharegpt(_SHAREGPT_LIMIT)
        if source == "sharegpt-long":
            return _long(convs)
        return convs
    if source == "champ":
        return texts.champ()
    if source == "humaneval":
        return texts.humaneval()
    raise ValueError(f"unknown text source {source!r}")


_long_cache: dict[int, tuple[texts.Conversation, ...]] = {}


def _long(convs: tuple[texts.Conversation, ...]) -> tuple[texts.Conversation, ...]:
    key = id(convs)
    if key not in _long_cache:
        _long_cache[key] = tuple(c for c in convs if c.chars >= _LONG_CHARS)
    return _long_cache[key]


def make_stream(n_apps: int, rate: float, seed: int, sizes: Sizes | str = "quick",
                mix: dict[str, float] | None = None) -> list[AppPlan]:
    """A seeded stream of ``n_apps`` real applications, Poisson arrivals at ``rate`` apps/s.

    The first app arrives at 0. Types are drawn by ``mix`` shares; each app draws its text item
    uniformly from its source. The same arguments give the same stream.
    """
    if not isinstance(n_apps, int) or n_apps < 1:
        raise ValueError(f"n_apps must be a positive integer, got {n_apps!r}")
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number of applications per second, got {rate!r}")
    if isinstance(sizes, str):
        if sizes not in SIZES:
            raise ValueError(f"unknown sizes {sizes!r}; choose one of: {', '.join(SIZES)}")
        sizes = SIZES[sizes]
    mix = dict(mix or DEFAULT_MIX)
    unknown = sorted(set(mix) - set(APP_TYPES))
    if unknown:
        raise ValueError(f"unknown application type(s) {unknown}; choose from: {', '.join(APP_TYPES)}")
    if any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"mix shares must be >= 0 with a positive sum, got {mix}")
    rng = np.random.default_rng(seed)
    names = sorted(mix)
    probs = np.array([mix[n] for n in names], dtype=float)
    probs /= probs.sum()
    gaps = rng.exponential(1.0 / rate, size=n_apps)
    gaps[0] = 0.0
    arrivals = np.cumsum(gaps)
    plans = []
    for i in range(n_apps):
        t = names[int(rng.choice(len(names), p=probs))]
        items = source_items(APP_TYPES[t].source)
        if not items:
            raise ValueError(f"no text items for application type {t!r}")
        plans.append(AppPlan(f"{t}-{i:03d}", t, int(rng.integers(len(items))), float(arrivals[i]), sizes))
    return plans
