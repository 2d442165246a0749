"""Prometheus series of the Justitia scheduler on the server's ``/metrics`` (issue 6 §4).

vLLM runs the scheduler inside the EngineCore process, while ``/metrics`` is answered by the API
server process. vLLM 0.32.0 reads its registry through ``vllm.v1.metrics.prometheus.
get_prometheus_registry()``: when ``PROMETHEUS_MULTIPROC_DIR`` is set it serves a
``MultiProcessCollector`` over that folder, i.e. every process's series. vLLM sets that variable
itself only with ``--api-server-count > 1``, so the launcher (``justitia serve``) sets it to a fresh
folder with :func:`multiproc_env` before starting the server and deletes the folder afterwards; the
EngineCore inherits it and ``prometheus_client`` there writes its values to memory-mapped files. Without
the variable the series still work, but only inside the EngineCore process (invisible on ``/metrics``).

Series (names stable; ``app_type`` label capped at :data:`MAX_APP_TYPES` values, the rest ``"other"``,
because it comes from clients and must not grow without bound):

====================================  =========  ==========================================================
``justitia_active_apps``              gauge      applications the scheduler holds state for
``justitia_virtual_time``             gauge      virtual time ``V`` of the fair-sharing reference (clock eq. 1)
``justitia_served_cost_total``        counter    token·iterations served (cost eq. 1), by ``app_type``
``justitia_app_completion_seconds``   histogram  application completion time (ACT), by ``app_type``
``justitia_preemptions_total``        counter    requests preempted by the scheduler
``justitia_policy_fallbacks_total``   counter    policy failures caught by :class:`~justitia.core.safe.SafePolicy`
====================================  =========  ==========================================================

Cost: the scheduler calls :meth:`Recorder.add_served` per request per step (a dict update) and the
counters/observers directly on rare events; :meth:`Recorder.flush` writes the accumulated cost and the
gauges to Prometheus at most every ``interval_s`` seconds, so the hot path stays off the mmap files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

MAX_APP_TYPES = 32
ACT_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
NAMES: tuple[str, ...] = (
    "justitia_active_apps",
    "justitia_virtual_time",
    "justitia_served_cost_total",
    "justitia_app_completion_seconds",
    "justitia_preemptions_total",
    "justitia_policy_fallbacks_total",
)


def multiproc_env(env: dict[str, str] | None = None) -> tuple[dict[str, str], Callable[[], None]]:
    """Environment for a server whose EngineCore series must reach ``/metrics``, and a cleanup.

    Returns ``(env, cleanup)``: ``env`` is a copy of ``env`` (default ``os.environ``) with
    ``PROMETHEUS_MULTIPROC_DIR`` pointing at a fresh empty folder (unless the caller already set it);
    ``cleanup()`` deletes that folder (call it after the server stopped). vLLM warns that a reused
    folder shows stale values, hence a fresh one per server.
    """
    out = dict(os.environ if env is None else env)
    if out.get("PROMETHEUS_MULTIPROC_DIR"):
        return out, lambda: None
    folder = tempfile.mkdtemp(prefix="justitia-prom-")
    out["PROMETHEUS_MULTIPROC_DIR"] = folder
    return out, lambda: shutil.rmtree(folder, ignore_errors=True)


class Recorder:
    """The scheduler's handle on the series above (module doc). Cheap to call on the hot path.

    ``registry`` defaults to prometheus_client's global registry (what multiprocess mode needs);
    tests pass a private ``CollectorRegistry``. If prometheus_client is missing, every method is a
    no-op and :attr:`enabled` is False.
    """

    def __init__(self, registry: Any = None, interval_s: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._pending: dict[str, float] = {}
        self._types: set[str] = set()
        self._active = 0
        self._vtime = 0.0
        self._last_flush = -float("inf")
        self.enabled = False
        try:
            from prometheus_client import REGISTRY, Counter, Gauge, Histogram
        except ImportError:  # pragma: no cover - prometheus_client ships with vLLM
            return
        reg = REGISTRY if registry is None else registry
        self.active_apps = Gauge("justitia_active_apps", "Applications the Justitia scheduler holds state for",
                                 registry=reg, multiprocess_mode="mostrecent")
        self.virtual_time = Gauge("justitia_virtual_time", "Virtual time V of the fair-sharing reference (token-iterations per unit weight)",
                                  registry=reg, multiprocess_mode="mostrecent")
        self.served_cost = Counter("justitia_served_cost", "Memory-centric service (token-iterations) served, by application type",
                                   ["app_type"], registry=reg)
        self.completion = Histogram("justitia_app_completion_seconds", "Application completion time (ACT), by application type",
                                    ["app_type"], buckets=ACT_BUCKETS, registry=reg)
        self.preemptions = Counter("justitia_preemptions", "Requests preempted by the Justitia scheduler", registry=reg)
        self.fallbacks = Counter("justitia_policy_fallbacks", "Policy failures caught by SafePolicy (FCFS fallback steps)",
                                 registry=reg)
        self._fallbacks_seen = 0
        self.enabled = True

    # ------------------------------------------------------------------ labels
    def label(self, app_type: str) -> str:
        """``app_type`` as a label value: at most :data:`MAX_APP_TYPES` distinct, then ``"other"``."""
        if app_type in self._types:
            return app_type
        if len(self._types) >= MAX_APP_TYPES:
            return "other"
        self._types.add(app_type)
        return app_type

    # ------------------------------------------------------------------ hot path (no Prometheus I/O)
    def add_served(self, app_type: str, cost: float) -> None:
        """Accumulate ``cost`` token·iterations served to an application of ``app_type``."""
        if cost > 0:
            self._pending[app_type] = self._pending.get(app_type, 0.0) + cost

    def set_state(self, active_apps: int, virtual_time: float | None) -> None:
        """Remember the current number of applications and virtual time (written on flush)."""
        self._active = active_apps
        if virtual_time is not None:
            self._vtime = virtual_time

    # ------------------------------------------------------------------ rare events (written at once)
    def app_completed(self, app_type: str, act_s: float) -> None:
        """An application ended after ``act_s`` seconds."""
        if self.enabled and act_s >= 0:
            self.completion.labels(self.label(app_type)).observe(act_s)

    def preempted(self, n: int = 1) -> None:
        if self.enabled and n > 0:
            self.preemptions.inc(n)

    def sync_fallbacks(self, total: int) -> None:
        """Report the policy's running fallback count (``SafePolicy.fallbacks``); adds the increase."""
        if self.enabled and total > self._fallbacks_seen:
            self.fallbacks.inc(total - self._fallbacks_seen)
            self._fallbacks_seen = total

    # ------------------------------------------------------------------ flush
    def flush(self, force: bool = False) -> bool:
        """Write pending cost and the gauges if ``interval_s`` passed (or ``force``); True if written."""
        if not self.enabled:
            return False
        now = self._clock()
        if not force and now - self._last_flush < self.interval_s:
            return False
        self._last_flush = now
        pending, self._pending = self._pending, {}
        for app_type, cost in pending.items():
            self.served_cost.labels(self.label(app_type)).inc(cost)
        self.active_apps.set(self._active)
        self.virtual_time.set(self._vtime)
        return True


_RECORDER: Recorder | None = None


def recorder() -> Recorder:
    """The process-wide :class:`Recorder` (series can be registered only once per registry)."""
    global _RECORDER
    if _RECORDER is None:
        _RECORDER = Recorder()
    return _RECORDER
