"""Justitia inside vLLM: a thin scheduler plugin over vLLM 0.32.0's own scheduler (DESIGN §1, §3; paper §4.3).

Use it with the OpenAI server (``justitia serve`` does this for you)::

    JUSTITIA_POLICY=justitia python -m vllm.entrypoints.openai.api_server --model DIR \\
        --scheduler-cls justitia.vllm.scheduler.JustitiaScheduler ...

GPU users whose vLLM runs the async scheduler use :class:`JustitiaAsyncScheduler`; both are
:class:`JustitiaSchedulerMixin` over the matching vLLM class. The policy is a :mod:`justitia.core`
policy (the one the simulator runs); this module only hooks vLLM: requests go to the
:class:`~justitia.vllm.apps.AppTracker` (tags from :mod:`justitia.vllm.xargs`), the queues are
:class:`~justitia.vllm.request_queue.PolicyRequestQueue` s, the trace is :mod:`justitia.vllm.profiler`.

Configuration (environment of the EngineCore process): ``JUSTITIA_POLICY`` (any name
:func:`~justitia.policies.make_policy` accepts; default ``justitia``), ``JUSTITIA_ESTIMATOR``
(default ``oracle``), ``JUSTITIA_APP_IDLE_S`` (the idle window that ends an application, 2 s),
``JUSTITIA_TRACE_FILE``. Invalid tags are dropped with a warning (the HTTP edge refuses them with a
400); the engine never dies on bad input, and the policy runs inside :class:`~justitia.core.safe.SafePolicy`.

How the policy drives vLLM ("lower key runs first; preempt the largest key"):

* the waiting queues are ordered by ``policy.key``; ``self.running`` is sorted by key before each
  ``schedule()`` and vLLM runs in its FCFS mode, whose preemption takes ``running[-1]`` — so the
  victim is the running request with the largest key, and token budget goes in key order;
* ``--scheduling-policy priority``: vLLM's ``request.priority`` becomes strict bands — the key is
  ``(priority, policy key)``: a lower priority value always runs first and is preempted last, and
  inside a band the policy orders (how gateways layer fairness under priority);
* ``M`` = the engine's real block count × block size; the iteration time is an EWMA of the wall time
  from ``schedule()`` to the end of ``update_from_output()``, pushed with ``policy.set_capacity`` when
  it moved by more than 25 %, at most once a second (every push may re-key the queues);
* service (cost eq. 1: the ``t``-th generated token of a call with prompt ``p`` holds ``p + t`` KV
  tokens) is reported in closed form from each request's token counts: when a request finishes or is
  preempted, and for all running requests every step under dynamic-key policies (VTC, SJF, PLAS,
  ATLAS) and every :data:`SERVICE_EVERY` steps otherwise (Justitia only needs it to refine an
  under-estimate), so a decode step costs no per-request Python work;
* ``policy.tick(now)`` runs before every scheduling decision.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import TYPE_CHECKING, Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.request_queue import SchedulingPolicy
from vllm.v1.core.sched.scheduler import Scheduler

from justitia.core.cost import held_token_iters
from justitia.core.policy import Key, Policy, split_policy_name
from justitia.core.safe import SafePolicy
from justitia.policies import make_policy
from justitia.vllm.apps import AppTracker
from justitia.vllm.metrics import recorder as metrics_recorder
from justitia.vllm.profiler import StepProfiler, TraceWriter
from justitia.vllm.request_queue import PolicyRequestQueue
from justitia.vllm.xargs import parse_engine_xargs

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
SERVICE_EVERY = 32
"""Steps between two service reports for running requests under static-key policies."""
METRICS_EVERY_S = 0.1
"""At most this often the gauges are handed to the Prometheus recorder (and when the engine goes idle)."""
_UNTRACKED = 9  # tier above SafePolicy's healthy (0) and fallback (1) keys


def _policy_from_env(capacity_tokens: float, iteration_s: float) -> Policy:
    name = os.environ.get("JUSTITIA_POLICY", "justitia").strip() or "justitia"
    estimator = os.environ.get("JUSTITIA_ESTIMATOR", "").strip() or None
    try:
        if estimator is not None and split_policy_name(name)[1]:
            estimator = None  # "justitia-mlp" names its estimator itself
        return make_policy(name, capacity_tokens, iteration_s, estimator=estimator)
    except ValueError as e:
        raise ValueError(f"JUSTITIA_POLICY={name!r} / JUSTITIA_ESTIMATOR={estimator!r}: {e}") from None


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
    #: False on a scheduler built without ``__init__`` (``object.__new__``, as vLLM's own unit tests
    #: build one and set only vLLM's fields): the hooks that such code reaches then act as vLLM's alone.
    _justitia_ready: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self.priority_bands = self.policy == SchedulingPolicy.PRIORITY
        self.policy = SchedulingPolicy.FCFS  # preemption victim = running[-1] = largest key
        self._t0 = time.monotonic()
        self._wall0 = time.time() - self._now()  # wall clock at plugin time 0 (vLLM's arrival_time is wall clock)
        self.capacity_tokens = self._kv_capacity_tokens()
        self.iteration_s = self._sent_iteration_s = DEFAULT_ITERATION_S
        self._sent_at: float | None = None
        pol = self.justitia_policy = SafePolicy(_policy_from_env(self.capacity_tokens, self.iteration_s))
        self._service_every = 1 if pol.dynamic_keys else (SERVICE_EVERY if pol.listens_to_service else 0)
        self._since_service = 0
        self._trace = TraceWriter(os.environ.get("JUSTITIA_TRACE_FILE"), self._now)
        self._prof = StepProfiler(self._trace) if self._trace.enabled else None
        self._metrics = metrics_recorder()  # Prometheus series (justitia.vllm.metrics)
        self.tracker = AppTracker(pol, _env_float("JUSTITIA_APP_IDLE_S", 2.0), self._trace.emit,
                                  self._metrics.app_completed)
        self._keys: dict[Request, Key] = {}  # last key handed out per request (running sort, trace)
        self._placed: set[Request] = set()  # running requests in key order as of the last sort
        self._cursor: dict[str, list[Any]] = {}  # req_id -> [Req, outputs reported, prompt tokens reported]
        self._running_version = -1
        self._queues_version = -1  # policy.version at the last refresh of the two waiting queues
        self._metrics_next = 0.0  # self._now() from which the gauges may be synced again
        self._step_started: float | None = None
        self.steps = 0
        self.waiting = PolicyRequestQueue(pol, self._key_of)
        self.kv_holding_waiting = PolicyRequestQueue(pol, self._key_of)
        self._trace.emit("start", policy=pol.describe(), capacity_tokens=self.capacity_tokens,
                         block_size=self.block_size, app_idle_s=self.app_idle_s, scheduler=type(self).__name__,
                         priority_bands=self.priority_bands)
        self._justitia_ready = True
        log.info("justitia: policy %s%s, KV capacity M=%d tokens, app idle window %.1f s", pol.describe(),
                 " inside vLLM priority bands" if self.priority_bands else "", self.capacity_tokens, self.app_idle_s)

    # ------------------------------------------------------------------ helpers
    @property
    def app_idle_s(self) -> float:
        return self.tracker.idle_s

    @app_idle_s.setter
    def app_idle_s(self, value: float) -> None:
        self.tracker.idle_s = value

    @property
    def apps_seen(self) -> int:
        return self.tracker.apps_seen

    @property
    def apps_finished(self) -> int:
        return self.tracker.apps_finished

    def _kv_capacity_tokens(self) -> int:
        """``M``: usable KV blocks × block size (the block pool keeps one null block)."""
        kv_cfg = getattr(self, "kv_cache_config", None)
        blocks = getattr(kv_cfg, "num_blocks", None) or getattr(self, "cache_config").num_gpu_blocks
        return max(int(blocks) - 1, 1) * int(self.block_size)

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _key_of(self, request: Request) -> Key:
        """Fresh key of ``request`` (``(priority, policy key)`` in priority-band mode); remembered
        until ``policy.version`` changes (:meth:`_sort_running`)."""
        cur = self._cursor.get(request.request_id)
        # a request the plugin does not track (should not happen) sorts last instead of raising
        k = self.justitia_policy.key(cur[0]) if cur is not None else (_UNTRACKED, request.arrival_time)
        if self.priority_bands:
            k = (request.priority, k)
        self._keys[request] = k
        return k

    def _sort_running(self) -> None:
        """Order ``self.running`` by key so vLLM's FCFS-mode victim ``running[-1]`` is the largest key.

        vLLM changes ``running`` only by appending (admissions), popping the tail (preemption) and
        order-preserving removals, so after one sort only the requests appended since can be out of
        place: when no key changed (``policy.version``, static keys) only that suffix is checked, and
        the list is re-sorted only if it is out of order. O(appended) per step in the steady state."""
        running = self.running
        pol = self.justitia_policy
        keys = self._keys
        placed = self._placed
        if pol.version != self._running_version or pol.dynamic_keys:
            key_of = self._key_of
            for r in running:
                key_of(r)
            self._running_version = pol.version
        else:
            i = len(running)
            while i and running[i - 1] not in placed:
                i -= 1
            if i == len(running):
                return  # nothing appended: still sorted
            prev = keys[running[i - 1]] if i else None
            for r in running[i:]:
                k = keys[r]
                if prev is not None and k < prev:
                    break
                prev = k
                placed.add(r)
            else:
                return  # the appended requests extend the order
        if len(running) > 1:
            running.sort(key=keys.__getitem__)
        placed.clear()
        placed.update(running)

    def justitia_stats(self) -> dict[str, int]:
        """Sizes of all per-app / per-request state; all return to 0 once the engine is idle and
        every application has ended."""
        pol = self.justitia_policy
        return {**self.tracker.stats(), "policy_apps": len(pol.apps), "policy_state_entries": pol.state_entries(),
                "plugin_request_entries": len(self._keys) + len(self._cursor) + len(self._placed)}

    # ------------------------------------------------------------------ vLLM hooks: requests
    def add_request(self, request: Request) -> None:
        rid = request.request_id
        if rid in self.requests or rid in self._cursor:
            super().add_request(request)  # type: ignore[misc]  # streaming-input continuation
            return
        tags, problems = parse_engine_xargs(getattr(request.sampling_params, "extra_args", None))
        for name, why in problems:
            log.warning("justitia: request %s: ignoring vllm_xargs.%s (%s)", rid, name, why)
        prompt = int(getattr(request, "num_prompt_tokens", 0) or 0)
        # the request's arrival is vLLM's own (request.arrival_time, set where it entered vLLM) on the
        # plugin's clock: every policy key ends with it, so ties of the policy's order and FCFS itself
        # follow vLLM's (arrival_time, …) order, not the order add_request() happened to be called in
        req = self.tracker.request_arrived(rid, tags, prompt, self._now(), request.arrival_time - self._wall0)
        self._cursor[rid] = [req, 0, 0]
        super().add_request(request)  # type: ignore[misc]

    def _free_request(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        out = super()._free_request(request, *args, **kwargs)  # type: ignore[misc]
        if not self._justitia_ready:
            return out
        now = self._now()
        cur = self._cursor.pop(request.request_id, None)
        if cur is not None:
            self._report_service(request, cur, now)
        self._keys.pop(request, None)
        self._placed.discard(request)
        status = getattr(request.status, "name", str(request.status))
        self.tracker.request_done(request.request_id, now, status=status,
                                  output_tokens=len(request.output_token_ids))
        return out

    def _preempt_request(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        self._metrics.preempted()
        cur = self._cursor.get(request.request_id)
        if cur is not None:
            self._report_service(request, cur, self._now())
        if self._trace.enabled:
            self._trace.emit("preempted", req_id=request.request_id, app_id=cur[0].app_id if cur else None,
                             computed_tokens=request.num_computed_tokens, output_tokens=len(request.output_token_ids),
                             key=self._keys.get(request))
        self._placed.discard(request)  # it leaves running; if it comes back it is appended anew
        out = super()._preempt_request(request, *args, **kwargs)  # type: ignore[misc]
        if cur is not None:
            cur[2] = 0  # its prompt will be computed again (recompute preemption)
        return out

    # ------------------------------------------------------------------ vLLM hooks: the step
    def schedule(self, *args: Any, **kwargs: Any) -> SchedulerOutput:
        t = time.monotonic()
        self._step_started = t
        self._before_schedule(t - self._t0)
        if self._prof is None:
            return super().schedule(*args, **kwargs)  # type: ignore[misc]
        t1 = time.monotonic()
        out = super().schedule(*args, **kwargs)  # type: ignore[misc]
        self._prof.scheduled(t, t1, out, self.requests)
        return out

    def _before_schedule(self, now: float) -> None:
        """Everything the plugin does before vLLM's own ``schedule()``: end idle applications,
        ``policy.tick``, re-key the queues if needed, order ``running`` by key.

        Runs every step, so each part is skipped by an inline check when it has nothing to do: no
        idle application, no key moved since the queues were refreshed (``policy.version``, static
        keys), nothing appended to ``running`` since it was sorted (:meth:`_sort_running`)."""
        tracker = self.tracker
        if tracker.idle:
            tracker.expire_idle(now)
        pol = self.justitia_policy
        pol.tick(now)
        version = pol.version
        dynamic = pol.dynamic_keys
        if dynamic or version != self._queues_version:
            self.waiting.refresh()
            self.kv_holding_waiting.refresh()
            self._queues_version = version
        running = self.running
        if dynamic or version != self._running_version or (running and running[-1] not in self._placed):
            self._sort_running()
        if now >= self._metrics_next:
            self._sync_metrics(force=False)

    def _sync_metrics(self, force: bool) -> None:
        """Hand the gauges to the Prometheus recorder (which writes at most every 0.5 s)."""
        t = self._now()
        if not force and t < self._metrics_next:
            return
        self._metrics_next = t + METRICS_EVERY_S
        pol = self.justitia_policy
        rec = self._metrics
        rec.set_state(len(self.tracker.apps), pol.virtual_time())
        rec.sync_fallbacks(pol.fallbacks)
        rec.flush(force=force)

    def update_from_output(self, scheduler_output: SchedulerOutput, model_runner_output: ModelRunnerOutput) -> Any:
        if not self._justitia_ready:
            return super().update_from_output(scheduler_output, model_runner_output)  # type: ignore[misc]
        t = time.monotonic() if self._prof is not None else 0.0
        out = super().update_from_output(scheduler_output, model_runner_output)  # type: ignore[misc]
        self._since_service += 1
        if self._service_every and self._since_service >= self._service_every:
            self._since_service = 0
            self._report_running(self._now())
        if self._prof is not None:
            self._prof.updated(t, scheduler_output, self.has_requests())  # type: ignore[attr-defined]
        started = self._step_started
        if started is not None and scheduler_output.total_num_scheduled_tokens > 0:
            self._step_started = None
            self._observe_iteration(started, time.monotonic())
        self.steps += 1
        if not self._cursor:  # no request left: going idle, write the series now
            self._sync_metrics(force=True)
        return out

    # ------------------------------------------------------------------ service and capacity
    def _report_service(self, request: Request, cur: list[Any], now: float) -> None:
        """Report what ``request`` received since its last report (cost eq. 1 in closed form: the
        ``t``-th output token held ``p + t`` tokens; prompt tokens computed count as prefill)."""
        held = _advance(cur, request)
        if held is not None:
            req = cur[0]
            self.justitia_policy.served(req, held[0], held[1], held[2], now)
            if held[2]:
                app = self.tracker.apps.get(req.app_id)
                if app is not None:
                    self._metrics.add_served(app.info.app_type, held[2])

    def _report_running(self, now: float) -> None:
        """:meth:`_report_service` for every running request (the served cost per type summed first).

        The loop is :func:`_advance` written out (the same cursor moves, the same ``served`` calls in
        ``running`` order): it runs for every running request, so it saves a call and a tuple each."""
        cursor = self._cursor
        served = self.justitia_policy.served
        apps = self.tracker.apps
        per_app: dict[str, float] = {}
        for request in self.running:
            cur = cursor.get(request.request_id)
            if cur is None:
                continue
            o0 = cur[1]
            o1 = request.num_output_tokens
            pre1 = request.num_computed_tokens
            p = request.num_prompt_tokens
            if pre1 > p:
                pre1 = p
            pre0 = cur[2]
            if o1 == o0 and pre1 <= pre0:
                continue
            cur[1] = o1
            cur[2] = pre1
            d = o1 - o0
            pre = pre1 - pre0 if pre1 > pre0 else 0
            req = cur[0]
            if d <= 0:
                served(req, pre, 0, 0.0, now)
                continue
            held = held_token_iters(p, o0, d)
            served(req, pre, d, held, now)
            per_app[req.app_id] = per_app.get(req.app_id, 0.0) + held
        add = self._metrics.add_served
        for app_id, cost in per_app.items():
            app = apps.get(app_id)
            if app is not None:
                add(app.info.app_type, cost)

    def _observe_iteration(self, started: float, now: float) -> None:
        """A step ran from ``started`` to ``now`` (``time.monotonic``): fold it into the EWMA."""
        dt = now - started
        if not (dt > 0 and math.isfinite(dt)):
            return
        self.iteration_s = (1 - EWMA_ALPHA) * self.iteration_s + EWMA_ALPHA * dt if self.steps else dt
        if (abs(self.iteration_s - self._sent_iteration_s) > RESEND_REL * self._sent_iteration_s
                and (self._sent_at is None or now - self._sent_at >= RESEND_MIN_S)):
            self._sent_iteration_s = self.iteration_s
            self._sent_at = now
            self.justitia_policy.set_capacity(self.capacity_tokens, self.iteration_s)

    def shutdown(self) -> None:
        try:
            super().shutdown()  # type: ignore[misc]
        finally:
            if self._trace.enabled:
                self._trace.emit("shutdown", stats=self.justitia_stats(),
                                 profile=self._prof.totals if self._prof else None)
                self._trace.close()


def _advance(cur: list[Any], request: Request) -> tuple[int, int, float] | None:
    """Move a request's service cursor ``[Req, outputs, prompt tokens]`` to now; return
    ``(prefill tokens, decode tokens, held token·iterations)`` since the last move, or ``None``."""
    o0 = cur[1]
    o1 = request.num_output_tokens
    pre1 = request.num_computed_tokens
    p = request.num_prompt_tokens
    if pre1 > p:
        pre1 = p
    pre0 = cur[2]
    if o1 == o0 and pre1 <= pre0:
        return None
    cur[1] = o1
    cur[2] = pre1
    d = o1 - o0
    if d <= 0:
        return (pre1 - pre0 if pre1 > pre0 else 0), 0, 0.0
    return (pre1 - pre0 if pre1 > pre0 else 0), d, held_token_iters(p, o0, d)


class JustitiaScheduler(JustitiaSchedulerMixin, Scheduler):
    """vLLM's synchronous :class:`Scheduler` (the CPU path) driven by a :mod:`justitia.core` policy."""


class JustitiaAsyncScheduler(JustitiaSchedulerMixin, AsyncScheduler):
    """vLLM's :class:`AsyncScheduler` (the GPU default) driven by a :mod:`justitia.core` policy."""
