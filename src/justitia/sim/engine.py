"""The simulated vLLM v1 engine: the main loop, decode advances and the run's result (DESIGN §1, §3).

Iteration by iteration, as vLLM 0.32's ``Scheduler.schedule()``: continuous batching with a token
budget and chunked prefill, admission in :meth:`Policy.key` order, a paged KV cache of ``num_blocks``
blocks, preemption by recompute (:mod:`~justitia.sim.iteration` has the phases of one iteration,
:mod:`~justitia.sim.preemption` the victim choice, :mod:`~justitia.sim.waiting` the key-ordered queue,
:mod:`~justitia.sim.decoding` the lock-step decode group, :mod:`~justitia.sim.lifecycle` the
applications' stages and the service reports). Each iteration lasts :meth:`LatencyModel.step_s`
(latency eq. 1).

Speed (decode advances). When no prefill is running, nothing can be admitted and the next iteration
needs no preemption, the engine advances ``k`` decode iterations at once, up to the next event: an
arrival or stage release, a request finishing, the free blocks running out, a service report or a
running request becoming preemptible for admission. Iteration time is linear in the KV read, which grows
by ``n`` per iteration, so ``k`` iterations take ``k·(T_n + κ·kv₀) + κ·n·k(k−1)/2``.
``EngineConfig.macro_steps = False`` runs the same code one iteration at a time.

The engine draws no random numbers; ties between equal keys go to the lower engine sequence number, so
a run is a pure function of its inputs. Policy events: ``app_arrived`` (the true cost as ``cost_hint`` —
the oracle — and :func:`arrival_features`), ``request_arrived``, ``served``, ``request_finished``,
``app_finished``, and ``tick(now)`` before each scheduling decision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from justitia.apps.model import AppSpec, arrival_features
from justitia.core.policy import Policy
from justitia.sim.config import EngineConfig, nominal_iteration_s
from justitia.sim.decoding import NEVER, DecodeGroup, steps_to_reach
from justitia.sim.iteration import DetailedIteration
from justitia.sim.kvcache import blocks_for
from justitia.sim.lifecycle import AppLifecycle
from justitia.sim.preemption import Preemption
from justitia.sim.request import SimRequest
from justitia.sim.result import AppRecord, RunResult
from justitia.sim.incremental import IncrementalAPI
from justitia.sim.waiting import WaitingQueue

_INF = float("inf")


class Simulator(IncrementalAPI, AppLifecycle, DetailedIteration, Preemption):
    """One run of a workload under one policy on one simulated engine. Use :func:`simulate`, or drive
    it incrementally (:meth:`add_app`, :meth:`run_until`, :meth:`finish`; see :mod:`justitia.sim`).

    After a run, the accounting counters are public so tests can check them: ``blocks_in_use`` (0 after
    a complete run), ``max_blocks_in_use`` (≤ ``num_blocks``), ``finished`` (requests finished, each
    exactly once), and with ``trace=True`` ``requests``: one dict per request (ids, stage, arrival,
    first scheduled, finish, preemptions), ``preemption_log``: ``(time, victim req_id, victim key, max
    key among the others running)`` and ``admission_log``: ``(time, victim req_id, victim key, admitted
    head's key)``.
    """

    def __init__(self, apps: Sequence[AppSpec], policy: Policy, config: EngineConfig,
                 progress: Callable[[int, int], None] | None = None, trace: bool = False,
                 listener: Any = None) -> None:
        self.policy = policy
        self.config = config
        self.progress = progress
        self.trace = trace
        self.block_size = config.block_size
        self.num_blocks = config.num_blocks
        # what the policy declares (Policy class attributes)
        self.dynamic_keys = policy.dynamic_keys and config.exact_dynamic_keys  # keys re-read at every decision
        self.reports_service = policy.listens_to_service
        self.app_events_keep_keys = policy.app_events_keep_keys and not self.dynamic_keys
        self.preempt_for_admission = config.preempt_for_admission
        self.admission_min_iters = config.admission_preempt_min_iters
        # applications: not yet arrived (heap of (arrival_s, index, spec)), delayed stages, results
        self.apps: list[AppSpec] = []  # in the order added
        self.app_ids: set[str] = set()
        self.arrivals: list[tuple[float, int, AppSpec]] = []
        self.stage_releases: list[tuple[float, int, Any, int]] = []  # (time, tie-break, SimApp, stage)
        self._release_seq = 0
        self.records: list[AppRecord | None] = []
        self.apps_done = 0
        self.total_requests = 0
        self.finished = 0
        self.next_seq = 0  # engine sequence numbers, in request arrival order
        # the engine: clock, KV blocks, queues
        self.now = 0.0  # the end of the last iteration (or the idle clock)
        self.iteration = 0  # iterations run so far = the index of the next one
        self.free = self.num_blocks
        self.blocks_in_use = 0
        self.max_blocks_in_use = 0
        self.waiting = WaitingQueue(policy, self.block_size, dynamic=self.dynamic_keys,
                                    max_num_seqs=config.max_num_seqs, reserve_full_isl=config.reserve_full_isl)
        self.decode = DecodeGroup(self.block_size)
        self.prefilling: SimRequest | None = None  # at most one running request is mid-prefill
        self.next_run_order = 0
        self.running_keys_version = -1  # policy version at which running requests' cached keys are valid
        self.next_service_report = config.served_every  # iteration of the next periodic service report
        # statistics
        self.preemptions = 0
        self.admission_preemptions = 0
        self.decode_advances = 0  # decode-only advances (each of k >= 1 iterations)
        self.detailed_steps = 0
        self.stopped_steps = 0  # iterations cut short because a request had to preempt itself
        self.no_progress_steps = 0  # consecutive detailed steps that scheduled nothing
        self.saturated_s = 0.0  # time and iterations with >= 90 % of the blocks in use
        self.saturated_iterations = 0
        self.busy_s = 0.0
        self.kv_token_s = 0.0  # ∫ KV tokens read per iteration dt
        self.last_finish_s = 0.0
        self.requests: list[dict[str, Any]] = []
        self.preemption_log: list[tuple[float, str, Any, Any]] = []
        self.admission_log: list[tuple[float, str, Any, Any]] = []
        self._decode_base_s: dict[int, float] = {}  # LatencyModel.decode_base_s by batch size
        self._init_incremental(listener)
        for i in sorted(range(len(apps)), key=lambda i: apps[i].arrival_s):
            self._add(apps[i])

    # ================================================================== main loop
    def _run_until(self, until: float) -> None:
        """Run every iteration that starts before ``until`` (all of them for ``inf``)."""
        policy = self.policy
        waiting = self.waiting.requests
        decode = self.decode
        while True:
            now = self.now
            if now >= until:
                return
            t_next = self._next_event_s()
            if t_next <= now:
                self._ingest(now)
                t_next = self._next_event_s()
            if decode.size == 0 and self.prefilling is None and not waiting:
                if t_next >= until:  # idle until after the horizon
                    if until != _INF:
                        self.now = until
                    return
                self.now = t_next  # idle: jump to the next arrival
                continue
            policy.tick(now)
            if self.reports_service and self.iteration >= self.next_service_report:
                self._report_all_service()
                every = self.config.served_every
                self.next_service_report = (self.iteration // every + 1) * every
            can_advance, eligible_in = self._can_advance_decoding()
            if can_advance:
                self._advance_decoding(t_next if t_next < until else until, eligible_in)
            else:
                self._detailed_step()

    def _can_advance_decoding(self) -> tuple[bool, int]:
        """Is the next iteration decode-only (no prefill, nothing admissible, no preemption)? Also: in how
        many iterations a running request becomes preemptible for admission (``NEVER`` if not asked)."""
        decode = self.decode
        n = decode.size
        if not n or self.prefilling is not None:
            return False, NEVER
        free = self.free - decode.blocks_needed(self.iteration)  # after this iteration's blocks
        if free < 0:
            return False, NEVER
        budget = self.config.max_num_batched_tokens - n
        waiting = self.waiting
        if not waiting.requests or n >= self.config.max_num_seqs:
            return True, NEVER
        if self.dynamic_keys:
            # with preemption for admission, keys decide every iteration a request waits
            return not self.preempt_for_admission and not waiting.admissible(free, budget, n), NEVER
        head = waiting.head()
        if head is None:
            return True, NEVER
        if waiting.blocks_to_admit(head, budget) <= free:
            return False, NEVER
        if self.preempt_for_admission:
            plan, eligible_in = self._admission_plan(head, free, budget, 0)
            return plan is None, eligible_in
        return True, NEVER

    def _advance_decoding(self, horizon: float, eligible_in: int) -> None:
        """Run ``k >= 1`` decode-only iterations at once (closed form), stopping at the first boundary at
        or after ``horizon`` (the next arrival), a finish, a service report, the blocks running out or a
        running request becoming preemptible for admission."""
        decode = self.decode
        n = decode.size
        iteration = self.iteration
        now = self.now
        latency = self.config.latency
        t_n = self._decode_base_s.get(n)
        if t_n is None:
            t_n = self._decode_base_s[n] = latency.decode_base_s(n)
        kv0 = decode.kv_tokens(iteration)
        t1 = t_n + latency.kv_s_per_token * kv0  # the first iteration
        half = latency.kv_s_per_token * n * 0.5  # iteration j lasts t1 + 2·half·j
        if self.config.macro_steps:
            k = decode.iterations_to_next_finish(iteration)
            if self.reports_service and self.next_service_report - iteration < k:
                k = self.next_service_report - iteration
            if horizon != _INF and k > 1:
                k = min(k, steps_to_reach(t1, half, horizon - now))
            if n * (k // self.block_size + 1) > self.free:  # k iterations might need more blocks than are free
                k = min(k, decode.steps_until_full(iteration, self.free))
            if self.preempt_for_admission and self.waiting.requests and eligible_in < k:
                k = eligible_in
            k = max(k, 1)
        else:
            k = 1
        alloc = decode.allocs_over(iteration, k) if k > 1 else decode.blocks_needed(iteration)
        dt = k * t1 + half * k * (k - 1)
        used0 = self.blocks_in_use
        self.free -= alloc
        self.blocks_in_use = used = used0 + alloc
        if used > self.max_blocks_in_use:
            self.max_blocks_in_use = used
        if used0 >= 0.9 * self.num_blocks:
            self.saturated_s += dt
            self.saturated_iterations += k
        # ∫ KV tokens read dt over the k iterations (iteration j: t1 + 2·half·j long, kv0 + n·j read)
        self.kv_token_s += (t1 * kv0 * k + (t1 * n + 2 * half * kv0) * k * (k - 1) * 0.5
                            + 2 * half * n * (k - 1) * k * (2 * k - 1) / 6.0)
        self.busy_s += dt
        self.iteration = iteration + k
        self.now = now + dt
        self.decode_advances += 1
        self._finish_decoders()

    # ================================================================== checks and result
    def check_invariants(self) -> None:
        """Recount every block from the requests (O(running)); raise if the counters disagree."""
        held = self.decode.blocks_held(self.iteration)
        pf = self.prefilling
        if pf is not None:
            held += pf.blocks
            if pf.blocks != blocks_for(pf.computed, self.block_size):
                raise RuntimeError("prefilling request holds the wrong number of blocks")
        if held != self.blocks_in_use or self.free != self.num_blocks - held:
            raise RuntimeError(f"KV accounting mismatch: requests hold {held} blocks, counter says "
                               f"{self.blocks_in_use} in use and {self.free} free of {self.num_blocks}")
        if sum(self.decode.phase_counts) != self.decode.size or len(self.decode.members) != self.decode.size:
            raise RuntimeError("decode group counters out of sync")

    def _unfinished(self) -> list[str]:
        """What is not done yet (empty when every added application has completed)."""
        problems = []
        if self.blocks_in_use != 0 or self.free != self.num_blocks:
            problems.append(f"{self.blocks_in_use} KV blocks still in use ({self.free}/{self.num_blocks} free)")
        if self.finished != self.total_requests:
            problems.append(f"{self.finished} of {self.total_requests} requests finished")
        if self.waiting.requests or self.decode.size or self.prefilling is not None:
            problems.append(f"{len(self.waiting.requests)} waiting / "
                            f"{self.decode.size + (self.prefilling is not None)} running left")
        if self.apps_done != len(self.apps):
            problems.append(f"{self.apps_done} of {len(self.apps)} applications finished")
        return problems

    def _result(self, wall: float) -> RunResult:
        recs = [r for r in self.records if r is not None]
        cfg = self.config
        prompt = sum(c.prompt_tokens for a in self.apps for c in a.calls())
        output = sum(c.output_tokens for a in self.apps for c in a.calls())
        extra = {
            "num_blocks": float(self.num_blocks),
            "max_blocks_in_use": float(self.max_blocks_in_use),
            "blocks_in_use_end": float(self.blocks_in_use),
            "requests": float(self.total_requests),
            "requests_finished": float(self.finished),
            "busy_s": self.busy_s,
            "mean_kv_tokens_read": self.kv_token_s / self.busy_s if self.busy_s > 0 else 0.0,
            "saturated_iteration_s": self.saturated_s / self.saturated_iterations if self.saturated_iterations else 0.0,
            "saturated_iterations": float(self.saturated_iterations),
            "decode_advances": float(self.decode_advances),
            "detailed_steps": float(self.detailed_steps),
            "stopped_steps": float(self.stopped_steps),
            "admission_preemptions": float(self.admission_preemptions),
        }
        return RunResult(policy=self.policy.name, apps=recs, capacity_tokens=float(cfg.kv_capacity),
                         iteration_s=nominal_iteration_s(cfg), makespan_s=self.last_finish_s,
                         prompt_tokens=prompt, output_tokens=output, preemptions=self.preemptions,
                         iterations=self.iteration, wall_s=wall, extra=extra)


def simulate(apps: Sequence[AppSpec], policy: Policy, config: EngineConfig,
             progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Serve ``apps`` under ``policy`` on the simulated engine ``config`` (see the module docstring)."""
    return Simulator(apps, policy, config, progress=progress).run()


def make_simulation_policy(name: str, config: EngineConfig, **kwargs: Any) -> Policy:
    """``make_policy(name, M, nominal_iteration_s(config))`` for this engine."""
    from justitia.policies import make_policy

    return make_policy(name, config.kv_capacity, nominal_iteration_s(config), **kwargs)


__all__ = ["Simulator", "simulate", "arrival_features", "make_simulation_policy"]
