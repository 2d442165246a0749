"""A policy wrapper that never lets a policy bug kill the engine (DESIGN §1; paper §4.3's order, else FCFS).

:class:`SafePolicy` wraps any :class:`~justitia.core.policy.Policy`. Every event and every ``key()``
call is forwarded; an exception (or a key that is not a tuple, or that holds a NaN, which would
silently break the total order) is caught, logged once with its traceback on the ``"justitia"``
logger, counted in :attr:`SafePolicy.fallbacks`, and the engine keeps going in FCFS order.

The fallback rule (keys from different regimes must never be compared meaninglessly):

* Every key is tagged with a *tier*: a healthy key is ``(0, *inner_key)``, a fallback key is
  ``(1, req.arrival_s, req.seq)`` — vLLM's FCFS order. Keys of the two tiers always compare (on
  the tier), so a mixed sort never raises and never interleaves two unrelated orders.
* A *step* is the span between two :meth:`Policy.tick` calls (engines tick before each scheduling
  decision). From the first failure in a step until the next ``tick()``, ``key()`` does not call the
  wrapped policy at all: every key is FCFS. The next ``tick()`` tries the policy again.
* Keys already handed out earlier in the failing step keep tier 0, so in that one decision the
  requests keyed before the failure stay ahead, in policy order, of the FCFS-ordered rest; the
  preemption victim (largest key) is an FCFS-keyed request, newest first. :attr:`version` is bumped
  on entering and on leaving a failing step, so engines that cache orders re-sort. Engines that key
  a whole queue at once can use :meth:`SafePolicy.keys`, which makes the whole batch FCFS if any
  key fails — exactly "all keys of the step are FCFS".

The wrapper declares the wrapped policy's capabilities (``dynamic_keys``, ``app_events_keep_keys``,
``listens_to_service``, ``reports_changed_apps``, ``needs_cost``, ``capacity_keeps_keys``), so engines
keep their fast paths;
:meth:`SafePolicy.changed_apps` forwards the wrapped policy's report, but answers ``None`` ("re-key
everything") once after every regime flip (entering or leaving a failing step) or failure to report.
An application event that fails inside an engine's cached order (``app_events_keep_keys``) leaves keys
handed out before the failure in place, as in any failing step; the next ``tick()`` re-keys all.

The wrapper is engine-agnostic (imports neither vLLM nor torch) and cheap on the healthy path (one
tuple concatenation and a NaN scan per key).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from justitia.core.policy import AppInfo, AppState, Key, Policy, Req

log = logging.getLogger("justitia")

HEALTHY: int = 0
"""Tier of a key computed by the wrapped policy."""
FALLBACK: int = 1
"""Tier of an FCFS fallback key."""

_MAX_LOGGED = 64  # distinct (where, exception type) pairs logged with a traceback; the rest at DEBUG


class SafePolicy(Policy):
    """Forward to ``inner``; on any failure fall back to FCFS for the rest of the step (module doc).

    Attributes the wrapper does not define (``clock``, ``finish``, ``counter`` …) are read from the
    wrapped policy, so engines and tests can keep inspecting it through the wrapper.
    """

    def __init__(self, inner: Policy) -> None:  # noqa: D107 - no super().__init__: state lives in inner
        if isinstance(inner, SafePolicy):
            inner = inner.inner
        if not isinstance(inner, Policy):
            raise TypeError(f"SafePolicy wraps a Policy, got {type(inner).__name__}")
        self.inner = inner
        self.name = inner.name  # report the wrapped policy's name ("justitia", "justitia-mlp")
        # the wrapped policy's capabilities, so engines keep its fast paths
        self.dynamic_keys = inner.dynamic_keys  # type: ignore[misc]
        self.app_events_keep_keys = inner.app_events_keep_keys  # type: ignore[misc]
        self.needs_cost = inner.needs_cost  # type: ignore[misc]
        self.listens_to_service = inner.listens_to_service  # type: ignore[misc]
        self.reports_changed_apps = inner.reports_changed_apps  # type: ignore[misc]
        self.capacity_keeps_keys = inner.capacity_keeps_keys  # type: ignore[misc]
        self.fallbacks = 0
        """Exceptions (or invalid keys) caught from the wrapped policy; each forced FCFS for its step."""
        self.fallback_steps = 0
        """Steps (tick to tick) that ran, at least partly, in FCFS fallback."""
        self.failing = False
        """True from a failure until the next :meth:`tick`: keys are FCFS and the policy is not asked."""
        self.last_error: BaseException | None = None
        self._logged: set[tuple[str, str]] = set()
        self._bumps = 0
        self._bumps_reported = 0  # _bumps at the last changed_apps(): a flip since then re-keys all

    # ------------------------------------------------------------------ delegation
    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on the wrapper itself.
        if name == "inner":  # during unpickling / before __init__
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property  # type: ignore[override]
    def version(self) -> int:
        """Changes whenever any key may have changed: the wrapped policy's version plus our regime flips."""
        return self.inner.version + self._bumps

    @property  # type: ignore[override]
    def apps(self) -> dict[str, AppState]:
        return self.inner.apps

    @property  # type: ignore[override]
    def capacity_tokens(self) -> float:
        return self.inner.capacity_tokens

    @property  # type: ignore[override]
    def iteration_s(self) -> float:
        return self.inner.iteration_s

    @property  # type: ignore[override]
    def estimator(self) -> Any:
        return self.inner.estimator

    def describe(self) -> str:
        return self.inner.describe()

    def virtual_time(self) -> float | None:
        return self.inner.virtual_time()

    def state_entries(self) -> int:
        return self.inner.state_entries()

    # ------------------------------------------------------------------ failure handling
    def _fail(self, where: str, exc: BaseException) -> None:
        self.fallbacks += 1
        self.last_error = exc
        if not self.failing:
            self.failing = True
            self.fallback_steps += 1
            self._bumps += 1
        sig = (where, type(exc).__name__)
        if sig not in self._logged and len(self._logged) < _MAX_LOGGED:
            self._logged.add(sig)
            log.error("policy %s failed in %s(); falling back to FCFS for this step (fallback #%d)",
                      self.inner.name, where, self.fallbacks, exc_info=exc)
        else:
            log.debug("policy %s failed again in %s(): %r (fallback #%d)", self.inner.name, where, exc, self.fallbacks)

    # ------------------------------------------------------------------ events
    # Each event forwards directly (no getattr or argument packing): served() runs for every running
    # request and tick() every step in the vLLM plugin, so the wrapper costs one call level only.
    def set_capacity(self, capacity_tokens: float, iteration_s: float | None = None) -> None:
        try:
            self.inner.set_capacity(capacity_tokens, iteration_s)
        except Exception as exc:  # noqa: BLE001 - the point of this class
            self._fail("set_capacity", exc)

    def app_arrived(self, app: AppInfo, now: float) -> None:
        try:
            self.inner.app_arrived(app, now)
        except Exception as exc:  # noqa: BLE001
            self._fail("app_arrived", exc)

    def request_arrived(self, req: Req, now: float) -> None:
        try:
            self.inner.request_arrived(req, now)
        except Exception as exc:  # noqa: BLE001
            self._fail("request_arrived", exc)

    def served(self, req: Req, prefill_tokens: int, decode_tokens: int, held_token_iters: float, now: float) -> None:
        try:
            self.inner.served(req, prefill_tokens, decode_tokens, held_token_iters, now)
        except Exception as exc:  # noqa: BLE001
            self._fail("served", exc)

    def request_finished(self, req: Req, now: float) -> None:
        try:
            self.inner.request_finished(req, now)
        except Exception as exc:  # noqa: BLE001
            self._fail("request_finished", exc)

    def app_finished(self, app_id: str, now: float) -> None:
        try:
            self.inner.app_finished(app_id, now)
        except Exception as exc:  # noqa: BLE001
            self._fail("app_finished", exc)
        # A policy that failed here may keep the application's state; the engine has forgotten it.
        # Drop the base registry entry at least, so ``apps`` does not grow without bound.
        self.inner.apps.pop(app_id, None)

    def tick(self, now: float) -> None:
        """Start a new step: leave fallback mode (the policy is asked again), then forward."""
        if self.failing:
            self.failing = False
            self._bumps += 1
        try:
            self.inner.tick(now)
        except Exception as exc:  # noqa: BLE001
            self._fail("tick", exc)

    # ------------------------------------------------------------------ the question
    def key(self, req: Req) -> Key:
        """``(0, *policy_key)`` when healthy; ``(1, arrival_s, seq)`` while the step is failing."""
        if self.failing:
            return (FALLBACK, req.arrival_s, req.seq)
        try:
            k = self.inner.key(req)
            if type(k) is not tuple:
                raise TypeError(f"key() must return a tuple, got {type(k).__name__}")
            for x in k:
                if x != x:  # NaN: sorting with it is silently wrong
                    raise ValueError(f"key() returned NaN for request {req.req_id!r}: {k!r}")
        except Exception as exc:  # noqa: BLE001
            self._fail("key", exc)
            return (FALLBACK, req.arrival_s, req.seq)
        return (HEALTHY, *k)

    def changed_apps(self) -> set[str] | None:
        """The wrapped policy's report, or ``None`` (re-key all) after a regime flip or a failure."""
        try:
            changed = self.inner.changed_apps()
        except Exception as exc:  # noqa: BLE001
            self._fail("changed_apps", exc)
            changed = None
        if self._bumps != self._bumps_reported:
            self._bumps_reported = self._bumps
            return None
        return changed

    def keys(self, reqs: Iterable[Req]) -> list[Key]:
        """Keys of a whole batch, all from one regime: if any key fails, every key is FCFS."""
        pool = list(reqs)
        out = [self.key(r) for r in pool]
        if self.failing:
            return [(FALLBACK, r.arrival_s, r.seq) for r in pool]
        return out

