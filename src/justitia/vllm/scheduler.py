"""Justitia inside vLLM: a thin scheduler plugin over vLLM 0.32.0's own scheduler (DESIGN §1, §3).

Use it with the OpenAI server (``justitia serve`` does this for you)::

    JUSTITIA_POLICY=justitia python -m vllm.entrypoints.openai.api_server --model DIR \\
        --scheduler-cls justitia.vllm.scheduler.JustitiaScheduler ...

GPU users whose vLLM runs the async scheduler use :class:`JustitiaAsyncScheduler` instead; both are
:class:`JustitiaSchedulerMixin` over the matching vLLM class. All policy logic lives in
:mod:`justitia.core` (the same policy objects the simulator runs); this module only translates vLLM
events into :class:`~justitia.core.policy.Policy` events and the policy key into vLLM's orders.

Configuration (environment of the EngineCore process):

* ``JUSTITIA_POLICY`` — any name :func:`~justitia.policies.make_policy` accepts (``justitia``
  (default), ``fcfs``, ``vtc``, ``sjf``, ``plas``, ``atlas``, ``app_fcfs``, ``justitia-mlp`` …);
* ``JUSTITIA_ESTIMATOR`` — cost estimator for policies that need one (default ``oracle``: the
  client's ``app_cost_hint``, else a prompt-based default, :class:`~justitia.core.estimators.OracleEstimator`);
* ``JUSTITIA_APP_IDLE_S`` — the idle window that ends an application (default 2 s);
* ``JUSTITIA_TRACE_FILE`` — optional JSONL file receiving one line per app/request event.

Per-request metadata comes from the request body's ``vllm_xargs`` (vLLM puts it in
``request.sampling_params.extra_args``): ``app_id`` (string), optional ``app_type`` (string),
``weight`` (> 0), ``app_cost_hint`` (token·iterations, cost eq. 2), ``app_done`` (bool) and the
demand predictor's optional features ``first_stage_calls`` (default 1), ``hint_stages``, ``hint_calls``
(integers >= 0, copied into ``AppInfo.features``; :mod:`justitia.predict.features`). Fields
that are invalid are ignored with a warning naming them (the HTTP edge already refuses them with a
400 when the server runs :class:`justitia.vllm.middleware.ValidateXargs`); the engine never dies on
bad input, and the policy is wrapped in :class:`~justitia.core.safe.SafePolicy`.

Application lifetime (the rule clients rely on):

1. An application *starts* with the first request carrying its ``app_id`` (``app_arrived``; the
   ``weight``/``app_type``/``app_cost_hint`` of that first request are the application's).
   A request without ``app_id`` is its own single-request application.
2. It *ends* (``app_finished``; all its per-app state is dropped) when all its requests are done
   (finished or aborted) and either the last one carried ``app_done: true`` — then at once — or no
   new request with that ``app_id`` arrived within ``JUSTITIA_APP_IDLE_S`` seconds (checked at each
   ``schedule()``). A request with the same ``app_id`` arriving later starts a new application.

How the policy drives vLLM (DESIGN §1 "lower key runs first; preempt the largest key"):

* ``self.waiting`` and ``self.kv_holding_waiting`` are :class:`PolicyRequestQueue` s ordered by
  ``policy.key``; they re-key lazily, only when ``policy.version`` changed (or keys are dynamic).
* ``self.running`` is sorted by key at the start of each ``schedule()`` and vLLM runs in its FCFS
  mode, whose preemption takes ``self.running[-1]`` — so the victim is the running request with the
  largest key, and token budget goes to running requests in key order.
* KV capacity ``M`` = the engine's real block count × block size; the iteration time is an EWMA of
  the wall time from ``schedule()`` to the end of ``update_from_output()``; both are pushed with
  ``policy.set_capacity`` (the iteration time only when it moved by more than 25 %, at most once a second, since every
  push may bump ``policy.version`` and so re-key the queues).
* ``update_from_output`` reports each scheduled request's service: prefill tokens, generated tokens,
  and the KV tokens it held on each generating step (``prompt + outputs so far``: summed over a call
  this is exactly cost eq. 1, so an exact ``app_cost_hint`` is never "exceeded").
* ``policy.tick(now)`` runs before every scheduling decision.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import operator
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.request_queue import RequestQueue, SchedulingPolicy
from vllm.v1.core.sched.scheduler import Scheduler

from justitia.core.policy import AppInfo, Key, Policy, Req, split_policy_name
from justitia.core.safe import SafePolicy
from justitia.policies import make_policy
from justitia.vllm.metrics import recorder as metrics_recorder

if TYPE_CHECKING:
    from vllm.v1.core.sched.output import SchedulerOutput
    from vllm.v1.outputs import ModelRunnerOutput
    from vllm.v1.request import Request

log = logging.getLogger("justitia.vllm")

DEFAULT_ITERATION_S = 0.05
"""Iteration time assumed until the first step has been measured."""
EWMA_ALPHA = 0.2
RESEND_REL = 0.25  # push a new iteration time to the policy when it moved by more than this ...
RESEND_MIN_S = 1.0  # ... and at most once a second (each push may bump policy.version: a full re-key)


# ---------------------------------------------------------------------- the waiting queue
class PolicyRequestQueue(RequestQueue):
    """vLLM waiting queue ordered by the policy key (lowest first); see the module docstring.

    Entries are ``(key, seq, request)`` kept sorted ascending. Costs: ``add_request`` O(log n) to find
    the place plus O(n) list insert (a memmove) while the order is valid, O(1) otherwise;
    ``peek``/``pop`` O(1) amortised plus a full re-key O(n log n) after ``policy.version`` changed
    (or every call to :meth:`refresh` for dynamic-key policies); ``remove_requests`` O(n).
    """

    def __init__(self, owner: "JustitiaSchedulerMixin") -> None:
        self._owner = owner
        self._items: list[tuple[Key, int, Request]] = []
        self._head = 0  # items[:head] were popped (compacted lazily)
        self._sorted = True
        self._version = -1
        self._seq = 0

    # -- ordering
    def _key(self, request: Request) -> Key:
        return self._owner._key_of(request)

    def _live(self) -> list[tuple[Key, int, Request]]:
        if self._head:
            del self._items[: self._head]
            self._head = 0
        return self._items

    def refresh(self, force: bool = False) -> None:
        """Re-key and re-sort if the policy's keys may have changed (cheap no-op otherwise)."""
        pol = self._owner.justitia_policy
        if force or pol.version != self._version or pol.dynamic_keys:
            items = self._live()
            self._items = sorted(((self._key(r), s, r) for _, s, r in items), key=_entry_key)
            self._version = pol.version
            self._sorted = True
        elif not self._sorted:
            self._live().sort(key=_entry_key)
            self._sorted = True

    def _ensure(self) -> None:
        pol = self._owner.justitia_policy
        if not self._sorted or pol.version != self._version:
            self.refresh()

    # -- RequestQueue API
    def add_request(self, request: Request) -> None:
        self._seq += 1
        entry = (self._key(request), self._seq, request)
        if self._sorted and self._version == self._owner.justitia_policy.version:
            items = self._live()
            bisect.insort(items, entry, key=_entry_key)
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
        # No "front" under a policy order: a preempted/skipped request goes back by its key.
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


