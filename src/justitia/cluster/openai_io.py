"""Small pure helpers of the cluster ingress: what it reads from OpenAI bodies and replica metrics pages."""

from __future__ import annotations

import json
from typing import Any


def prompt_tokens_guess(body: dict[str, Any]) -> int:
    """Prompt tokens before tokenisation (only spill needs it): ~4 characters per token."""
    if "prompt" in body:
        p = body["prompt"]
        return len(p) // 4 if isinstance(p, str) else (len(p) if isinstance(p, list) else 0)
    msgs = body.get("messages") or []
    return sum(len(str(m.get("content", ""))) for m in msgs if isinstance(m, dict)) // 4


def usage(out: bytes) -> tuple[int, int] | None:
    try:
        u = json.loads(out).get("usage") or {}
        return int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0))
    except (ValueError, AttributeError, TypeError):
        return None


def label_replica(text: str, index: int) -> str:
    """A replica's Prometheus page with ``replica="i"`` added to every sample, so the pages of all replicas
    concatenate into one (``HELP``/``TYPE`` lines are kept for replica 0 only). Counters summed over the
    label sets are then cluster totals."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            if index == 0:
                out.append(line)
            continue
        brace, space = line.find("{"), line.find(" ")
        if 0 <= brace < space or (brace >= 0 and space < 0):
            out.append(f'{line[:brace + 1]}replica="{index}",{line[brace + 1:]}'.replace(",}", "}", 1))
        else:
            cut = space if space >= 0 else len(line)
            out.append(f'{line[:cut]}{{replica="{index}"}}{line[cut:]}')
    return "\n".join(out) + "\n"
