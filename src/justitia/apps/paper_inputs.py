"""The input texts of the ``paper-suite`` agents (the paper's §5.1: "300 agents, each with its own input").

Every ``paper-suite`` application is built from one real input — a document, a claim, a question, a
piece of code — drawn from the text wheels the bench already uses (:mod:`justitia.runner.texts`):
ShareGPT V3 conversations (prose: KBQA-V, FV, PE, DM, MRS), CHAMP competition math (EV, SC) and
HumanEval (CC, CG). ALFWorld has no wheel here: an ALFWI input is an ALFWorld task sentence built
from the benchmark's six task types (pick, clean, heat, cool, examine in light, pick two) and its
object / receptacle names. The generator derives the app's structure and prompt lengths from that
text, so the text predicts the cost, which is what the paper's TF-IDF predictor (§4.2) learns.

The input is recoverable from the application alone: its ``app_id`` ends in ``@<ref>``
(``kbqa-v-00012@s1834``) and :func:`paper_suite_input_text` turns the ref back into the text.
Refs: ``s<i>`` ShareGPT conversation ``i``; ``s<i>.<j>`` its ``j``-th assistant sentence (a claim);
``s<i>+<n>`` ``n`` consecutive conversations from ``i`` (a corpus, wrapping around);
``c<i>`` CHAMP problem ``i`` with its answer; ``c<i>+<n>`` ``n`` problems from ``i``; ``h<i>`` HumanEval problem ``i``; ``a<t>.<o>.<r>`` an ALFWorld task.

Token counts are estimated as characters / 4 for prose and / 3 for code and LaTeX (the usual
ratios of Llama's SentencePiece tokenizer); no tokenizer is loaded.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import numpy as np

from justitia.apps.model import AppSpec

PROSE_CHARS_PER_TOKEN = 4.0
CODE_CHARS_PER_TOKEN = 3.0

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


def est_tokens(text: str, chars_per_token: float = PROSE_CHARS_PER_TOKEN) -> int:
    """Estimated Llama tokens of ``text`` (at least 1)."""
    return max(1, math.ceil(len(text) / chars_per_token))


# ------------------------------------------------------------------------------------------ ShareGPT


@lru_cache(maxsize=1)
def sharegpt_docs() -> tuple[str, ...]:
    """Every recoverable ShareGPT conversation flattened to ``"user: ...\\nassistant: ..."`` text."""
    from justitia.runner.texts import sharegpt

    return tuple("\n".join(f"{t.role}: {t.text}" for t in c.turns) for c in sharegpt(None))


@lru_cache(maxsize=1)
def sharegpt_doc_tokens() -> np.ndarray:
    """Estimated tokens of each :func:`sharegpt_docs` conversation (read-only)."""
    out = np.array([est_tokens(d) for d in sharegpt_docs()], dtype=np.int64)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=1)
def qa_pairs() -> tuple[tuple[int, str, str], ...]:
    """``(conversation, question, answer)``: first user turn and the assistant's reply, for the
    conversations whose reply has 2–40 sentences (a checkable answer, not a wall of code)."""
    from justitia.runner.texts import sharegpt

    out = []
    for i, c in enumerate(sharegpt(None)):
        if len(c.turns) < 2 or c.turns[0].role != "user" or c.turns[1].role != "assistant":
            continue
        q, a = c.turns[0].text.strip(), c.turns[1].text.strip()
        if len(a) > 6000 or len(q) > 4000:
            continue
        n = len(sentences(a))
        if 2 <= n <= 40 and "```" not in a:
            out.append((i, q, a))
    return tuple(out)


def sentences(text: str) -> list[str]:
    """``text`` split into sentences (punctuation followed by a capital or digit)."""
    return [s.strip() for s in _SENTENCE.split(text.strip()) if len(s.strip()) > 1]


def corpus_text(start: int, n: int) -> str:
    """``n`` consecutive ShareGPT conversations from ``start`` (wrapping), as one document."""
    docs = sharegpt_docs()
    return "\n\n".join(docs[(start + k) % len(docs)] for k in range(n))


def corpus_tokens(start: int, n: int) -> np.ndarray:
    """Estimated tokens of the ``n`` conversations :func:`corpus_text` joins."""
    tok = sharegpt_doc_tokens()
    return tok[(start + np.arange(n)) % tok.size]


# -------------------------------------------------------------------------------------------- ALFWorld

ALFWORLD_TASKS = (
    "put a {o} in {r}",
    "put a clean {o} in {r}",
    "put a hot {o} in {r}",
    "put a cool {o} in {r}",
    "look at {o} under the desklamp",
    "put two {o} in {r}",
)
"""ALFWorld's six task types (Shridhar et al., ICLR 2021): pick & place, clean, heat, cool, examine in
light, pick two."""
ALFWORLD_OBJECTS = ("apple", "mug", "cup", "plate", "bowl", "knife", "spoon", "egg", "tomato", "potato",
                    "lettuce", "bread", "book", "cellphone", "keychain", "pen", "pencil", "creditcard",
                    "soapbar", "cloth", "candle", "vase", "watch", "alarmclock")
ALFWORLD_RECEPTACLES = ("countertop", "diningtable", "fridge", "microwave", "sinkbasin", "cabinet", "drawer",
                        "shelf", "desk", "sidetable", "coffeetable", "garbagecan", "dresser", "bed", "sofa",
                        "armchair", "toilet", "bathtubbasin", "coffeemachine", "stoveburner")


def alfworld_task(t: int, o: int, r: int) -> str:
    """The ALFWorld episode text: a room description and the task (ReAct's ALFWorld input format)."""
    rec = ", ".join(f"a {ALFWORLD_RECEPTACLES[(r + 3 * k) % len(ALFWORLD_RECEPTACLES)]} {1 + k % 3}" for k in range(8 + r % 9))
    task = ALFWORLD_TASKS[t].format(o=ALFWORLD_OBJECTS[o], r=ALFWORLD_RECEPTACLES[r])
    return f"You are in the middle of a room. Looking quickly around you, you see {rec}.\nYour task is to: {task}."


# ------------------------------------------------------------------------------------------ the refs


def split_ref(app_id: str) -> str:
    """The input ref of a ``paper-suite`` app id (the part after ``@``); an error if it has none."""
    if "@" not in app_id:
        raise ValueError(f"app id {app_id!r} carries no input ref ('@...'): not a paper-suite application")
    return app_id.rsplit("@", 1)[1]


def text_of_ref(ref: str) -> str:
    """The input text a ref names (module docstring)."""
    from justitia.runner.texts import champ, humaneval

    try:
        kind, body = ref[0], ref[1:]
        if kind == "s" and "+" in body:
            start, n = (int(x) for x in body.split("+"))
            return corpus_text(start, n)
        if kind == "s" and "." in body:
            i, j = (int(x) for x in body.split("."))
            return sentences(qa_pairs()[i][2])[j]
        if kind == "s":
            _, q, a = qa_pairs()[int(body)]
            return f"Question: {q}\nAnswer: {a}"
        if kind == "c" and "+" in body:
            start, n = (int(x) for x in body.split("+"))
            return "\n\n".join(champ()[(start + k) % len(champ())].text for k in range(n))
        if kind == "c":
            p = champ()[int(body)]
            return f"{p.text}\nAnswer: {p.answer}"
        if kind == "h":
            return humaneval()[int(body)].prompt
        if kind == "a":
            t, o, r = (int(x) for x in body.split("."))
            return alfworld_task(t, o, r)
    except (ValueError, IndexError):
        pass
    raise ValueError(f"malformed paper-suite input ref {ref!r}")


def paper_suite_input_text(spec: AppSpec) -> str:
    """The agent's input text (document, claim, question, code or task) of a ``paper-suite`` app.

    Deterministic: the same application always gives the same text; its structure was derived from it.
    """
    return text_of_ref(split_ref(spec.app_id))
