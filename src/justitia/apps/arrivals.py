"""Arrival processes and load scaling (paper §5.1: trace arrivals squeezed to a load).

**Offered load.** The engine's capacity is its KV memory ``M`` (tokens) held for one iteration of
``iteration_s`` seconds, i.e. ``service_rate = M / iteration_s`` token·iterations per second (the
simulator gives it). An application's demand is its memory-centric cost (cost eq. 2, token·iterations:
the KV memory it holds over its decoding lifetime). A workload of ``n`` applications arriving over a
window of ``D`` seconds offers

    load = Σ_i cost_i / (service_rate · D)  =  λ · mean_cost / service_rate,        λ = n / D,

so load 1.0 means the KV-memory-time demanded equals the capacity offered over the window (below 1 the
memory can keep up in the fluid limit; above 1 queues grow). ``D`` is estimated from the arrival times
as ``n`` mean inter-arrival gaps: ``D = (t_max - t_min) · n / (n - 1)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from justitia.apps.model import AppSpec
from justitia.apps.traces import RequestTrace, azure_conv


def poisson_arrivals(n: int, rate: float, rng: np.random.Generator, start_s: float = 0.0) -> np.ndarray:
    """``n`` arrival times of a Poisson process of ``rate`` per second; the first is ``start_s``.

    Inter-arrival gaps are exponential with mean ``1 / rate``; the first arrival is at ``start_s`` so a
    workload starts immediately (the rest keep the Poisson gaps).
    """
    _check_n_rate(n, rate)
    gaps = rng.exponential(1.0 / rate, size=n)
    gaps[0] = 0.0
    return start_s + np.cumsum(gaps)


def trace_arrivals(
    n: int,
    rate: float,
    rng: np.random.Generator,
    trace: RequestTrace | None = None,
    start: int | None = None,
) -> np.ndarray:
    """``n`` arrival times replayed from a real trace (default: Azure conversation), re-scaled to ``rate``.

    A window of ``n`` consecutive arrivals starting at a random row is taken (wrapping around the end
    of the trace, shifted by its duration plus one mean gap, so burstiness is kept), shifted to start at
    0, then stretched so its mean rate is ``rate`` per second (``D`` as in the module docstring).
    ``start`` fixes the first row instead of drawing it (to replay the same rows' lengths alongside).
    """
    _check_n_rate(n, rate)
    if n == 0:
        return np.zeros(0)
    tr = trace if trace is not None else azure_conv()
    t = np.asarray(tr.arrived_at, dtype=np.float64)
    m = t.size
    if m < 2:
        raise ValueError(f"trace {tr.name!r} has {m} arrivals; need at least 2")
    period = float(t[-1] - t[0]) * m / (m - 1)  # one more mean gap between laps
    if start is None:
        start = int(rng.integers(0, m))
    elif not 0 <= start < m:
        raise ValueError(f"start row {start} outside the trace's {m} rows")
    idx = start + np.arange(n)
    out = t[idx % m] + (idx // m) * period
    out -= out[0]
    if n < 2 or out[-1] <= 0:
        return np.zeros(n) if n else out
    natural_rate = n / (out[-1] * n / (n - 1))
    return out * (natural_rate / rate)


PAPER_AGENTS = 300
"""Agents per experiment in the paper (§5.1)."""
PAPER_WINDOW_S = 18 * 60.0
"""The paper's 1× window: 300 agents in 18 minutes; 2× and 3× squeeze them into 9 and 6."""


def density_rate(density: float) -> float:
    """Agents per second at the paper's density ``d`` (1×, 2×, 3×): ``300 / (18 min / d)``."""
    _check_rate(density, "density")
    return density * PAPER_AGENTS / PAPER_WINDOW_S


def window_arrivals(n: int, window_s: float, rng: np.random.Generator, trace: RequestTrace | None = None) -> np.ndarray:
    """``n`` submission times squeezed from a whole trace into ``window_s`` (the paper's method).

    ``n`` rows of the trace (default: Mooncake conversation) are drawn without replacement, sorted, and
    the trace's hour is mapped linearly onto the window, so the hour's rate profile is kept (shifted so the first is at 0). The
    Mooncake timestamps tick every 3 s, so a few agents may arrive together (as in the trace).
    """
    from justitia.apps.traces import mooncake

    _check_n_rate(n, 1.0)
    _check_rate(window_s, "window_s")
    tr = trace if trace is not None else mooncake()
    t = np.asarray(tr.arrived_at, dtype=np.float64)
    if n > t.size:
        raise ValueError(f"trace {tr.name!r} has {t.size} arrivals; cannot draw {n}")
    span = float(t[-1] - t[0])
    if span <= 0:
        raise ValueError(f"trace {tr.name!r} spans no time")
    rows = np.sort(rng.choice(t.size, size=n, replace=False))
    return (t[rows] - t[rows[0]]) * (window_s / span)


def arrival_window_s(arrivals: Sequence[float] | np.ndarray) -> float:
    """``D``: the window a set of arrivals spans, ``n`` mean gaps (module docstring)."""
    a = np.asarray(arrivals, dtype=np.float64)
    n = a.size
    if n < 2:
        raise ValueError(f"need at least 2 arrivals to measure an arrival window, got {n}")
    span = float(a.max() - a.min())
    if span <= 0:
        raise ValueError("all applications arrive at the same instant: the arrival window is 0")
    return span * n / (n - 1)


def offered_load(apps: Sequence[AppSpec], service_rate: float) -> float:
    """The load ``apps`` offer to an engine of ``service_rate`` token·iterations/s (module docstring)."""
    _check_rate(service_rate, "service_rate")
    total = float(sum(a.cost for a in apps))
    return total / (service_rate * arrival_window_s([a.arrival_s for a in apps]))


def scale_to_load(apps: Sequence[AppSpec], load: float, service_rate: float) -> list[AppSpec]:
    """Re-time ``apps`` so they offer ``load`` to an engine of ``service_rate`` (module docstring).

    All arrival times are multiplied by one factor (the arrival pattern's shape is kept, the origin
    stays at 0), so that ``λ · mean_cost / service_rate == load`` with ``λ = n / D``. Returns new
    :class:`AppSpec` objects in the input order; the input is not modified.
    """
    _check_rate(load, "load")
    current = offered_load(apps, service_rate)
    factor = current / load
    return [dataclasses.replace(a, arrival_s=a.arrival_s * factor) for a in apps]


def _check_rate(x: float, name: str) -> None:
    if not (isinstance(x, (int, float)) and np.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a positive finite number, got {x!r}")


def _check_n_rate(n: int, rate: float) -> None:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"number of arrivals must be a non-negative integer, got {n!r}")
    _check_rate(rate, "rate")
