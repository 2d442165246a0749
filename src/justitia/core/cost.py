"""Memory-centric cost: the KV token-time a call holds (paper §4.1, eq. 1; DESIGN §2, §6).

A call with prompt ``p`` tokens that decodes ``o`` tokens holds ``p + t`` tokens of KV cache during its
``t``-th decode iteration, so its cost in token·iterations is

    c(p, o) = Σ_{t=1..o} (p + t) = o·p + o(o+1)/2                                   (cost eq. 1)

and an application's cost is the sum over all its calls (cost eq. 2). Prefill iterations are not
counted: with chunked prefill they are few and short next to decoding, and leaving them out keeps the
cost a pure function of the lengths, which is what a predictor can learn.
"""

from __future__ import annotations

from collections.abc import Iterable


def call_cost(prompt_tokens: int, output_tokens: int) -> float:
    """Cost eq. 1: token·iterations of KV held by one call while it decodes."""
    if prompt_tokens < 0 or output_tokens < 0:
        raise ValueError(
            f"token counts must be >= 0, got prompt_tokens={prompt_tokens}, output_tokens={output_tokens}"
        )
    o = output_tokens
    return float(o * prompt_tokens + o * (o + 1) // 2)


def app_cost(calls: Iterable[tuple[int, int]]) -> float:
    """Cost eq. 2: an application's cost, the sum of its calls' costs ``(prompt, output)``."""
    return float(sum(call_cost(p, o) for p, o in calls))


def held_token_iters(prompt_tokens: int, done_tokens: int, steps: int) -> float:
    """Token·iterations held by a decoding call over ``steps`` more decode iterations.

    Before the first of them it has ``done_tokens`` outputs; iteration ``k`` (1-based) holds
    ``prompt + done + k`` tokens. Summing gives the same series as cost eq. 1, so a call that decodes
    ``o`` tokens in any number of spans is charged exactly ``call_cost(p, o)``.
    """
    if prompt_tokens < 0 or done_tokens < 0 or steps < 0:
        raise ValueError(
            f"token counts must be >= 0, got prompt_tokens={prompt_tokens}, done_tokens={done_tokens}, steps={steps}"
        )
    base = prompt_tokens + done_tokens
    return float(steps * base + steps * (steps + 1) // 2)
