"""The Policy interface: one implementation serves the simulator and the vLLM plugin (paper §4.3; DESIGN §1).

Engines tell a policy what happened (events) and ask it one question, :meth:`Policy.key`:

* events — :meth:`Policy.app_arrived`, :meth:`Policy.request_arrived`, :meth:`Policy.served`
  (service a request received over one or more iterations), :meth:`Policy.request_finished`
  (finished *or* aborted), :meth:`Policy.app_finished`, and :meth:`Policy.tick` (time passes);
* question — ``key(req)``: a totally ordered, deterministic sort key. Lower runs first. The engine
  admits waiting requests in ascending key order and, when KV memory runs out, preempts the running
  request with the *largest* key. Ties are broken by request arrival and the engine's sequence number.

Everything engine-specific (blocks, token budgets, recompute, chunked prefill) stays in the engine.
A request without an application is its own single-request application: the engine creates an
:class:`AppInfo` for it (``app_id == req_id``).

A policy keeps one record per live application in :attr:`Policy.apps` (an :class:`AppState`, which
each policy extends with its own fields), created by :meth:`Policy.new_app` on arrival and dropped when
the application finishes; the record carries the application's arrival order, which breaks ties of
equal arrival times. Engines read the capabilities they may rely on from class attributes
(``dynamic_keys``, ``app_events_keep_keys``, ``needs_cost``, ``listens_to_service``,
``reports_changed_apps``), never by probing a policy's internals.

Keys of *static* policies change only on arrivals; *dynamic* policies (``dynamic_keys = True``:
VTC, SJF, PLAS, ATLAS) change keys as service accrues, so engines re-sort before each decision.
:attr:`Policy.version` increments whenever any key may have changed, so engines may cache orders.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

Key = tuple[Any, ...]


@dataclass(slots=True)
class AppInfo:
    """What an engine knows about an application when it arrives.

    ``cost_hint`` is a declared total cost in token·iterations (cost eq. 2): the true cost in the
    simulator (the *oracle*), or ``vllm_xargs.app_cost_hint`` from a client. ``features`` are the
    arrival-time features a predictor may use (type, first-stage calls, prompt lengths, hints).
    """

    app_id: str
    arrival_s: float
    weight: float = 1.0
    app_type: str = "unknown"
    cost_hint: float | None = None
    features: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.app_id, str) or not self.app_id:
            raise ValueError(f"app_id must be a non-empty string, got {self.app_id!r}")
        if not (isinstance(self.weight, (int, float)) and math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"weight of application {self.app_id!r} must be a positive finite number, got {self.weight!r}")
        if self.cost_hint is not None and not (math.isfinite(self.cost_hint) and self.cost_hint >= 0):
            raise ValueError(f"cost_hint of application {self.app_id!r} must be a finite number >= 0, got {self.cost_hint!r}")


@dataclass(slots=True, eq=False)
class Req:
    """A request as the policy sees it. Engines create one per request and keep it attached.

    ``seq`` is the engine's monotonically increasing admission number (final tie-breaker);
    ``stage`` / ``call_index`` locate the call inside its application (ATLAS's critical path).
    """

    req_id: str
    app_id: str
    arrival_s: float
    seq: int
    prompt_tokens: int = 0
    stage: int = 0
    call_index: int = 0


@dataclass(slots=True)
class AppState:
    """A live application as a policy keeps it: what the engine said at its arrival and its arrival
    order (0, 1, 2 … over the policy's life; breaks ties of equal arrival times). Policies subclass it
    with their own per-application fields, so all of an application's state sits in one record."""

    info: AppInfo
    order: int


class Estimator(Protocol):
    """Estimates an application's total cost (token·iterations) at arrival (DESIGN §6)."""

    name: str

    def estimate(self, app: AppInfo) -> float: ...


class Policy(ABC):
    """Base class of every scheduling policy (DESIGN §1). Subclasses override what they need."""

    name: ClassVar[str] = "base"
    dynamic_keys: ClassVar[bool] = False
    #: True if app_arrived()/app_finished() never change the key of a request of *another* application
    #: (their version bumps then concern only the arriving/leaving app, which has no queued request),
    #: so engines may keep a cached order of queued requests across those two events. False is always safe.
    app_events_keep_keys: ClassVar[bool] = False
    #: True if the policy needs an application cost (an estimator; :func:`justitia.policies.make_policy`
    #: gives it the ``oracle`` by default).
    needs_cost: ClassVar[bool] = False
    #: True if :meth:`served` changes the policy's state; engines skip the per-iteration call otherwise.
    listens_to_service: ClassVar[bool] = False
    #: True if :meth:`changed_apps` reports exactly which apps' keys moved (else engines re-key everything).
    reports_changed_apps: ClassVar[bool] = False
    #: True if no key depends on the capacity or the iteration time: :meth:`set_capacity` then leaves
    #: :attr:`version` alone, so engines keep their cached orders when the plugin pushes a new iteration time.
    capacity_keeps_keys: ClassVar[bool] = False
    #: Policy failures caught and answered in FCFS order (:class:`~justitia.core.safe.SafePolicy` counts them).
    fallbacks: int = 0

    def __init__(self, capacity_tokens: float, iteration_s: float, estimator: Estimator | None = None) -> None:
        if not (capacity_tokens > 0 and math.isfinite(capacity_tokens)):
            raise ValueError(f"capacity_tokens must be a positive finite number, got {capacity_tokens!r}")
        if not (iteration_s > 0 and math.isfinite(iteration_s)):
            raise ValueError(f"iteration_s must be a positive finite number, got {iteration_s!r}")
        self.capacity_tokens = float(capacity_tokens)
        self.iteration_s = float(iteration_s)
        self.estimator = estimator
        self.apps: dict[str, AppState] = {}
        """The live applications, one record each (:meth:`new_app`), from arrival to :meth:`app_finished`."""
        self.version = 0
        self._arrivals = 0

    # ------------------------------------------------------------------ configuration
    def set_capacity(self, capacity_tokens: float, iteration_s: float | None = None) -> None:
        """Engines call this once they know the real KV capacity / iteration time (vLLM plugin)."""
        self.capacity_tokens = float(capacity_tokens)
        if iteration_s is not None:
            self.iteration_s = float(iteration_s)
        if not self.capacity_keeps_keys:
            self.version += 1

    # ------------------------------------------------------------------ events
    def app_arrived(self, app: AppInfo, now: float) -> None:
        """An application arrived (before any of its requests): its record is :meth:`new_app`'s."""
        self.apps[app.app_id] = self.new_app(app, self._arrivals, now)
        self._arrivals += 1
        self.version += 1

    def new_app(self, app: AppInfo, order: int, now: float) -> AppState:
        """The record of an arriving application (``order``: its arrival order). Policies with per-app
        state return their :class:`AppState` subclass; raising refuses the application."""
        return AppState(app, order)

    def request_arrived(self, req: Req, now: float) -> None:
        """A request of a known application entered the engine's waiting queue."""

    def served(self, req: Req, prefill_tokens: int, decode_tokens: int, held_token_iters: float, now: float) -> None:
        """``req`` was served over one or more iterations ending at ``now``: it computed
        ``prefill_tokens`` prompt tokens, generated ``decode_tokens`` tokens and held KV worth
        ``held_token_iters`` token·iterations (cost eq. 1 accrued)."""

    def request_finished(self, req: Req, now: float) -> None:
        """``req`` left the engine (finished or aborted)."""

    def app_finished(self, app_id: str, now: float) -> None:
        """The application ended (all its requests done, or abandoned); drop its state."""
        self.apps.pop(app_id, None)
        self.version += 1

    def tick(self, now: float) -> None:
        """Time passed (called before each scheduling decision)."""

    # ------------------------------------------------------------------ the question
    @abstractmethod
    def key(self, req: Req) -> Key:
        """Sort key of ``req``: lower runs first; the largest running key is preempted first."""

    def unknown_app(self, req: Req) -> KeyError:
        """The error for a request whose application never arrived (or already finished)."""
        return KeyError(f"request {req.req_id!r} belongs to unknown application {req.app_id!r}; "
                        "the engine must call app_arrived() first")

    def app_of(self, req: Req) -> AppState:
        """The record of ``req``'s application; :meth:`unknown_app` if there is none."""
        try:
            return self.apps[req.app_id]
        except KeyError:
            raise self.unknown_app(req) from None

    def changed_apps(self) -> set[str] | None:
        """Applications whose requests' keys may have changed since the previous call (the record is
        cleared by the call); ``None`` means "any key may have changed". Engines that keep a cached order
        of queued requests call this when :attr:`version` moved and re-key only those applications'
        requests. The default, ``None``, is always correct; :class:`TracksChangedApps` implements it."""
        return None

    # ------------------------------------------------------------------ helpers
    def estimate(self, app: AppInfo) -> float:
        """Cost of ``app`` from the estimator, else its hint, else 0 (unknown)."""
        if self.estimator is not None:
            return float(self.estimator.estimate(app))
        return float(app.cost_hint) if app.cost_hint is not None else 0.0

    def virtual_time(self) -> float | None:
        """Virtual time ``V`` of the policy's fair-sharing reference (clock eq. 1), ``None`` if it has none."""
        return None

    def state_entries(self) -> int:
        """Entries of per-application and per-request state the policy holds: 0 again once every
        application has ended (engines check it for leaks)."""
        return sum(len(v) for v in vars(self).values() if isinstance(v, dict))

    def describe(self) -> str:
        est = f" (estimator={self.estimator.name})" if self.estimator is not None else ""
        return f"{self.name}{est}"


class TracksChangedApps:
    """Mixin for a :class:`Policy` that reports :meth:`Policy.changed_apps` exactly: call
    :meth:`_init_changes` in ``__init__`` and :meth:`_mark` for every application whose key may have
    moved (whatever moves :attr:`Policy.version`); :meth:`set_capacity` marks all."""

    reports_changed_apps: ClassVar[bool] = True
    _changed: set[str]
    _changed_all: bool

    def _init_changes(self) -> None:
        self._changed = set()
        self._changed_all = True  # nothing was reported yet

    def _mark(self, app_id: str) -> None:
        self._changed.add(app_id)

    def changed_apps(self) -> set[str] | None:
        ch = self._changed
        self._changed = set()
        if self._changed_all:
            self._changed_all = False
            return None
        return ch

    def set_capacity(self, capacity_tokens: float, iteration_s: float | None = None) -> None:
        super().set_capacity(capacity_tokens, iteration_s)  # type: ignore[misc]
        self._changed_all = True

    def app_finished(self, app_id: str, now: float) -> None:
        super().app_finished(app_id, now)  # type: ignore[misc]
        self._changed.discard(app_id)  # it has no request left to re-key


# ---------------------------------------------------------------------- registry
# name -> "module:Class"; modules are imported on first use so the registry stays cheap. Estimators are
# not registered here: :mod:`justitia.policies` builds a policy with its estimator (core never imports
# :mod:`justitia.predict`).
_POLICIES: dict[str, str] = {
    "fcfs": "justitia.core.policies.fcfs:FCFS",
    "app_fcfs": "justitia.core.policies.app_fcfs:AppFCFS",
    "vtc": "justitia.core.policies.vtc:VTC",
    "sjf": "justitia.core.policies.sjf:SJF",
    "plas": "justitia.core.policies.autellix:PLAS",
    "atlas": "justitia.core.policies.autellix:ATLAS",
    "justitia": "justitia.core.policies.justitia:Justitia",
    "req-sjf": "justitia.core.policies.req_sjf:ReqSJF",
    "justitia-c": "justitia.core.policies.justitia_c:JustitiaC",
    "justitia-plus": "justitia.core.policies.justitia_plus:JustitiaPlus",
    "justitia-lane": "justitia.core.policies.justitia_lane:JustitiaLane",
}


def register_policy(name: str, target: str) -> None:
    """Register a policy class under ``name`` as ``"module:Class"``."""
    _POLICIES[name] = target


def policy_names() -> list[str]:
    return sorted(_POLICIES)


def split_policy_name(name: str) -> tuple[str, str]:
    """``"justitia-mlp"`` -> ``("justitia", "mlp")``: the longest registered policy name that is ``name``
    or followed by ``-``, and the estimator suffix after it (``""`` if none). Registered names may hold a
    dash themselves (``req-sjf``); raises ``ValueError`` naming the choices for an unknown policy."""
    for base in sorted(_POLICIES, key=len, reverse=True):
        if name == base:
            return base, ""
        if name.startswith(base + "-") and len(name) > len(base) + 1:
            return base, name[len(base) + 1:]
    raise ValueError(f"unknown policy {name!r}; choose one of: {', '.join(policy_names())}")


def policy_class(name: str) -> type[Policy]:
    """The class registered under the policy name ``name`` (no estimator suffix); ``ValueError`` if unknown."""
    if name not in _POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose one of: {', '.join(policy_names())}")
    module, _, attr = _POLICIES[name].partition(":")
    cls: type[Policy] = getattr(importlib.import_module(module), attr)
    return cls
