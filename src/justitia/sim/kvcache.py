"""Closed-form paged-KV arithmetic for lock-step decoding (vLLM v1 ``KVCacheManager``; DESIGN §1).

The engine keeps decoding requests in a *decode group*: they all advance one token per iteration, so
a request whose context at global iteration ``G`` is ``base + G`` tokens needs a new block of
``bs`` tokens exactly at the iterations ``G`` with ``(base + G) % bs == 0``. Grouping requests by their
*phase* ``base mod bs`` (``cnt[ph]`` = how many have that phase) makes the block demand of ``k`` decode
iterations, and the number of iterations the free blocks last, computable in O(bs) instead of O(k·n).
"""

from __future__ import annotations

from collections.abc import Sequence


def blocks_for(tokens: int, bs: int) -> int:
    """Blocks of ``bs`` tokens needed to hold ``tokens`` tokens (the engine's one block count)."""
    return -(-tokens // bs)


def allocs_over(cnt: Sequence[int], g: int, k: int, bs: int, n: int) -> int:
    """New blocks the decode group allocates over iterations ``g .. g+k-1`` (``n = sum(cnt)``).

    Iteration ``g + j`` allocates one block for each request of phase ``ph`` with
    ``(ph + g + j) % bs == 0``, i.e. for offset ``r = j % bs`` the phase ``(-r - g) % bs``. Every full cycle
    of ``bs`` iterations allocates exactly one block per request.
    """
    q, m = divmod(k, bs)
    total = q * n
    for r in range(m):
        total += cnt[(-r - g) % bs]
    return total


def steps_until_full(cnt: Sequence[int], g: int, free: int, bs: int, n: int) -> int:
    """Largest ``k`` such that iterations ``g .. g+k-1`` can all allocate their blocks from ``free``
    free blocks (``allocs_over(..., k) <= free``). Returns a very large number if ``n == 0``."""
    if n == 0:
        return 1 << 62
    q, rem = divmod(free, n)
    acc = 0
    for r in range(bs):
        acc += cnt[(-r - g) % bs]
        if acc > rem:
            return q * bs + r
    return q * bs + bs  # unreachable: a full cycle allocates n > rem blocks
