"""Virtual clock of the fair-sharing reference: GPS over active applications (paper §4.3, eq. 2; DESIGN §2).

The reference is weighted generalised processor sharing (GPS) over *applications*: the engine's KV
capacity ``M`` tokens is split among the applications active in the reference in proportion to their
weights. Service is measured in token·iterations (see :mod:`justitia.core.cost`), so the whole server
delivers ``rate = M / iteration_s`` token·iterations per second and virtual time advances as

    dV/dt = rate / Σ_{i active} w_i                                                   (clock eq. 1)

An application arriving at real time ``a`` with cost ``C`` and weight ``w`` gets the start tag
``S = V(a)`` and the virtual finish tag

    F = S + C / w                                                                      (clock eq. 2)

and leaves the reference when ``V`` reaches ``F``; the real time at which that happens is its
fair-sharing finish time. The clock is event-driven: between departures ``V`` is linear in ``t``, so
advancing costs O(log n) per departure (a heap of finish tags) and O(1) otherwise; there is no
per-iteration loop over applications.

Idealisation (documented in the README): in the reference every active application can use its full
share; real applications are limited by their own KV footprint and by stage dependencies.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    start: float
    finish: float
    weight: float
    seq: int
    active: bool


class FairClock:
    """Event-driven virtual time of weighted GPS over applications (clock eqs. 1–2).

    Costs: :meth:`arrive`, :meth:`update_cost` and :meth:`remove` are O(log n) amortised;
    :meth:`advance` is O(1) plus O(log n) per application that leaves the reference.
    """

    def __init__(self, capacity_tokens: float, iteration_s: float) -> None:
        self.now = 0.0
        self.v = 0.0
        self.wsum = 0.0
        self._heap: list[tuple[float, int, str]] = []
        self._apps: dict[str, _Entry] = {}
        self._seq = 0
        self.rate = 0.0
        self.set_rate(capacity_tokens, iteration_s)

    # ------------------------------------------------------------------ configuration
    def set_rate(self, capacity_tokens: float, iteration_s: float) -> None:
        """Set ``rate = M / iteration_s`` (clock eq. 1); takes effect from :attr:`now` on."""
        if not (capacity_tokens > 0 and math.isfinite(capacity_tokens)):
            raise ValueError(f"capacity_tokens must be a positive finite number, got {capacity_tokens!r}")
        if not (iteration_s > 0 and math.isfinite(iteration_s)):
            raise ValueError(f"iteration_s must be a positive finite number, got {iteration_s!r}")
        self.rate = capacity_tokens / iteration_s

    # ------------------------------------------------------------------ events
    def advance(self, t: float) -> list[tuple[str, float]]:
        """Move real time to ``t``; return ``(app_id, real_time)`` of each departure, in order."""
        departed: list[tuple[str, float]] = []
        if t <= self.now:
            return departed
        heap = self._heap
        while heap:
            f, _, app_id = heap[0]
            e = self._apps.get(app_id)
            if e is None or not e.active or e.finish != f:
                heapq.heappop(heap)  # stale entry (removed or re-tagged)
                continue
            t_dep = self.now + (f - self.v) * self.wsum / self.rate
            if t_dep > t:
                break
            heapq.heappop(heap)
            self.now = max(self.now, t_dep)
            self.v = f
            e.active = False
            self.wsum -= e.weight
            del self._apps[app_id]
            departed.append((app_id, self.now))
        if self.wsum <= 1e-12:
            self.wsum = 0.0
        if self.wsum > 0:
            self.v += (t - self.now) * self.rate / self.wsum
        self.now = t
        return departed

    def arrive(self, app_id: str, t: float, cost: float, weight: float = 1.0, start: float | None = None) -> float:
        """Admit ``app_id`` at real time ``t``; return its finish tag ``F`` (clock eq. 2).

        ``start`` re-admits an application that already left with its original start tag ``S``
        (used when its cost turns out larger than estimated); by default ``S = V(t)``.
        """
        if app_id in self._apps:
            raise ValueError(f"application {app_id!r} is already in the fair-sharing reference")
        if not (weight > 0 and math.isfinite(weight)):
            raise ValueError(f"weight must be a positive finite number, got {weight!r}")
        if not (cost >= 0 and math.isfinite(cost)):
            raise ValueError(f"cost must be a finite number >= 0, got {cost!r}")
        self.advance(t)
        if start is None or start > self.v:
            start = self.v
        entry = _Entry(start=start, finish=max(start + cost / weight, self.v), weight=weight, seq=self._seq, active=True)
        self._seq += 1
        self._apps[app_id] = entry
        self.wsum += weight
        heapq.heappush(self._heap, (entry.finish, entry.seq, app_id))
        return entry.finish

    def update_cost(self, app_id: str, cost: float) -> float:
        """Re-tag an active application with a new total cost; return the new ``F`` (clock eq. 2)."""
        e = self._apps.get(app_id)
        if e is None:
            raise KeyError(f"application {app_id!r} is not in the fair-sharing reference")
        if not (cost >= 0 and math.isfinite(cost)):
            raise ValueError(f"cost must be a finite number >= 0, got {cost!r}")
        e.finish = max(e.start + cost / e.weight, self.v)
        heapq.heappush(self._heap, (e.finish, e.seq, app_id))
        return e.finish

    def remove(self, app_id: str) -> None:
        """Take an application out of the reference early (e.g. aborted); no-op if it already left."""
        e = self._apps.pop(app_id, None)
        if e is not None and e.active:
            e.active = False
            self.wsum -= e.weight
            if self.wsum <= 1e-12:
                self.wsum = 0.0

    # ------------------------------------------------------------------ queries
    def __contains__(self, app_id: str) -> bool:
        return app_id in self._apps

    def __len__(self) -> int:
        return len(self._apps)


def fair_finish_times(
    arrivals: list[tuple[str, float, float, float]], capacity_tokens: float, iteration_s: float
) -> dict[str, float]:
    """Fluid GPS finish time of every application ``(app_id, arrival_s, cost, weight)``.

    This is the fair-sharing reference used by the metrics (paper §5.1's fair ratio): the same clock, fed the
    true costs, run to completion.
    """
    clock = FairClock(capacity_tokens, iteration_s)
    out: dict[str, float] = {}
    for app_id, t, cost, w in sorted(arrivals, key=lambda a: (a[1], a[0])):
        for aid, td in clock.advance(t):
            out[aid] = td
        clock.arrive(app_id, t, cost, w)
    while len(clock):
        for aid, td in clock.advance(_horizon(clock)):
            out[aid] = td
    return out


def _horizon(clock: FairClock) -> float:
    """A real time by which every application now in ``clock`` has left (upper bound)."""
    if not clock._apps:
        return clock.now
    fmax = max(e.finish for e in clock._apps.values())
    total_w = clock.wsum if clock.wsum > 0 else 1.0
    return clock.now + (fmax - clock.v) * total_w / clock.rate + 1.0
