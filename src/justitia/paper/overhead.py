"""Fig. 12 of the paper (§5.5): scheduling time per decision against the agents' arrival rate.

The simulator calls the policy for every event (arrivals, service reports, finishes), asks it for keys,
and calls ``tick(now)`` once before each scheduling decision. We wrap those methods of one policy
instance with a timer and charge everything the policy did since the previous ``tick`` to that
decision: the time per decision is the policy's own work per scheduling step (estimator, virtual clock,
keys), what a real engine's scheduler would add to each step. The engine's own bookkeeping (heaps, KV
blocks) is not counted. The wrapper adds two ``perf_counter`` calls per policy call (~0.1 µs).
These are host timings on a shared machine: figures, not a test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from justitia.paper.config import make_apps
from justitia.paper.experiments import Context, build, calibrate

TIMED = ("key", "app_arrived", "request_arrived", "served", "request_finished", "app_finished", "changed_apps")
POLICIES = ("justitia", "justitia-mlp")


class DecisionTimer:
    """Accumulates a policy's time per scheduling decision (between consecutive ``tick`` calls)."""

    def __init__(self) -> None:
        self.pending = 0.0
        self.per_decision: list[float] = []

    def wrap(self, policy: Any) -> Any:
        """Instrument ``policy`` in place (instance attributes shadow its methods) and return it."""
        for name in TIMED:
            setattr(policy, name, self._timed(getattr(policy, name)))
        tick = policy.tick

        def timed_tick(now: float) -> None:
            t0 = time.perf_counter()
            tick(now)
            self.per_decision.append(self.pending + time.perf_counter() - t0)
            self.pending = 0.0

        policy.tick = timed_tick
        return policy

    def _timed(self, f: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                self.pending += time.perf_counter() - t0
        return timed

    def summary(self) -> dict[str, float]:
        v = np.asarray(self.per_decision) * 1e3
        return {"decisions": int(v.size), "mean_ms": float(v.mean()), "p99_ms": float(np.percentile(v, 99)),
                "max_ms": float(v.max())}


def fig12(ctx: Context) -> dict[str, Any]:
    """``{"rates": [{"density", "agents_per_min", policy: {decisions, mean_ms, p99_ms, max_ms}}, ...]}``."""
    from justitia.paper.experiments import available
    from justitia.sim.engine import simulate

    cfg = ctx.cfg
    rows = []
    for d in cfg.overhead_densities:
        setting = ctx.settings.get(d) or calibrate(make_apps(cfg, d), cfg.gpu)
        arr = [a.arrival_s for a in setting.apps]
        span = (max(arr) - min(arr)) * len(arr) / max(len(arr) - 1, 1)
        row: dict[str, Any] = {"density": d, "agents_per_min": 60.0 * len(arr) / span if span > 0 else float("inf")}
        for p in POLICIES:
            if not available(p):
                continue
            timer = DecisionTimer()
            simulate(setting.apps, timer.wrap(build(p, setting, ctx.estimators)), setting.engine)
            row[p] = timer.summary()
            ctx.step(f"Fig. 12 {d:g}× {p}")
        rows.append(row)
    return {"rates": rows, "policies": [p for p in POLICIES if available(p)]}


def fig12_steps(n_densities: int) -> int:
    return n_densities * len(POLICIES)
