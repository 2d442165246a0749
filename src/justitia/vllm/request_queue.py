"""vLLM's waiting queue ordered by the policy key (paper §4.3: requests queued by their agent's ``F``).

:class:`PolicyRequestQueue` is a drop-in for vLLM 0.32.0's ``RequestQueue`` (``add``/``pop``/``peek``/
``prepend``/``remove``, ``len``, ``iter``, and indexing ``queue[i]`` as vLLM's own tests use it): the
lowest key comes out first. The key of a request comes from a function the scheduler hands in
(the policy key, inside vLLM's priority band when ``--scheduling-policy priority`` is on).
There is no "front" under a policy order: a preempted or skipped request that vLLM *prepends* goes
back in by its key.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, overload

from vllm.v1.core.sched.request_queue import RequestQueue

from justitia.core.policy import Key, Policy

if TYPE_CHECKING:
    from vllm.v1.request import Request

Entry = tuple[Key, int, "Request"]


def _entry_key(e: tuple[Key, int, Any]) -> tuple[Key, int]:
    return (e[0], e[1])


class PolicyRequestQueue(RequestQueue):
    """Requests ordered by ``key_of`` (lowest first), re-keyed lazily when ``policy.version`` moves.

    Entries are ``(key, seq, request)`` kept sorted ascending. Costs: ``add_request`` O(log n) to find
    the place plus O(n) list insert (a memmove) while the order is valid, O(1) otherwise;
    ``peek``/``pop``/``[i]`` O(1) amortised plus a full re-key O(n log n) after ``policy.version``
    changed (or on every :meth:`refresh` for dynamic-key policies); ``remove_requests`` O(n).
    """

    def __init__(self, policy: Policy, key_of: Callable[[Request], Key]) -> None:
        self._policy = policy
        self._key = key_of
        self._items: list[Entry] = []
        self._head = 0  # items[:head] were popped (compacted lazily)
        self._sorted = True
        self._version = -1
        self._seq = 0

    # -- ordering
    def _live(self) -> list[Entry]:
        if self._head:
            del self._items[: self._head]
            self._head = 0
        return self._items

    def refresh(self, force: bool = False) -> None:
        """Re-key and re-sort if the policy's keys may have changed (cheap no-op otherwise)."""
        pol = self._policy
        if force or pol.version != self._version or pol.dynamic_keys:
            key = self._key
            self._items = sorted(((key(r), s, r) for _, s, r in self._live()), key=_entry_key)
            self._version = pol.version
            self._sorted = True
        elif not self._sorted:
            self._live().sort(key=_entry_key)
            self._sorted = True

    def _ensure(self) -> None:
        if not self._sorted or self._policy.version != self._version:
            self.refresh()

    # -- RequestQueue API
    def add_request(self, request: Request) -> None:
        self._seq += 1
        entry = (self._key(request), self._seq, request)
        if self._sorted and self._version == self._policy.version:
            bisect.insort(self._live(), entry, key=_entry_key)
        else:
            self._items.append(entry)
            self._sorted = False

    def pop_request(self) -> Request:
        self._ensure()
        if self._head >= len(self._items):
            raise IndexError("pop from an empty queue")
        req = self._items[self._head][2]
        self._head += 1
        if self._head > 64 and self._head * 2 > len(self._items):
            self._live()
        return req

    def peek_request(self) -> Request:
        self._ensure()
        if self._head >= len(self._items):
            raise IndexError("peek from an empty queue")
        return self._items[self._head][2]

    def prepend_request(self, request: Request) -> None:
        self.add_request(request)

    def prepend_requests(self, requests: Iterable[Request]) -> None:
        for r in requests:
            self.add_request(r)

    def remove_request(self, request: Request) -> None:
        self.remove_requests((request,))

    def remove_requests(self, requests: Iterable[Request]) -> None:
        drop = {id(r) for r in requests}
        if drop:
            self._items = [e for e in self._live() if id(e[2]) not in drop]

    def __bool__(self) -> bool:
        return self._head < len(self._items)

    def __len__(self) -> int:
        return len(self._items) - self._head

    def __iter__(self) -> Iterator[Request]:
        self._ensure()
        return iter([e[2] for e in self._items[self._head:]])

    @overload
    def __getitem__(self, index: int) -> Request: ...
    @overload
    def __getitem__(self, index: slice) -> list[Request]: ...

    def __getitem__(self, index: int | slice) -> Request | list[Request]:
        """The request at ``index`` in queue order (``[0]`` is what :meth:`pop_request` returns)."""
        self._ensure()
        live = self._live()
        if isinstance(index, slice):
            return [e[2] for e in live[index]]
        return live[index][2]

    def __contains__(self, request: object) -> bool:
        return any(e[2] is request for e in self._items[self._head:])