def _entry_key(e: tuple[Key, int, Any]) -> tuple[Key, int]:
    return (e[0], e[1])


_cached_key = operator.attrgetter("justitia_key")
COUNT_FEATURES: tuple[str, ...] = ("first_stage_calls", "hint_stages", "hint_calls")
"""Optional ``vllm_xargs`` integers passed to ``AppInfo.features`` (the demand predictor's inputs)."""
MAX_COUNT_FEATURE = 10**9  # the HTTP edge (justitia.vllm.middleware) refuses larger ones too
_UNTRACKED = 9  # tier above SafePolicy's healthy (0) and fallback (1) keys


# ---------------------------------------------------------------------- per-app bookkeeping
@dataclass(slots=True)
class _App:
    info: AppInfo
    live: set[str] = field(default_factory=set)
    done_requested: bool = False
    requests_seen: int = 0


def _policy_from_env(capacity_tokens: float, iteration_s: float) -> Policy:
    name = os.environ.get("JUSTITIA_POLICY", "justitia").strip() or "justitia"
    estimator = os.environ.get("JUSTITIA_ESTIMATOR", "").strip() or None
    try:
        if estimator is not None and split_policy_name(name)[1]:
            estimator = None  # "justitia-mlp" names its estimator itself
        policy = make_policy(name, capacity_tokens, iteration_s, estimator=estimator)
    except ValueError as e:
        raise ValueError(f"JUSTITIA_POLICY={name!r} / JUSTITIA_ESTIMATOR={estimator!r}: {e}") from None
    return policy


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        v = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name}={raw!r} must be a finite number >= 0")
    return v


