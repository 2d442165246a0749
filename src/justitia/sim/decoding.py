"""The simulated engine's decode group: every running request past its prefill, one token per
iteration in lock-step (vLLM v1 continuous batching; latency eq. 1 reads their whole KV each iteration).

A member's context at the start of engine iteration ``i`` is ``context_offset + i`` tokens, so an
iteration that only decodes changes no member. The group keeps what the engine needs in O(1) or O(bs):
how many members have each *phase* ``offset mod bs`` (a member needs a new block at the iterations where
its context is a multiple of ``bs``: :mod:`justitia.sim.kvcache`), the sum of the offsets (the KV tokens
read), and a heap of the iterations at which members finish.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections.abc import Iterator

from justitia.sim.kvcache import allocs_over, blocks_for, steps_until_full
from justitia.sim.request import DECODE, PENDING, SimRequest

NEVER = 1 << 62  # "no such iteration" for iteration counts

_by_run_order = operator.attrgetter("run_order")


class DecodeGroup:
    """The decoding requests, their block demand and their finishing iterations."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.size = 0
        self.members: dict[int, SimRequest] = {}  # seq -> request, in join order
        self.phase_counts = [0] * block_size  # members by context_offset % block_size
        self.offset_sum = 0  # Σ context_offset: the members hold offset_sum + size·i tokens at iteration i
        self.finish_heap: list[tuple[int, int, int, SimRequest]] = []  # (finish iteration, run order, uid, rq)
        self._uid = 0

    def join(self, rq: SimRequest, iteration: int) -> None:
        """``rq`` (``computed``/``generated`` up to date) joins at the start of ``iteration``."""
        offset = rq.computed - iteration
        rq.context_offset = offset
        rq.generated_offset = rq.generated - iteration
        rq.finish_iteration = iteration + rq.output_tokens - rq.generated
        rq.state = DECODE
        self.phase_counts[offset % self.block_size] += 1
        self.offset_sum += offset
        self.size += 1
        self.members[rq.seq] = rq
        self._uid += 1
        heapq.heappush(self.finish_heap, (rq.finish_iteration, rq.run_order, self._uid, rq))

    def leave(self, rq: SimRequest, iteration: int, extra: int = 0) -> None:
        """Remove ``rq``, bringing its state up to the start of ``iteration``; ``extra`` = 1 if the block
        for this iteration's token was already allocated."""
        offset = rq.context_offset
        rq.computed = offset + iteration
        rq.generated = rq.generated_offset + iteration
        rq.blocks = blocks_for(rq.computed + extra, self.block_size)
        self.phase_counts[offset % self.block_size] -= 1
        self.offset_sum -= offset
        self.size -= 1
        del self.members[rq.seq]
        rq.state = PENDING

    def blocks_needed(self, iteration: int) -> int:
        """New blocks the members need in ``iteration`` (one per member whose context fills a block)."""
        return self.phase_counts[(-iteration) % self.block_size] if self.size else 0

    def needing_block(self, iteration: int) -> list[SimRequest]:
        """The members that need a new block in ``iteration``, in running order."""
        phase = (-iteration) % self.block_size
        bs = self.block_size
        return sorted([r for r in self.members.values() if r.context_offset % bs == phase], key=_by_run_order)

    def kv_tokens(self, iteration: int) -> int:
        """KV tokens the members read in ``iteration`` (their contexts including this iteration's token)."""
        return self.offset_sum + self.size * (iteration + 1)

    def blocks_held(self, iteration: int) -> int:
        """Blocks the members hold at the start of ``iteration`` (O(members), for invariant checks)."""
        return sum(blocks_for(r.context_offset + iteration, self.block_size) for r in self.members.values())

    def allocs_over(self, iteration: int, k: int) -> int:
        """New blocks the members need over iterations ``iteration .. iteration+k-1``."""
        return allocs_over(self.phase_counts, iteration, k, self.block_size, self.size)

    def steps_until_full(self, iteration: int, free: int) -> int:
        """How many iterations from ``iteration`` on ``free`` blocks last."""
        return steps_until_full(self.phase_counts, iteration, free, self.block_size, self.size)

    def iterations_to_next_finish(self, iteration: int) -> int:
        """Iterations from ``iteration`` until the next member finishes (``NEVER`` if none)."""
        h = self.finish_heap
        while h:
            e = h[0]
            r = e[3]
            if r.state == DECODE and r.finish_iteration == e[0] and r.run_order == e[1]:
                return e[0] - iteration
            heapq.heappop(h)
        return NEVER

    def finished_by(self, iteration: int) -> Iterator[SimRequest]:
        """The members that have generated their last token at the start of ``iteration``, taken off the
        finish heap one by one (each still a member when yielded: the caller removes it)."""
        h = self.finish_heap
        while h:
            e = h[0]
            if e[0] > iteration:
                r = e[3]
                if r.state == DECODE and r.finish_iteration == e[0] and r.run_order == e[1]:
                    return
                heapq.heappop(h)
                continue
            heapq.heappop(h)
            r = e[3]
            if r.state == DECODE and r.finish_iteration == e[0] and r.run_order == e[1]:
                yield r


def steps_to_reach(t1: float, half: float, d: float) -> int:
    """Smallest ``k >= 1`` with ``k·t1 + half·k(k−1) >= d``: how many decode iterations, the first
    lasting ``t1`` and each ``2·half`` longer than the one before, reach ``d`` seconds."""
    if d <= t1:
        return 1
    if half > 0:
        b = t1 - half
        k = int((-b + math.sqrt(b * b + 4.0 * half * d)) / (2.0 * half))
    else:
        k = int(d / t1)
    if k < 1:
        k = 1
    while k > 1 and (k - 1) * t1 + half * (k - 1) * (k - 2) >= d:
        k -= 1
    while k * t1 + half * k * (k - 1) < d:
        k += 1
    return k
