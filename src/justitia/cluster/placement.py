"""Where a call runs: the placement strategies of the cluster dispatcher, behind one interface (DESIGN §7).

Four strategies, chosen by name (:func:`make_placement`):

* ``round-robin`` — every call goes to the next live replica in turn; an application's calls scatter.
* ``least-loaded`` — every call goes to the live replica with the fewest outstanding requests.
* ``affinity`` — all calls of an application go to its *home* replica (its prefix cache stays warm),
  chosen at its arrival by the earliest expected finish: ``(W_r + Ĉ) / rate_r``, where ``W_r`` is the
  replica's outstanding virtual work (Σ remaining estimated cost of the applications homed there,
  token·iterations; cost eq. 2) and ``rate_r = M_r / iteration_s`` (clock eq. 1). The replica orders
  by its own, local Justitia.
* ``global`` — the same placement, and each call carries the application's finish tag in the
  dispatcher's *global* fair-sharing reference; the replica orders by that tag.

A strategy only chooses; the dispatcher owns every piece of state (:class:`ReplicaLoad`, the apps).
"""

from __future__ import annotations

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

    def expected_finish(self, extra_work: float) -> float:
        """Seconds until this replica would finish its outstanding work plus ``extra_work``."""
        return (self.outstanding_work + extra_work) / self.rate


class Placement(ABC):
    """Chooses a replica for an application (sticky strategies) or for each call."""

    name: ClassVar[str] = "base"
    #: all calls of an application go to one home replica (unless the dispatcher spills)
    sticky: ClassVar[bool] = False
    #: calls carry the application's global finish tag, which the replica orders by
    global_tags: ClassVar[bool] = False

    @abstractmethod
    def choose(self, replicas: Sequence[ReplicaLoad], app_cost: float, exclude: int | None = None) -> int:
        """Index of a live replica for a call (or, if :attr:`sticky`, a new home) of an application
        whose estimated remaining cost is ``app_cost``; never ``exclude`` unless it is the only one."""


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


PLACEMENTS: dict[str, type[Placement]] = {p.name: p for p in (RoundRobin, LeastLoaded, Affinity, Global)}


def placement_names() -> list[str]:
    return list(PLACEMENTS)


def make_placement(name: str) -> Placement:
    """A fresh placement strategy by name; a clear error names the choices."""
    try:
        return PLACEMENTS[name]()
    except KeyError:
        raise ValueError(f"unknown placement {name!r}; choose one of: {', '.join(PLACEMENTS)}") from None