class JustitiaSchedulerMixin:
    """Policy plumbing shared by :class:`JustitiaScheduler` and :class:`JustitiaAsyncScheduler`."""

    # attributes provided by vLLM's Scheduler
    running: list[Request]
    waiting: Any
    kv_holding_waiting: Any
    requests: dict[str, Request]
    policy: SchedulingPolicy
    block_size: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        if self.policy != SchedulingPolicy.FCFS:
            log.warning("justitia: ignoring --scheduling-policy %s; the order comes from JUSTITIA_POLICY",
                        self.policy.value)
            self.policy = SchedulingPolicy.FCFS  # preemption victim = running[-1] = largest key
        self.app_idle_s = _env_float("JUSTITIA_APP_IDLE_S", 2.0)
        self.capacity_tokens = self._kv_capacity_tokens()
        self.iteration_s = DEFAULT_ITERATION_S
        self._sent_iteration_s = DEFAULT_ITERATION_S
        self.justitia_policy: Policy = SafePolicy(_policy_from_env(self.capacity_tokens, self.iteration_s))
        self._t0 = time.monotonic()
        self._seq = 0
        self._reqs: dict[str, Req] = {}
        self._apps: dict[str, _App] = {}
        self._idle: OrderedDict[str, float] = OrderedDict()  # app_id -> time its last request ended
        self._step_started: float | None = None
        self._metrics = metrics_recorder()  # Prometheus series (justitia.vllm.metrics)
        self._running_version = -1
        self._sent_at: float | None = None
        self.apps_seen = 0
        self.apps_finished = 0
        self.steps = 0
        self._trace_lock = threading.Lock()
        trace = os.environ.get("JUSTITIA_TRACE_FILE")
        self._trace = open(trace, "a", buffering=1, encoding="utf-8") if trace else None  # noqa: SIM115
        self._prof: dict[str, float] | None = None if self._trace is None else dict.fromkeys(
            ("steps", "tokens", "reqs", "new_reqs", "plugin_s", "sched_s", "exec_s", "update_s", "loop_s",
             "random_steps", "random_reqs", "random_exec_s"), 0.0)
        self._prof_random = 0  # requests sampling at temperature > 0 in the step in flight
        self._prof_sched_end: float | None = None
        self._prof_last_end: float | None = None
        self.waiting = PolicyRequestQueue(self)
        self.kv_holding_waiting = PolicyRequestQueue(self)
        self._emit("start", policy=self.justitia_policy.describe(), capacity_tokens=self.capacity_tokens,
                   block_size=self.block_size, app_idle_s=self.app_idle_s, scheduler=type(self).__name__)
        log.info("justitia: policy %s, KV capacity M=%d tokens, app idle window %.1f s",
                 self.justitia_policy.describe(), self.capacity_tokens, self.app_idle_s)

    # ------------------------------------------------------------------ helpers
    def _kv_capacity_tokens(self) -> int:
        """``M``: usable KV blocks × block size (the block pool keeps one null block)."""
        kv_cfg = getattr(self, "kv_cache_config", None)
        blocks = getattr(kv_cfg, "num_blocks", None) or getattr(self, "cache_config").num_gpu_blocks
        return max(int(blocks) - 1, 1) * int(self.block_size)

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _key_of(self, request: Request) -> Key:
        """Fresh policy key of ``request``; also cached on it as ``request.justitia_key`` (valid
        until ``policy.version`` changes, see :meth:`_sort_running`)."""
        req = self._reqs.get(request.request_id)
        # a request the plugin does not track (should not happen) sorts last instead of raising
        k = self.justitia_policy.key(req) if req is not None else (_UNTRACKED, request.arrival_time)
        request.justitia_key = k  # type: ignore[attr-defined]
        return k

    def _sort_running(self) -> None:
        """Order ``self.running`` by key so vLLM's FCFS-mode victim ``running[-1]`` is the largest
        key. Keys are recomputed only when ``policy.version`` changed (or keys are dynamic); otherwise
        the cached keys are used and Timsort on the (nearly) sorted list is O(n)."""
        running = self.running
        pol = self.justitia_policy
        v = pol.version
        if v != self._running_version or pol.dynamic_keys:
            key_of = self._key_of
            for r in running:
                key_of(r)
            self._running_version = v
        if len(running) > 1:
            running.sort(key=_cached_key)

    def _emit(self, event: str, **fields: Any) -> None:
        if self._trace is None:
            return
        line = json.dumps({"event": event, "t": round(self._now(), 6), **fields}, default=str)
        with self._trace_lock:
            self._trace.write(line + "\n")

    @staticmethod
    def _xargs(request: Request) -> dict[str, Any]:
        sp = request.sampling_params
        xa = getattr(sp, "extra_args", None) if sp is not None else None
        return xa if isinstance(xa, dict) else {}

    def _parse_app(self, request: Request) -> tuple[str | None, dict[str, Any]]:
        """``(app_id or None, fields)`` from ``vllm_xargs``; invalid fields are dropped with a warning."""
        xa = self._xargs(request)
        out: dict[str, Any] = {}
        rid = request.request_id

        def bad(name: str, why: str) -> None:
            log.warning("justitia: request %s: ignoring vllm_xargs.%s=%r (%s)", rid, name, xa.get(name), why)

        app_id = xa.get("app_id")
        if app_id is not None and not (isinstance(app_id, str) and app_id.strip()):
            bad("app_id", "must be a non-empty string")
            app_id = None
        if "app_type" in xa:
            if isinstance(xa["app_type"], str) and xa["app_type"].strip():
                out["app_type"] = xa["app_type"]
            else:
                bad("app_type", "must be a non-empty string")
        if "weight" in xa:
            w = xa["weight"]
            if isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0:
                out["weight"] = float(w)
            else:
                bad("weight", "must be a positive finite number")
        if "app_cost_hint" in xa:
            c = xa["app_cost_hint"]
            if isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) and c >= 0:
                out["cost_hint"] = float(c)
            else:
                bad("app_cost_hint", "must be a finite number >= 0")
        for name in COUNT_FEATURES:
            if name in xa:
                n = xa[name]
                if isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_COUNT_FEATURE:
                    out[name] = n
                else:
                    bad(name, f"must be an integer between 0 and {MAX_COUNT_FEATURE}")
        if "app_done" in xa:
            # vLLM's request model types vllm_xargs values as str | int | float, so a JSON `true`
            # reaches the engine as 1: accept booleans, 0/1 and "true"/"false"
            d = xa["app_done"]
            if isinstance(d, bool) or (isinstance(d, int) and d in (0, 1)):
                out["app_done"] = bool(d)
            elif isinstance(d, str) and d.strip().lower() in ("true", "false"):
                out["app_done"] = d.strip().lower() == "true"
            else:
                bad("app_done", "must be true or false")
        return app_id, out

    @staticmethod
    def _features(fields: dict[str, Any], prompt: int, own: bool) -> dict[str, Any]:
        """``AppInfo.features`` of a new application (keys of :mod:`justitia.predict.features`):
        the client's optional ``first_stage_calls`` (default 1), ``hint_stages``, ``hint_calls``, and
        the first stage's prompt tokens. Only the first request is seen when the application arrives,
        so ``prompt_tokens_total`` = its prompt × ``first_stage_calls`` (its siblings are assumed
        alike) and ``prompt_tokens_max`` = its prompt."""
        feats: dict[str, Any] = {"first_stage_calls": 1, "own": own}
        for name in COUNT_FEATURES:
            if name in fields:
                feats[name] = fields[name]
        feats["prompt_tokens_total"] = prompt * max(int(feats["first_stage_calls"]), 1)
        feats["prompt_tokens_max"] = prompt
        return feats

    # ------------------------------------------------------------------ counters (tests, no-leak checks)
    def justitia_stats(self) -> dict[str, int]:
        """Sizes of all per-app / per-request state; all return to 0 once the engine is idle and
        every application has ended."""
        pol = self.justitia_policy
        return {
            "apps_seen": self.apps_seen,
            "apps_finished": self.apps_finished,
            "active_apps": len(self._apps),
            "idle_apps": len(self._idle),
            "tracked_requests": len(self._reqs),
            "policy_apps": len(pol.apps),
            "policy_state_entries": pol.state_entries(),
        }

    # ------------------------------------------------------------------ application lifecycle
    def _end_app(self, app_id: str, now: float, why: str) -> None:
        app = self._apps.pop(app_id, None)
        since = self._idle.pop(app_id, None)
        if app is None:
            return
        # ACT: arrival to the end of its last request (an idle-ended app ended when it went idle)
        self._metrics.app_completed(app.info.app_type, (now if since is None else since) - app.info.arrival_s)
        self.justitia_policy.app_finished(app_id, now)
        self.apps_finished += 1
        self._emit("app_finished", app_id=app_id, why=why, requests=app.requests_seen)

    def _expire_idle_apps(self, now: float) -> None:
        idle = self._idle
        while idle:
            app_id, since = next(iter(idle.items()))
            if now - since < self.app_idle_s:
                break
            self._end_app(app_id, now, "idle")

    # ------------------------------------------------------------------ vLLM hooks
    def add_request(self, request: Request) -> None:
        rid = request.request_id
        if rid in self.requests or rid in self._reqs:
            super().add_request(request)  # type: ignore[misc]  # streaming-input continuation
            return
        now = self._now()
        app_id, fields = self._parse_app(request)
        own = app_id is None
        if own:
            app_id = rid
        app = self._apps.get(app_id)
        prompt = int(getattr(request, "num_prompt_tokens", 0) or 0)
        if app is None:
            info = AppInfo(
                app_id=app_id,
                arrival_s=now,
                weight=fields.get("weight", 1.0),
                app_type=fields.get("app_type", "unknown"),
                cost_hint=fields.get("cost_hint"),
                features=self._features(fields, prompt, own),
            )
            app = self._apps[app_id] = _App(info)
            self.apps_seen += 1
            self.justitia_policy.app_arrived(info, now)
            self._emit("app_arrived", app_id=app_id, app_type=info.app_type, weight=info.weight,
                       cost_hint=info.cost_hint, own=own)
        else:
            self._idle.pop(app_id, None)
        self._seq += 1
        req = Req(req_id=rid, app_id=app_id, arrival_s=now, seq=self._seq, prompt_tokens=prompt,
                  call_index=app.requests_seen)
        app.requests_seen += 1
        app.live.add(rid)
        if own or fields.get("app_done"):
            app.done_requested = True
        self._reqs[rid] = req
        self.justitia_policy.request_arrived(req, now)
        self._emit("request_arrived", req_id=rid, app_id=app_id, prompt_tokens=prompt)
        super().add_request(request)  # type: ignore[misc]

    def _free_request(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        out = super()._free_request(request, *args, **kwargs)  # type: ignore[misc]
        self._request_done(request)
        return out

    def _request_done(self, request: Request) -> None:
        req = self._reqs.pop(request.request_id, None)
        if req is None:
            return
        now = self._now()
        self.justitia_policy.request_finished(req, now)
        status = getattr(request.status, "name", str(request.status))
        self._emit("request_finished", req_id=req.req_id, app_id=req.app_id, status=status,
                   output_tokens=len(request.output_token_ids))
        app = self._apps.get(req.app_id)
        if app is None:
            return
        app.live.discard(req.req_id)
        if not app.live:
            if app.done_requested:
                self._end_app(req.app_id, now, "app_done")
            else:
                self._idle[req.app_id] = now
                self._idle.move_to_end(req.app_id)

    def schedule(self, *args: Any, **kwargs: Any) -> SchedulerOutput:
        t = time.monotonic()
        self._step_started = t
        self._before_schedule(t - self._t0)
        if self._prof is None:
            return super().schedule(*args, **kwargs)  # type: ignore[misc]
        t1 = time.monotonic()
        out = super().schedule(*args, **kwargs)  # type: ignore[misc]
        self._prof_step(t, t1, out)
        return out

    def _before_schedule(self, now: float) -> None:
        """Everything the plugin does before vLLM's own ``schedule()``: end idle applications,
        ``policy.tick``, re-key the queues if needed, order ``running`` by key."""
        self._expire_idle_apps(now)
        self.justitia_policy.tick(now)
        self.waiting.refresh()
        self.kv_holding_waiting.refresh()
        self._sort_running()
        self._sync_metrics(force=False)

    def _sync_metrics(self, force: bool) -> None:
        pol = self.justitia_policy
        rec = self._metrics
        rec.set_state(len(self._apps), pol.virtual_time())
        rec.sync_fallbacks(pol.fallbacks)
        rec.flush(force=force)

    def _preempt_request(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        self._metrics.preempted()
        if self._trace is not None:
            req = self._reqs.get(request.request_id)
            self._emit("preempted", req_id=request.request_id, app_id=req.app_id if req else None,
                       computed_tokens=request.num_computed_tokens, output_tokens=len(request.output_token_ids),
                       key=getattr(request, "justitia_key", None))
        return super()._preempt_request(request, *args, **kwargs)  # type: ignore[misc]

    def update_from_output(self, scheduler_output: SchedulerOutput, model_runner_output: ModelRunnerOutput) -> Any:
        t = time.monotonic()
        now = t - self._t0
        self._account(scheduler_output, model_runner_output, now)
        out = super().update_from_output(scheduler_output, model_runner_output)  # type: ignore[misc]
        if self._prof is not None:
            self._prof_update(t, scheduler_output)
        if self._step_started is not None and scheduler_output.total_num_scheduled_tokens > 0:
            self._observe_iteration(time.monotonic() - self._step_started)
            self._step_started = None
        self.steps += 1
        if not self.has_requests():  # going idle: write the series now (flushes are rate-limited)
            self._sync_metrics(force=True)
        return out

    # ------------------------------------------------------------------ step profile (trace only)
    def _prof_step(self, t0: float, t1: float, so: SchedulerOutput) -> None:
        """Step-time decomposition written to the trace (``profile`` events): ``plugin_s`` (our
        work before vLLM's schedule), ``sched_s`` (vLLM's schedule), ``exec_s`` (schedule end to
        update_from_output: the model run), ``update_s`` (update_from_output incl. our accounting),
        ``loop_s`` (update end to the next schedule: the engine loop / output path); ``random_*``:
        steps with a request sampling at temperature > 0 (vLLM's random-sampling path)."""
        p = self._prof
        assert p is not None
        t2 = time.monotonic()
        if self._prof_last_end is not None:
            p["loop_s"] += t0 - self._prof_last_end
        p["plugin_s"] += t1 - t0
        p["sched_s"] += t2 - t1
        self._prof_sched_end = t2
        if so.total_num_scheduled_tokens:
            p["steps"] += 1
            p["tokens"] += so.total_num_scheduled_tokens
            p["reqs"] += len(so.num_scheduled_tokens)
            p["new_reqs"] += len(so.scheduled_new_reqs)
            requests = self.requests
            rnd = 0
            for rid in so.num_scheduled_tokens:
                r = requests.get(rid)
                sp = r.sampling_params if r is not None else None
                if sp is not None and sp.temperature > 0:
                    rnd += 1
            self._prof_random = rnd
            if rnd:
                p["random_steps"] += 1
                p["random_reqs"] += rnd

    def _prof_update(self, t_start: float, so: SchedulerOutput) -> None:
        p = self._prof
        assert p is not None
        end = time.monotonic()
        if self._prof_sched_end is not None:
            p["exec_s"] += t_start - self._prof_sched_end
            if self._prof_random:
                p["random_exec_s"] += t_start - self._prof_sched_end
            self._prof_sched_end = None
        p["update_s"] += end - t_start
        self._prof_last_end = end if self.has_requests() else None
        if p["steps"] and p["steps"] % 100 == 0 and so.total_num_scheduled_tokens:
            self._emit("profile", **{k: round(v, 6) for k, v in p.items()})

    # ------------------------------------------------------------------ service and capacity
    def _account(self, so: SchedulerOutput, mro: ModelRunnerOutput, now: float) -> None:
        """Report this step's service per request (cost eq. 1 accrual; see the module docstring)."""
        sampled = mro.sampled_token_ids
        index = mro.req_id_to_index
        served = self.justitia_policy.served
        reqs = self._reqs
        requests = self.requests
        n_sampled = len(sampled)
        apps = self._apps
        add_served = self._metrics.add_served
        for rid, n in so.num_scheduled_tokens.items():
            req = reqs.get(rid)
            if req is None:
                continue
            request = requests.get(rid)
            if request is None:
                continue
            computed = request.num_computed_tokens  # already includes this step's n tokens
            before = computed - n
            prompt = request.num_prompt_tokens
            prefill = 0 if before >= prompt else min(n, prompt - before)
            i = index.get(rid)
            gen = len(sampled[i]) if i is not None and i < n_sampled else 0
            held = float(computed + gen) if gen else 0.0
            served(req, prefill, gen, held, now)
            if held:
                app = apps.get(req.app_id)
                if app is not None:
                    add_served(app.info.app_type, held)

    def _observe_iteration(self, dt: float) -> None:
        if not (dt > 0 and math.isfinite(dt)):
            return
        self.iteration_s = (1 - EWMA_ALPHA) * self.iteration_s + EWMA_ALPHA * dt if self.steps else dt
        now = time.monotonic()
        if (abs(self.iteration_s - self._sent_iteration_s) > RESEND_REL * self._sent_iteration_s
                and (self._sent_at is None or now - self._sent_at >= RESEND_MIN_S)):
            self._sent_iteration_s = self.iteration_s
            self._sent_at = now
            self.justitia_policy.set_capacity(self.capacity_tokens, self.iteration_s)

    def shutdown(self) -> None:
        try:
            super().shutdown()  # type: ignore[misc]
        finally:
            if self._trace is not None:
                self._emit("shutdown", stats=self.justitia_stats(), profile=self._prof)
                self._trace.close()
                self._trace = None


class JustitiaScheduler(JustitiaSchedulerMixin, Scheduler):
    """vLLM's synchronous :class:`Scheduler` (the CPU path) driven by a :mod:`justitia.core` policy."""


class JustitiaAsyncScheduler(JustitiaSchedulerMixin, AsyncScheduler):
    """vLLM's :class:`AsyncScheduler` (the GPU default) driven by a :mod:`justitia.core` policy."""
