"""Where a call runs: the placement strategies of the cluster dispatcher, behind one interface (DESIGN §7).

Five strategies, chosen by name (:func:`make_placement`):

* ``round-robin`` — every call goes to the next live replica in turn; an application's calls scatter.
* ``least-loaded`` — every call goes to the live replica with the fewest outstanding requests.
* ``affinity`` — all calls of an application go to its *home* replica (its prefix cache stays warm),
  chosen at its arrival by the earliest expected finish: ``(W_r + Ĉ) / rate_r``, where ``W_r`` is the
  replica's outstanding virtual work (Σ remaining estimated cost of the applications homed there,
  token·iterations; cost eq. 2) and ``rate_r = M_r / iteration_s`` (clock eq. 1). The replica orders
  by its own, local Justitia.
* ``global`` — the same placement, and each call carries the application's finish tag in the
  dispatcher's *global* fair-sharing reference; the replica orders by that tag. *Early binding*: the
  home is chosen at the application's arrival.
* ``global-late`` — *late binding*: arrived applications wait in ONE global queue in ascending global
  finish tag (``F = V(a) + Ĉ / w``, PAPER §4, clock eq. 2 over the pooled capacity ``Σ M_r``); the head
  is bound to a replica only when one *can take it* (:meth:`ReplicaLoad.can_take`): nothing waits in
  the replica's own queue ahead of it (waiting requests with larger global tags do not count: the
  replica's Justitia admits the head first) and its free KV tokens cover the prompt tokens of the
  application's parked calls, or the replica is empty. Among those, the one with the most free KV tokens. Once bound, all
  its calls stay there (sticky, prefix cache warm) and carry the global tag like ``global``. This is
  one M/G/N queue instead of N separate M/G/1 queues (the pooled-queue effect).

A strategy only chooses; the dispatcher owns every piece of state (:class:`ReplicaLoad`, the apps).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


@dataclass(slots=True)
class ReplicaLoad:
    """What the dispatcher knows about one replica: only what passed through it."""

    index: int
    capacity_tokens: float
    rate: float  # token·iterations per second, M_r / iteration_s
    up: bool = True
    outstanding_requests: int = 0
    outstanding_work: float = 0.0  # Σ remaining estimated cost of the apps homed here
    homed_apps: int = 0
    inflight_tokens: int = 0  # Σ prompt + expected output of the calls dispatched here, not yet finished
    # what the replica last reported (Dispatcher.replica_report); None: never, use the dispatcher's count
    reported_free: float | None = None
    reported_waiting: int = 0
    reported_running: int = 0
    reported_waiting_tag: float | None = None  # smallest global tag waiting there (None: unknown)
    bound_since_report: float = 0.0  # prompt tokens bound here after the last report (not in it yet)

    def expected_finish(self, extra_work: float) -> float:
        """Seconds until this replica would finish its outstanding work plus ``extra_work``."""
        return (self.outstanding_work + extra_work) / self.rate

    def free_tokens(self) -> float:
        """Free KV tokens: the last report minus what was bound since, else ``M_r`` minus the tokens of
        the calls in flight here (the dispatcher's own count)."""
        if self.reported_free is None:
            return self.capacity_tokens - self.inflight_tokens
        return self.reported_free - self.bound_since_report

    def empty(self) -> bool:
        """Nothing running or waiting here (as last reported, and nothing bound since)."""
        if self.reported_free is None:
            return self.outstanding_requests == 0
        return self.reported_waiting == 0 and self.reported_running == 0 and self.bound_since_report == 0

    def can_take(self, need_tokens: float, tag: float = math.inf) -> bool:
        """Late binding's admission rule for an application with global finish tag ``tag``: the replica
        is up and either empty, or nothing waits in its own queue *ahead of it* (no waiting request, or
        all of them with larger tags: its Justitia would admit this one first) and at least
        ``need_tokens`` KV tokens are free. Waiting requests of unknown tag count as ahead."""
        if not self.up:
            return False
        if self.empty():
            return True
        if self.reported_waiting > 0 and (self.reported_waiting_tag is None or self.reported_waiting_tag <= tag):
            return False
        return self.free_tokens() >= need_tokens


class Placement(ABC):
    """Chooses a replica for an application (sticky strategies) or for each call."""

    name: ClassVar[str] = "base"
    #: all calls of an application go to one home replica (unless the dispatcher spills)
    sticky: ClassVar[bool] = False
    #: calls carry the application's global finish tag, which the replica orders by
    global_tags: ClassVar[bool] = False
    #: late binding: applications wait in the dispatcher's global queue until :meth:`bind` finds a replica
    late: ClassVar[bool] = False

    @abstractmethod
    def choose(self, replicas: Sequence[ReplicaLoad], app_cost: float, exclude: int | None = None) -> int:
        """Index of a live replica for a call (or, if :attr:`sticky`, a new home) of an application
        whose estimated remaining cost is ``app_cost``; never ``exclude`` unless it is the only one."""

    def bind(self, replicas: Sequence[ReplicaLoad], need_tokens: float, tag: float = math.inf) -> int | None:
        """Late placements (:attr:`late`): the replica the head of the global queue (global finish tag
        ``tag``) is bound to now, or ``None`` if none can take it. The others bind at arrival and never
        call this."""
        raise NotImplementedError(f"placement {self.name!r} binds at arrival; only a late placement binds from the "
                                  "global queue")


def _live(replicas: Sequence[ReplicaLoad], exclude: int | None) -> list[ReplicaLoad]:
    live = [r for r in replicas if r.up and r.index != exclude]
    if not live:
        live = [r for r in replicas if r.up]
    if not live:
        raise RuntimeError("no replica is up: every replica of the cluster is down")
    return live


class RoundRobin(Placement):
    name = "round-robin"

    def __init__(self) -> None:
        self._next = 0

    def choose(self, replicas: Sequence[ReplicaLoad], app_cost: float, exclude: int | None = None) -> int:
        n = len(replicas)
        for k in range(n):
            r = replicas[(self._next + k) % n]
            if r.up and r.index != exclude:
                self._next = (r.index + 1) % n
                return r.index
        return _live(replicas, exclude)[0].index


class LeastLoaded(Placement):
    name = "least-loaded"

    def choose(self, replicas: Sequence[ReplicaLoad], app_cost: float, exclude: int | None = None) -> int:
        return min(_live(replicas, exclude), key=lambda r: (r.outstanding_requests, r.index)).index


class Affinity(Placement):
    name = "affinity"
    sticky = True

    def choose(self, replicas: Sequence[ReplicaLoad], app_cost: float, exclude: int | None = None) -> int:
        best, best_key = -1, (0.0, 0, 0)
        for r in replicas:
            if not r.up or r.index == exclude:
                continue
            key = ((r.outstanding_work + app_cost) / r.rate, r.outstanding_requests, r.index)
            if best < 0 or key < best_key:
                best, best_key = r.index, key
        return best if best >= 0 else _live(replicas, exclude)[0].index


class Global(Affinity):
    name = "global"
    global_tags = True


class GlobalLate(Global):
    name = "global-late"
    late = True

    def bind(self, replicas: Sequence[ReplicaLoad], need_tokens: float, tag: float = math.inf) -> int | None:
        """The replica the head of the global queue is bound to now, or ``None`` if none can take it
        (:meth:`ReplicaLoad.can_take`): the most free KV tokens, then the fewest requests, then the index."""
        best, best_key = None, (0.0, 0, 0)
        for r in replicas:
            if not r.can_take(need_tokens, tag):
                continue
            key = (-r.free_tokens(), r.outstanding_requests, r.index)
            if best is None or key < best_key:
                best, best_key = r.index, key
        return best


PLACEMENTS: dict[str, type[Placement]] = {p.name: p for p in (RoundRobin, LeastLoaded, Affinity, Global, GlobalLate)}


def placement_names() -> list[str]:
    return list(PLACEMENTS)


def make_placement(name: str) -> Placement:
    """A fresh placement strategy by name; a clear error names the choices."""
    try:
        return PLACEMENTS[name]()
    except KeyError:
        raise ValueError(f"unknown placement {name!r}; choose one of: {', '.join(PLACEMENTS)}") from None
