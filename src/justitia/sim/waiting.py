"""The simulated engine's waiting queue, ordered by the policy's keys (DESIGN §1: the policy decides
admission order; PAPER §4: Justitia admits the smallest virtual finish time first).

Requests sit in a heap of ``(key, seq, key epoch, request)`` entries with lazy invalidation: an entry is
valid while its request still waits and its epoch is the request's. Static policies have the whole
queue re-keyed when :attr:`Policy.version` moves (or keep it across app events,
``app_events_keep_keys``). Policies that report :meth:`Policy.changed_apps` (VTC, SJF, PLAS, ATLAS) get
only the waiting requests of the applications it names re-keyed (per-app lists; older entries die by
epoch; the heap is compacted when stale entries outnumber live ones) — the same minimum as a full re-key
because keys are total orders, so the same run, in O(changed) instead of O(waiting). Dynamic-key
policies are re-keyed before every look-up; a second heap by block need answers "could anything be
admitted?" without reading keys.
"""

from __future__ import annotations

import heapq
from typing import Any

from justitia.core.policy import Policy
from justitia.sim.kvcache import blocks_for
from justitia.sim.request import WAITING, SimRequest


class WaitingQueue:
    """The waiting requests; :meth:`head` is the one the policy admits next."""

    def __init__(self, policy: Policy, block_size: int, *, dynamic: bool, max_num_seqs: int,
                 reserve_full_isl: bool) -> None:
        self.policy = policy
        self.block_size = block_size
        self.dynamic = dynamic  # keys may change with every policy event: re-key at each look-up
        self.tracks_apps = policy.reports_changed_apps  # re-key only the apps the policy names
        self.max_num_seqs = max_num_seqs
        self.reserve_full_isl = reserve_full_isl
        self.requests: dict[int, SimRequest] = {}  # seq -> request: every waiting request
        self.by_app: dict[str, dict[int, SimRequest]] = {}  # app id -> its waiting requests (tracking only)
        self.key_heap: list[tuple[Any, int, int, SimRequest]] = []
        self.keyed_version = -1  # the policy version the key heap's entries were computed at
        self.need_heap: list[tuple[int, int, int, SimRequest]] = []  # (blocks to admit fully, ...), dynamic only

    def push(self, rq: SimRequest) -> None:
        """``rq`` enters the queue; it holds nothing and will (re)compute prompt + generated tokens."""
        rq.state = WAITING
        rq.to_compute = rq.prompt_tokens + rq.generated
        rq.computed = 0
        rq.blocks = 0
        rq.wait_epoch += 1
        rq.key_epoch += 1
        self.requests[rq.seq] = rq
        if self.dynamic:
            heapq.heappush(self.need_heap, (blocks_for(rq.to_compute, self.block_size), rq.seq, rq.wait_epoch, rq))
        if self.tracks_apps:
            app_id = rq.req.app_id
            d = self.by_app.get(app_id)
            if d is None:
                self.by_app[app_id] = d = {}
            d[rq.seq] = rq
            heapq.heappush(self.key_heap, (self.policy.key(rq.req), rq.seq, rq.key_epoch, rq))
        elif not self.dynamic and self.keyed_version == self.policy.version:
            heapq.heappush(self.key_heap, (self.policy.key(rq.req), rq.seq, rq.key_epoch, rq))
        # else: the heap is rebuilt (with this request) at the next look-up

    def remove(self, rq: SimRequest) -> None:
        """``rq`` leaves the queue (admitted); its heap entries die lazily."""
        del self.requests[rq.seq]
        if self.tracks_apps:
            app_id = rq.req.app_id
            d = self.by_app[app_id]
            del d[rq.seq]
            if not d:
                del self.by_app[app_id]

    def carry_version(self, old: int, new: int) -> None:
        """The policy moved from version ``old`` to ``new`` without changing any queued request's key."""
        if self.keyed_version == old:
            self.keyed_version = new

    def head(self, fresh: bool = False) -> SimRequest | None:
        """The waiting request with the smallest key (keys re-read when the policy says they changed,
        or always for dynamic-key policies unless ``fresh``: no policy event since the last look-up)."""
        if self.tracks_apps:
            if self.keyed_version != self.policy.version:
                self._rekey_changed()
        elif (self.dynamic and not fresh) or self.keyed_version != self.policy.version:
            self._rebuild()
        h = self.key_heap
        while h:
            e = h[0]
            r = e[3]
            if r.state == WAITING and r.key_epoch == e[2]:
                return r
            heapq.heappop(h)
        return None

    def head_key(self) -> tuple[Any, int]:
        """``(policy key, seq)`` of the head (call right after :meth:`head` returned a request)."""
        e = self.key_heap[0]
        return (e[0], e[1])

    def pop_head(self) -> tuple[Any, int]:
        """Take the head's entry off the heap (it is being admitted); returns its ``(key, seq)``."""
        e = heapq.heappop(self.key_heap)
        return (e[0], e[1])

    def blocks_to_admit(self, rq: SimRequest, budget: int) -> int:
        """Free blocks ``rq`` needs to be admitted with ``budget`` tokens left this iteration (its whole
        sequence with ``reserve_full_isl``, as vLLM's ``scheduler_reserve_full_isl``)."""
        if self.reserve_full_isl:
            return blocks_for(rq.to_compute, self.block_size)
        return blocks_for(min(rq.to_compute, budget), self.block_size)

    def admissible(self, free: int, budget: int, running: int) -> bool:
        """Could any waiting request be admitted now (ignoring which one the policy prefers, for
        dynamic-key policies; the policy's head, for static ones)?"""
        if not self.requests or budget <= 0 or running >= self.max_num_seqs:
            return False
        if self.dynamic:
            h = self.need_heap
            while h:
                e = h[0]
                r = e[3]
                if r.state == WAITING and r.wait_epoch == e[2]:
                    if self.reserve_full_isl:
                        return e[0] <= free
                    return self.blocks_to_admit(r, budget) <= free
                heapq.heappop(h)
            return False
        head = self.head()
        return head is not None and self.blocks_to_admit(head, budget) <= free

    def _rebuild(self) -> None:
        key = self.policy.key
        self.key_heap = [(key(r.req), r.seq, r.key_epoch, r) for r in self.requests.values()]
        heapq.heapify(self.key_heap)
        self.keyed_version = self.policy.version

    def _rekey_changed(self) -> None:
        """Push fresh entries for the waiting requests of the applications whose keys changed since the
        last look-up (their older entries die: key epoch); all of them if the policy cannot tell
        (``None``) or when stale entries outnumber live ones (compaction). Requests of other
        applications keep entries whose keys are still exact, so the heap's minimum is the same as after
        a full re-key (keys are total orders: they end in the unique sequence number)."""
        changed = self.policy.changed_apps()
        if changed is None or len(self.key_heap) > 2 * len(self.requests) + 64:
            self._rebuild()
            return
        key = self.policy.key
        h = self.key_heap
        by_app = self.by_app
        push = heapq.heappush
        for app_id in changed:
            d = by_app.get(app_id)
            if d:
                for r in d.values():
                    r.key_epoch += 1
                    push(h, (key(r.req), r.seq, r.key_epoch, r))
        self.keyed_version = self.policy.version
