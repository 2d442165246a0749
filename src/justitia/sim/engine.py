"""The simulated vLLM v1 engine (issue 2 §4; DESIGN §1, §3).

What it models, iteration by iteration, as vLLM 0.32's ``Scheduler.schedule()`` does:

* **continuous batching with a token budget** (``max_num_batched_tokens``): running requests are visited
  in the order they were admitted — decoding requests take one token each, a request still prefilling
  takes ``min(remaining, budget)`` tokens (chunked prefill) — then, if nothing was preempted, waiting
  requests are admitted in ascending :meth:`Policy.key` order while the budget, the ``max_num_seqs`` cap
  and the free KV blocks allow (the first one that does not fit stops admission; with
  ``reserve_full_isl`` its whole sequence must fit, as vLLM's ``scheduler_reserve_full_isl``);
* **paged KV cache**: blocks of ``block_size`` tokens, capacity ``M``; a request holds
  ``ceil(computed_tokens / block_size)`` blocks;
* **preemption by recompute**: when a running request cannot get a block, the running request with the
  largest policy key is preempted (its blocks freed, back to waiting; it later recomputes prompt +
  generated tokens as one prefill); if the victim is the request itself, the rest of the running list
  is skipped this iteration and nothing is admitted (vLLM's priority-policy path; the policy contract
  makes even ``fcfs`` pick its victim by key — the newest arrival — where vLLM's FCFS pops the last
  admitted);
* **applications**: stage ``k+1``'s calls arrive when every call of stage ``k`` has finished, plus the
  stage's ``delay_s`` (the first stage starts at the app's arrival plus its ``delay_s``);
* **time**: each iteration lasts :meth:`LatencyModel.step_s` (latency eq. 1);
* **preemption for admission** (``EngineConfig.preempt_for_admission``, off by default as in vLLM):
  when the waiting head does not fit, running requests with a strictly larger key (admitted at least
  ``admission_preempt_min_iters`` iterations ago) are preempted, largest first, if together they free
  enough; see :meth:`Simulator._pfa_plan`. Macro-steps stop when such a request becomes eligible.

Waiting order. Waiting requests sit in a heap of ``(key, seq, epoch)`` entries with lazy invalidation.
Static policies re-key the whole queue when :attr:`Policy.version` moves (or keep it across app events,
``app_events_keep_keys``). Policies that implement :meth:`Policy.changed_apps` (VTC, SJF, PLAS, ATLAS)
get only the waiting requests of the applications it names re-keyed (per-app waiting lists; older
entries die by epoch; the heap is compacted when stale entries outnumber live ones) — the same minimum
as a full re-key because keys are total orders, so the same run, in O(changed) instead of O(waiting).

Speed (macro-steps). Decoding requests form a lock-step *decode group* (:mod:`justitia.sim.kvcache`):
per-request state is stored relative to a global iteration counter ``G``, so an iteration that changes
nothing but the contexts costs O(1). When no prefill is running, nothing can be admitted and the next
iteration needs no preemption, the engine advances ``k`` decode iterations at once, up to the next
event: an arrival (``now`` reaches it), a request finishing, the free blocks running out
(:func:`kvcache.steps_until_full`) or a service report to the policy. Iteration time is linear in the KV
read, which grows by ``n`` per iteration, so the time of ``k`` iterations is closed-form:
``k·(T_n + κ·kv₀) + κ·n·k(k−1)/2``. ``EngineConfig.macro_steps = False`` runs the very same code one
iteration at a time (the reference the tests compare against).

Policy events: ``app_arrived`` (an :class:`AppInfo` with the true cost as ``cost_hint`` — the oracle —
and arrival-time :func:`arrival_features`), ``request_arrived``, ``served`` (prefill tokens, decoded
tokens and held token·iterations per cost eq. 1, reported in spans: at finish, at preemption and every
``served_every`` iterations; for ``dynamic_keys`` policies, with ``exact_dynamic_keys``, also before every
decision that reads keys), ``request_finished``, ``app_finished``, and ``tick(now)`` before each
scheduling decision. The engine itself draws no random numbers; ties between equal keys go to the lower
engine sequence number, so a run is a pure function of its inputs.
"""

from __future__ import annotations

import gc
import heapq
import math
import operator
import time
from collections.abc import Callable, Sequence
from typing import Any

from justitia.apps.model import AppSpec, arrival_features
from justitia.core.policy import AppInfo, Policy, Req
from justitia.sim.config import EngineConfig, nominal_iteration_s
from justitia.sim.kvcache import allocs_over, steps_until_full
from justitia.sim.result import AppRecord, RunResult

# request states
_PENDING, _WAITING, _PREFILL, _DECODE, _DONE = range(5)
_INF = math.inf


class _App:
    __slots__ = ("idx", "spec", "info", "stage", "left", "arrival", "estimated", "calls_done", "cost")

    def __init__(self, idx: int, spec: AppSpec, info: AppInfo) -> None:
        self.cost = info.cost_hint
        self.idx = idx
        self.spec = spec
        self.info = info
        self.stage = -1
        self.left = 0
        self.arrival = spec.arrival_s
        self.estimated: float | None = None
        self.calls_done = 0


class _Rq:
    """Engine-side request. While ``state == _DECODE`` the fields ``computed``/``g``/``blocks`` are stale;
    the truth is ``computed = base + G`` and ``g = gbase + G`` at the start of iteration ``G``."""

    __slots__ = ("seq", "preq", "app", "p", "o", "g", "computed", "ntok", "blocks", "base", "gbase", "fin",
                 "state", "run_seq", "rep_g", "pend_pf", "wep", "preemptions", "first_sched", "finish_s", "key",
                 "kep", "adm_g")

    def __init__(self, seq: int, preq: Req, app: _App, p: int, o: int) -> None:
        self.seq = seq
        self.preq = preq
        self.app = app
        self.p = p
        self.o = o
        self.g = 0
        self.computed = 0
        self.ntok = p
        self.blocks = 0
        self.base = 0
        self.gbase = 0
        self.fin = 0
        self.state = _PENDING
        self.run_seq = -1
        self.rep_g = 0
        self.pend_pf = 0
        self.wep = 0
        self.preemptions = 0
        self.first_sched = -1.0
        self.finish_s = -1.0
        self.key: Any = None
        self.kep = 0  # key epoch: a waiting-heap entry is valid iff its epoch is the request's
        self.adm_g = 0  # iteration G at which it was last admitted (preemption for admission)


class Simulator:
    """One run of a workload under one policy on one simulated engine. Use :func:`simulate`.

    After :meth:`run`, the accounting counters are public so tests can check them: ``blocks_in_use``
    (0 after a complete run), ``max_blocks_in_use`` (≤ ``num_blocks``), ``finished`` (requests finished,
    each exactly once), and with ``trace=True`` ``requests``: one dict per request (ids, stage, arrival,
    first scheduled, finish, preemptions) and ``preemption_log``: ``(time, victim req_id, victim key,
    max key among the others running)``.
    """

    def __init__(self, apps: Sequence[AppSpec], policy: Policy, config: EngineConfig,
                 progress: Callable[[int, int], None] | None = None, trace: bool = False) -> None:
        if not apps:
            raise ValueError("the workload has no applications")
        self.policy = policy
        self.config = config
        self.progress = progress
        self.trace = trace
        bs = config.block_size
        self.bs = bs
        self.num_blocks = config.num_blocks
        cap = config.kv_capacity
        seen: set[str] = set()
        total = 0
        for a in apps:
            if a.app_id in seen:
                raise ValueError(f"duplicate app_id {a.app_id!r} in the workload")
            seen.add(a.app_id)
            for si, st in enumerate(a.stages):
                for c in st.calls:
                    if c.prompt_tokens < 1 or c.output_tokens < 1:
                        raise ValueError(f"application {a.app_id!r} stage {si}: calls need prompt_tokens >= 1 and "
                                         f"output_tokens >= 1, got ({c.prompt_tokens}, {c.output_tokens})")
                    if c.prompt_tokens + c.output_tokens - 1 > cap:
                        raise ValueError(
                            f"application {a.app_id!r} stage {si}: a call of {c.prompt_tokens} prompt + "
                            f"{c.output_tokens} output tokens cannot fit in the KV capacity of {cap} tokens")
                total += len(st.calls)
        order = sorted(range(len(apps)), key=lambda i: apps[i].arrival_s)
        self.specs = [apps[i] for i in order]
        self.total_requests = total
        # policy bookkeeping
        self.dynamic = policy.dynamic_keys and config.exact_dynamic_keys
        self.listens = policy.listens_to_service
        self.keep_keys = policy.app_events_keep_keys and not self.dynamic
        # the policy reports which apps' keys changed (Policy.changed_apps): re-key only their waiting requests
        self.track = policy.reports_changed_apps
        self.pfa = config.preempt_for_admission
        self.pfa_min = config.admission_preempt_min_iters
        self.admission_preemptions = 0
        self.admission_log: list[tuple[float, str, Any, Any]] = []
        # state
        self.now = 0.0
        self.G = 0
        self.free = self.num_blocks
        self.blocks_in_use = 0
        self.max_blocks_in_use = 0
        self.finished = 0
        self.preemptions = 0
        self.iterations = 0
        self.empty_steps = 0
        self.macro_steps = 0  # decode-only advances (each of k >= 1 iterations)
        self.detailed_steps = 0
        self.stopped_steps = 0  # iterations cut short because a request had to preempt itself
        self.seq = 0
        self.run_seq = 0
        self.uid = 0
        # waiting queue: dict for iteration + key heap (lazy) + need heap (dynamic policies)
        self.waiting: dict[int, _Rq] = {}
        self.wapp: dict[str, dict[int, _Rq]] = {}  # app id -> its waiting requests (only when tracking)
        self.wheap: list[tuple[Any, int, int, _Rq]] = []
        self.wver = -1
        self.rver = -1  # policy version at which the cached keys of running requests are valid
        self.nheap: list[tuple[int, int, int, _Rq]] = []
        # decode group
        self.cnt = [0] * bs
        self.S = 0
        self.ndec = 0
        self.dec: dict[int, _Rq] = {}
        self.fheap: list[tuple[int, int, int, _Rq]] = []
        self.pf: _Rq | None = None
        # events: app arrivals come from self.specs[self.ptr]; stage releases from self.evheap
        self.ptr = 0
        self.evheap: list[tuple[float, int, _App, int]] = []
        self.evseq = 0
        self.records: list[AppRecord | None] = [None] * len(self.specs)
        self.apps_done = 0
        self.requests: list[dict[str, Any]] = []
        self.preemption_log: list[tuple[float, str, Any, Any]] = []
        self.next_flush = config.served_every
        self.sat_time = 0.0
        self.sat_iters = 0
        self.busy_time = 0.0
        self.kv_time = 0.0  # ∫ KV tokens read per iteration dt
        self._progress_every = max(1, total // 200)

    # ================================================================== main loop
    def run(self) -> RunResult:
        """Simulate to the end. The cyclic garbage collector is paused meanwhile (the engine makes no
        reference cycles; with millions of live objects its full passes cost more than the simulation)."""
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if gc_was_on:
                gc.enable()

    def _run(self) -> RunResult:
        t0 = time.perf_counter()
        cfg = self.config
        lat = cfg.latency
        kap = lat.kv_s_per_token
        base_s = lat.decode_base_s
        bs = self.bs
        macro = cfg.macro_steps
        policy = self.policy
        tick = policy.tick
        budget_max = cfg.max_num_batched_tokens
        max_seqs = cfg.max_num_seqs
        full_isl = cfg.reserve_full_isl
        flush_every = cfg.served_every
        listens = self.listens
        specs = self.specs
        napps = len(specs)
        sat_blocks = 0.9 * self.num_blocks
        cnt = self.cnt
        base_cache: dict[int, float] = {}
        while True:
            now = self.now
            k_elig = 1 << 62
            # ---------------------------------------------------------- events due
            t_next = specs[self.ptr].arrival_s if self.ptr < napps else _INF
            if self.evheap and self.evheap[0][0] < t_next:
                t_next = self.evheap[0][0]
            if t_next <= now:
                self._ingest(now)
                t_next = specs[self.ptr].arrival_s if self.ptr < napps else _INF
                if self.evheap and self.evheap[0][0] < t_next:
                    t_next = self.evheap[0][0]
            ndec = self.ndec
            if ndec == 0 and self.pf is None and not self.waiting:
                if t_next == _INF:
                    break
                self.now = t_next  # idle: jump to the next arrival
                continue
            tick(now)
            G = self.G
            if listens and G >= self.next_flush:
                self._flush_all()
                self.next_flush = (G // flush_every + 1) * flush_every
            # ---------------------------------------------------------- pure decode iterations?
            need0 = cnt[(-G) % bs] if ndec else 0
            if ndec and self.pf is None and need0 <= self.free:
                if not self.waiting or ndec >= max_seqs:
                    simple = True
                elif self.dynamic:
                    # with preemption for admission, keys decide every iteration a request waits
                    simple = not self.pfa and not self._admissible(self.free - need0, budget_max - ndec, ndec)
                else:
                    head = self._head()
                    simple = head is None or (-(-head.ntok // bs) if full_isl else
                                              -(-min(head.ntok, budget_max - ndec) // bs)) > self.free - need0
                    if simple and head is not None and self.pfa:
                        plan, k_elig = self._pfa_plan(head, self.free - need0, budget_max - ndec, G, 0)
                        if plan is not None:
                            simple = False
            else:
                simple = False
            if simple:
                n = ndec
                tb = base_cache.get(n)
                if tb is None:
                    tb = base_cache[n] = base_s(n)
                kv0 = self.S + n * (G + 1)
                t1 = tb + kap * kv0  # first iteration
                half = kap * n * 0.5
                if macro:
                    k = self._fin_k(G)
                    if listens and self.next_flush - G < k:
                        k = self.next_flush - G
                    if t_next != _INF and k > 1:
                        ka = _steps_to_reach(t1, half, t_next - now)
                        if ka < k:
                            k = ka
                    if n * (k // bs + 1) > self.free:  # k iterations might need more blocks than are free
                        kf = steps_until_full(cnt, G, self.free, bs, n)
                        if kf < k:
                            k = kf
                    if self.pfa and self.waiting and k_elig < k:
                        k = k_elig  # a larger-key running request becomes preemptible for admission
                    if k < 1:
                        k = 1
                else:
                    k = 1
                alloc = allocs_over(cnt, G, k, bs, n) if k > 1 else need0
                dt = k * t1 + half * k * (k - 1)
                used0 = self.blocks_in_use
                self.free -= alloc
                self.blocks_in_use = used = used0 + alloc
                if used > self.max_blocks_in_use:
                    self.max_blocks_in_use = used
                if used0 >= sat_blocks:
                    self.sat_time += dt
                    self.sat_iters += k
                # ∫ KV tokens read dt over the k iterations (iteration j: t1 + 2·half·j long, kv0 + n·j read)
                self.kv_time += (t1 * kv0 * k + (t1 * n + 2 * half * kv0) * k * (k - 1) * 0.5
                                 + 2 * half * n * (k - 1) * k * (2 * k - 1) / 6.0)
                self.busy_time += dt
                self.G = G + k
                self.now = now + dt
                self.iterations += k
                self.macro_steps += 1
                self._finish_decoders()
            else:
                self._detailed_step()
        self._check_end()
        wall = time.perf_counter() - t0
        return self._result(wall)

    # ================================================================== events
    def _ingest(self, now: float) -> None:
        specs = self.specs
        napps = len(specs)
        evheap = self.evheap
        policy = self.policy
        while True:
            t_app = specs[self.ptr].arrival_s if self.ptr < napps else _INF
            t_ev = evheap[0][0] if evheap else _INF
            if t_app <= t_ev:
                if t_app > now:
                    return
                spec = specs[self.ptr]
                idx = self.ptr
                self.ptr += 1
                info = AppInfo(app_id=spec.app_id, arrival_s=spec.arrival_s, weight=spec.weight, app_type=spec.type,
                               cost_hint=spec.cost, features=arrival_features(spec))
                app = _App(idx, spec, info)
                policy.tick(t_app)
                v0 = policy.version
                policy.app_arrived(info, t_app)
                if self.keep_keys:  # only the new app (nothing queued or running yet) was keyed
                    if self.wver == v0:
                        self.wver = policy.version
                    if self.rver == v0:
                        self.rver = policy.version
                est = policy.estimator
                if est is not None:
                    app.estimated = float(est.estimate(info))
                self._start_stage(app, 0, t_app)
            else:
                if t_ev > now:
                    return
                t, _, app, si = heapq.heappop(evheap)
                policy.tick(t)
                self._release_stage(app, si, t)

    def _start_stage(self, app: _App, si: int, t: float) -> None:
        delay = app.spec.stages[si].delay_s
        if delay > 0:
            self.evseq += 1
            heapq.heappush(self.evheap, (t + delay, self.evseq, app, si))
        else:
            self._release_stage(app, si, t)

    def _release_stage(self, app: _App, si: int, t: float) -> None:
        stage = app.spec.stages[si]
        app.stage = si
        app.left = len(stage.calls)
        policy = self.policy
        app_id = app.spec.app_id
        for j, c in enumerate(stage.calls):
            seq = self.seq
            self.seq = seq + 1
            preq = Req(f"{app_id}/{si}.{j}", app_id, t, seq, c.prompt_tokens, si, j)
            rq = _Rq(seq, preq, app, c.prompt_tokens, c.output_tokens)
            policy.request_arrived(preq, t)
            self._to_waiting(rq)

    # ================================================================== waiting queue
    def _to_waiting(self, rq: _Rq) -> None:
        rq.state = _WAITING
        rq.ntok = rq.p + rq.g
        rq.computed = 0
        rq.blocks = 0
        rq.wep += 1
        rq.kep += 1
        self.waiting[rq.seq] = rq
        if self.dynamic:
            heapq.heappush(self.nheap, (-(-rq.ntok // self.bs), rq.seq, rq.wep, rq))
        if self.track:
            app_id = rq.preq.app_id
            d = self.wapp.get(app_id)
            if d is None:
                self.wapp[app_id] = d = {}
            d[rq.seq] = rq
            heapq.heappush(self.wheap, (self.policy.key(rq.preq), rq.seq, rq.kep, rq))
        elif not self.dynamic and self.wver == self.policy.version:
            heapq.heappush(self.wheap, (self.policy.key(rq.preq), rq.seq, rq.kep, rq))
        # else: the heap is rebuilt (with this request) at the next look-up

    def _unwait(self, rq: _Rq) -> None:
        """``rq`` leaves the waiting queue (admitted)."""
        del self.waiting[rq.seq]
        if self.track:
            app_id = rq.preq.app_id
            d = self.wapp[app_id]
            del d[rq.seq]
            if not d:
                del self.wapp[app_id]

    def _rebuild(self) -> None:
        key = self.policy.key
        self.wheap = [(key(r.preq), r.seq, r.kep, r) for r in self.waiting.values()]
        heapq.heapify(self.wheap)
        self.wver = self.policy.version

    def _rekey(self) -> None:
        """Tracking policies: push fresh entries for the waiting requests of the applications whose keys
        changed since the last look-up (their older entries die: key epoch); all of them if the policy
        cannot tell (``None``) or when stale entries outnumber live ones (compaction). Requests of other
        applications keep entries whose keys are still exact, so the heap's minimum is the same as after
        a full re-key (keys are total orders: they end in the unique sequence number)."""
        changed = self.policy.changed_apps()
        if changed is None or len(self.wheap) > 2 * len(self.waiting) + 64:
            self._rebuild()
            return
        key = self.policy.key
        h = self.wheap
        wapp = self.wapp
        push = heapq.heappush
        for app_id in changed:
            d = wapp.get(app_id)
            if d:
                for r in d.values():
                    r.kep += 1
                    push(h, (key(r.preq), r.seq, r.kep, r))
        self.wver = self.policy.version

    def _head(self, fresh: bool = False) -> _Rq | None:
        """The waiting request with the smallest key (keys re-read when the policy says they changed,
        or always for dynamic-key policies unless ``fresh``: no policy event since the last look-up;
        policies that report :meth:`Policy.changed_apps` get only those applications re-keyed)."""
        if self.track:
            if self.wver != self.policy.version:
                self._rekey()
        elif (self.dynamic and not fresh) or self.wver != self.policy.version:
            self._rebuild()
        h = self.wheap
        while h:
            e = h[0]
            r = e[3]
            if r.state == _WAITING and r.kep == e[2]:
                return r
            heapq.heappop(h)
        return None

    def _need(self, rq: _Rq, budget: int) -> int:
        """Free blocks a waiting request needs to be admitted with ``budget`` tokens left."""
        bs = self.bs
        if self.config.reserve_full_isl:
            return -(-rq.ntok // bs)
        return -(-min(rq.ntok, budget) // bs)

    def _admissible(self, free: int, budget: int, nrun: int) -> bool:
        """Could any waiting request be admitted now (ignoring which one the policy prefers, for
        dynamic-key policies; the policy's head, for static ones)?"""
        if not self.waiting or budget <= 0 or nrun >= self.config.max_num_seqs:
            return False
        if self.dynamic:
            h = self.nheap
            while h:
                e = h[0]
                r = e[3]
                if r.state == _WAITING and r.wep == e[2]:
                    if self.config.reserve_full_isl:
                        return e[0] <= free
                    return self._need(r, budget) <= free
                heapq.heappop(h)
            return False
        head = self._head()
        return head is not None and self._need(head, budget) <= free

    # ================================================================== decode group
    def _join(self, rq: _Rq) -> None:
        """``rq`` (computed/g materialized) joins the lock-step decode group at the current ``G``."""
        G = self.G
        b = rq.computed - G
        rq.base = b
        rq.gbase = rq.g - G
        rq.fin = G + rq.o - rq.g
        rq.state = _DECODE
        self.cnt[b % self.bs] += 1
        self.S += b
        self.ndec += 1
        self.dec[rq.seq] = rq
        self.uid += 1
        heapq.heappush(self.fheap, (rq.fin, rq.run_seq, self.uid, rq))

    def _leave(self, rq: _Rq, extra: int = 0) -> None:
        """Remove ``rq`` from the decode group, materializing its state at the start of iteration ``G``;
        ``extra`` = 1 if a block for this iteration's token was already allocated."""
        G = self.G
        b = rq.base
        rq.computed = b + G
        rq.g = rq.gbase + G
        rq.blocks = -(-(rq.computed + extra) // self.bs)
        self.cnt[b % self.bs] -= 1
        self.S -= b
        self.ndec -= 1
        del self.dec[rq.seq]
        rq.state = _PENDING

    def _fin_k(self, G: int) -> int:
        h = self.fheap
        while h:
            e = h[0]
            r = e[3]
            if r.state == _DECODE and r.fin == e[0] and r.run_seq == e[1]:
                return e[0] - G
            heapq.heappop(h)
        return 1 << 62

    def _finish_decoders(self) -> None:
        G = self.G
        h = self.fheap
        while h:
            e = h[0]
            if e[0] > G:
                r = e[3]
                if r.state == _DECODE and r.fin == e[0] and r.run_seq == e[1]:
                    return
                heapq.heappop(h)
                continue
            heapq.heappop(h)
            r = e[3]
            if r.state == _DECODE and r.fin == e[0] and r.run_seq == e[1]:
                self._flush(r)
                self._leave(r)
                self.free += r.blocks
                self.blocks_in_use -= r.blocks
                self._finish(r)

    # ================================================================== service reports (cost eq. 1)
    def _flush(self, rq: _Rq) -> None:
        if not self.listens:
            return
        g = rq.gbase + self.G if rq.state == _DECODE else rq.g
        d = g - rq.rep_g
        pfn = rq.pend_pf
        if d or pfn:
            held = d * (rq.p + rq.rep_g) + d * (d + 1) // 2  # held_token_iters(p, rep_g, d)
            self.policy.served(rq.preq, pfn, d, float(held), self.now)
            rq.rep_g = g
            rq.pend_pf = 0

    def _flush_all(self) -> None:
        if not self.listens:
            return
        G = self.G
        now = self.now
        served = self.policy.served
        for r in list(self.dec.values()):
            g = r.gbase + G
            d = g - r.rep_g
            if d or r.pend_pf:
                served(r.preq, r.pend_pf, d, float(d * (r.p + r.rep_g) + d * (d + 1) // 2), now)
                r.rep_g = g
                r.pend_pf = 0
        if self.pf is not None:
            self._flush(self.pf)

    # ================================================================== one detailed iteration
    def _victim(self) -> _Rq:
        """The running request with the largest policy key (the policy's preemption choice). Keys of
        running requests are cached while the policy's version says they are unchanged."""
        running = self._running()
        best = max(running, key=_by_key)
        if self.trace:
            others = [r.key for r in running if r is not best]
            self.preemption_log.append((self.now, best.preq.req_id, best.key, max(others) if others else None))
        return best

    def _running(self) -> list[_Rq]:
        """The running requests, with ``key`` = (policy key, seq) up to date."""
        running = list(self.dec.values())
        if self.pf is not None:
            running.append(self.pf)
        if self.dynamic or self.rver != self.policy.version:
            key = self.policy.key
            for r in running:
                r.key = (key(r.preq), r.seq)
            self.rver = self.policy.version
        return running

    def _pfa_plan(self, head: _Rq, free: int, budget: int, G: int, pf_x: int) -> tuple[list[_Rq] | None, int]:
        """Preemption for admission (``EngineConfig.preempt_for_admission``): the running requests to
        preempt so that ``head`` (the waiting request with the smallest key; its heap entry is on top)
        fits, or ``None`` if the eligible ones with a strictly larger key cannot free enough. Called at
        admission time of iteration ``G`` (every decoder already holds this iteration's block; the
        prefilling request, if any, holds its chunk of ``pf_x`` tokens). Victims: running requests with
        ``key > head's key`` admitted at least ``admission_preempt_min_iters`` iterations ago, largest key
        first. Also returns, when no plan exists, in how many iterations the next larger-key running
        request becomes eligible (macro-steps stop there)."""
        e = self.wheap[0]
        hk = (e[0], e[1])
        bs = self.bs
        full_isl = self.config.reserve_full_isl
        lim = G - self.pfa_min
        cands = []
        k_elig = 1 << 62
        for r in self._running():
            if r.key > hk:
                if r.adm_g <= lim:
                    cands.append(r)
                elif r.adm_g - lim < k_elig:
                    k_elig = r.adm_g - lim
        if not cands:
            return None, k_elig
        cands.sort(key=_by_key, reverse=True)
        acc = 0
        give = 0
        plan = []
        for v in cands:
            plan.append(v)
            if v.state == _DECODE:
                acc += -(-(v.base + G + 1) // bs)
                give += 1
            else:
                acc += v.blocks
                give += pf_x
            need = -(-head.ntok // bs) if full_isl else -(-min(head.ntok, budget + give) // bs)
            if free + acc >= need:
                return plan, k_elig
        return None, k_elig

    def _preempt(self, v: _Rq, processed: bool) -> int:
        """Preempt ``v`` (recompute): free its blocks, send it back to waiting. Returns the budget it
        gives back (1 if it was a decoder already scheduled this iteration)."""
        self._flush(v)
        give = 0
        if v.state == _DECODE:
            self._leave(v, 1 if processed else 0)
            give = 1 if processed else 0
        else:  # the prefilling request (never processed before a victim search)
            self.pf = None
        freed = v.blocks
        self.free += freed
        self.blocks_in_use -= freed
        v.preemptions += 1
        self.preemptions += 1
        self._to_waiting(v)
        return give

    def _detailed_step(self) -> None:
        cfg = self.config
        bs = self.bs
        G = self.G
        cnt = self.cnt
        budget = cfg.max_num_batched_tokens
        full_isl = cfg.reserve_full_isl
        preempted = False
        flushed = False
        stopped = False
        paused: list[_Rq] = []
        chunks: list[tuple[_Rq, int, int]] = []  # (request, new tokens, computed before)
        need0 = cnt[(-G) % bs] if self.ndec else 0
        if need0 <= self.free:
            # every decoder gets its token and block (the common case: no shortage among decoders)
            self.free -= need0
            self.blocks_in_use += need0
            budget -= self.ndec
        else:
            if self.dynamic and not flushed:
                self._flush_all()
                flushed = True
            # Walk the decoders that need a block this iteration, in running (admission) order; the
            # others just take their token. A victim "was processed" (holds this iteration's block)
            # iff it is a needer ahead of the one being served, i.e. its run_seq is smaller.
            ph = (-G) % bs
            needers = sorted([r for r in self.dec.values() if r.base % bs == ph], key=_by_run_seq)
            for r in needers:
                if r.state != _DECODE:
                    continue  # preempted earlier in this walk
                while self.free < 1:
                    v = self._victim()
                    self._preempt(v, v.run_seq < r.run_seq)
                    preempted = True
                    if v is r:
                        break
                if r.state != _DECODE:  # r itself was preempted: vLLM stops scheduling running requests
                    stopped = True
                    rs = r.run_seq
                    paused = [x for x in self.dec.values() if x.run_seq > rs]
                    self.stopped_steps += 1
                    for x in paused:
                        self._leave(x)
                    break
                self.free -= 1
                self.blocks_in_use += 1
            budget -= self.ndec
        # the prefilling request (last in running order)
        pf = self.pf
        pf_scheduled = False
        if pf is not None and not stopped and budget > 0:
            x = min(pf.ntok - pf.computed, budget)
            nb = -(-(pf.computed + x) // bs) - pf.blocks
            if nb > self.free:
                if self.dynamic and not flushed:
                    self._flush_all()
                    flushed = True
                while nb > self.free:
                    v = self._victim()
                    budget += self._preempt(v, v.state == _DECODE)
                    preempted = True
                    if v is pf:
                        break
            if self.pf is pf:
                self.free -= nb
                self.blocks_in_use += nb
                pf.blocks += nb
                budget -= x
                chunks.append((pf, x, pf.computed))
                pf_scheduled = True
        # admission of waiting requests (only if nothing was preempted this iteration)
        if not preempted and self.waiting:
            nrun = self.ndec + (1 if self.pf is not None else 0)
            if budget > 0 and nrun < cfg.max_num_seqs and (not self.dynamic or self.pfa
                                                            or self._admissible(self.free, budget, nrun)):
                if self.dynamic and not flushed:
                    self._flush_all()
                fresh = False
                while budget > 0 and nrun < cfg.max_num_seqs:
                    r = self._head(fresh)
                    fresh = True
                    if r is None:
                        break
                    x = r.ntok if r.ntok < budget else budget
                    nb = -(-x // bs)
                    if (-(-r.ntok // bs) if full_isl else nb) > self.free:
                        if not self.pfa:
                            break
                        pf_x = chunks[0][1] if pf_scheduled else 0  # pf's chunk is the first one
                        plan, _ = self._pfa_plan(r, self.free, budget, G, pf_x)
                        if plan is None:
                            break
                        e = heapq.heappop(self.wheap)  # r's entry, before victims re-enter the queue
                        for v in plan:
                            if self.trace:
                                self.admission_log.append((self.now, v.preq.req_id, v.key, (e[0], e[1])))
                            if v is pf:
                                chunks.pop(0)
                                budget += pf_x
                                pf_scheduled = False
                                self._preempt(v, False)
                            else:
                                budget += self._preempt(v, True)
                            self.admission_preemptions += 1
                            nrun -= 1
                        x = r.ntok if r.ntok < budget else budget
                        nb = -(-x // bs)
                        if (-(-r.ntok // bs) if full_isl else nb) > self.free:
                            raise RuntimeError("preemption for admission freed too few blocks (engine invariant broken)")
                    else:
                        e = heapq.heappop(self.wheap)
                    r.key = (e[0], e[1])
                    if self.wver != self.rver:
                        self.rver = -1  # the cached running keys are of another version: re-key at the next victim search
                    self._unwait(r)
                    r.adm_g = G
                    r.state = _PREFILL
                    r.run_seq = self.run_seq
                    self.run_seq += 1
                    r.blocks = nb
                    self.free -= nb
                    self.blocks_in_use += nb
                    budget -= x
                    nrun += 1
                    if r.first_sched < 0:
                        r.first_sched = self.now
                    chunks.append((r, x, 0))
        if self.blocks_in_use > self.max_blocks_in_use:
            self.max_blocks_in_use = self.blocks_in_use
        if self.free < 0 or self.blocks_in_use > self.num_blocks:
            raise RuntimeError(f"KV accounting broken: free={self.free} in_use={self.blocks_in_use}")
        # ---------------------------------------------------------- run the iteration
        n = self.ndec
        pre = 0
        ctx = 0
        attn = 0
        for _, x, c in chunks:
            pre += x
            ctx += c
            attn += 2 * c * x + x * x
        if n == 0 and pre == 0:
            self.empty_steps += 1
            if self.empty_steps > 3:
                raise RuntimeError(f"simulated engine made no progress at t={self.now:.3f}s "
                                   f"(waiting={len(self.waiting)}, free blocks={self.free})")
            for r in paused:
                self._join(r)
            return
        self.empty_steps = 0
        self.detailed_steps += 1
        kv_dec = self.S + n * (G + 1)
        dt = self.config.latency.step_s(pre, n, kv_dec + ctx, float(attn))
        if self.blocks_in_use >= 0.9 * self.num_blocks:
            self.sat_time += dt
            self.sat_iters += 1
        self.kv_time += dt * (kv_dec + ctx)
        self.busy_time += dt
        self.G = G + 1
        self.now += dt
        self.iterations += 1
        # ---------------------------------------------------------- post-process
        for r in paused:
            self._join(r)
        if pf_scheduled:
            self.pf = None  # re-set below if its prefill is still unfinished
        # else: a prefilling request that was not scheduled this iteration (a decoder preempted itself,
        # or no budget was left) stays mid-prefill with its blocks; it must not be dropped.
        for r, x, _ in chunks:
            r.computed += x
            r.pend_pf += x
            if r.computed == r.ntok:  # prefill done: the last chunk samples a token
                r.g += 1
                r.ntok += 1
                if r.g >= r.o:
                    r.state = _PENDING
                    self._flush(r)
                    self.free += r.blocks
                    self.blocks_in_use -= r.blocks
                    self._finish(r)
                else:
                    self._join(r)
            else:
                if self.pf is not None:
                    raise RuntimeError("more than one request left mid-prefill (engine invariant broken)")
                r.state = _PREFILL
                self.pf = r
        self._finish_decoders()
        if cfg.check_invariants:
            self.check_invariants()

    # ================================================================== finishing
    def _finish(self, rq: _Rq) -> None:
        """``rq`` generated its last token at ``now`` (its blocks were freed by the caller)."""
        now = self.now
        if rq.state == _DONE:
            raise RuntimeError(f"request {rq.preq.req_id!r} finished twice")
        rq.state = _DONE
        rq.finish_s = now
        self.finished += 1
        self.policy.request_finished(rq.preq, now)
        if self.trace:
            self.requests.append({"req_id": rq.preq.req_id, "app_id": rq.preq.app_id, "stage": rq.preq.stage,
                                  "arrival_s": rq.preq.arrival_s, "first_scheduled_s": rq.first_sched,
                                  "finish_s": now, "prompt_tokens": rq.p, "output_tokens": rq.o,
                                  "preemptions": rq.preemptions})
        app = rq.app
        app.calls_done += 1
        app.left -= 1
        if app.left == 0:
            nxt = app.stage + 1
            if nxt < len(app.spec.stages):
                self._start_stage(app, nxt, now)
            else:
                spec = app.spec
                self.records[app.idx] = AppRecord(
                    app_id=spec.app_id, app_type=spec.type, arrival_s=spec.arrival_s, completion_s=now,
                    cost=app.cost, weight=spec.weight, num_calls=app.calls_done, estimated_cost=app.estimated)
                self.apps_done += 1
                v0 = self.policy.version
                self.policy.app_finished(spec.app_id, now)
                if self.keep_keys:  # the finished app has no queued or running request
                    if self.wver == v0:
                        self.wver = self.policy.version
                    if self.rver == v0:
                        self.rver = self.policy.version
        if self.progress is not None and (self.finished % self._progress_every == 0
                                          or self.finished == self.total_requests):
            self.progress(self.finished, self.total_requests)

    # ================================================================== checks and result
    def check_invariants(self) -> None:
        """Recount every block from the requests (O(running)); raise if the counters disagree."""
        G = self.G
        held = 0
        for r in self.dec.values():
            held += -(-(r.base + G) // self.bs)
        if self.pf is not None:
            held += self.pf.blocks
            if self.pf.blocks != -(-self.pf.computed // self.bs):
                raise RuntimeError("prefilling request holds the wrong number of blocks")
        if held != self.blocks_in_use or self.free != self.num_blocks - held:
            raise RuntimeError(f"KV accounting mismatch: requests hold {held} blocks, counter says "
                               f"{self.blocks_in_use} in use and {self.free} free of {self.num_blocks}")
        if sum(self.cnt) != self.ndec or len(self.dec) != self.ndec:
            raise RuntimeError("decode group counters out of sync")

    def _check_end(self) -> None:
        problems = []
        if self.blocks_in_use != 0 or self.free != self.num_blocks:
            problems.append(f"{self.blocks_in_use} KV blocks still in use ({self.free}/{self.num_blocks} free)")
        if self.finished != self.total_requests:
            problems.append(f"{self.finished} of {self.total_requests} requests finished")
        if self.waiting or self.ndec or self.pf is not None:
            problems.append(f"{len(self.waiting)} waiting / {self.ndec + (self.pf is not None)} running left")
        if self.apps_done != len(self.specs):
            problems.append(f"{self.apps_done} of {len(self.specs)} applications finished")
        if problems:
            raise RuntimeError("simulation ended inconsistently: " + "; ".join(problems))

    def _result(self, wall: float) -> RunResult:
        recs = [r for r in self.records if r is not None]
        cfg = self.config
        prompt = sum(c.prompt_tokens for a in self.specs for c in a.calls())
        output = sum(c.output_tokens for a in self.specs for c in a.calls())
        extra = {
            "num_blocks": float(self.num_blocks),
            "max_blocks_in_use": float(self.max_blocks_in_use),
            "blocks_in_use_end": float(self.blocks_in_use),
            "requests": float(self.total_requests),
            "requests_finished": float(self.finished),
            "busy_s": self.busy_time,
            "mean_kv_tokens_read": self.kv_time / self.busy_time if self.busy_time > 0 else 0.0,
            "saturated_iteration_s": self.sat_time / self.sat_iters if self.sat_iters else 0.0,
            "saturated_iterations": float(self.sat_iters),
            "decode_advances": float(self.macro_steps),
            "detailed_steps": float(self.detailed_steps),
            "stopped_steps": float(self.stopped_steps),
            "admission_preemptions": float(self.admission_preemptions),
        }
        return RunResult(policy=self.policy.name, apps=recs, capacity_tokens=float(cfg.kv_capacity),
                         iteration_s=nominal_iteration_s(cfg), makespan_s=self.now, prompt_tokens=prompt,
                         output_tokens=output, preemptions=self.preemptions, iterations=self.iterations,
                         wall_s=wall, extra=extra)


_by_key = operator.attrgetter("key")
_by_run_seq = operator.attrgetter("run_seq")


def _steps_to_reach(t1: float, half: float, d: float) -> int:
    """Smallest ``k >= 1`` with ``k·t1 + half·k(k−1) >= d`` (iteration times grow linearly)."""
    if d <= t1:
        return 1
    if half > 0:
        b = t1 - half
        k = int((-b + math.sqrt(b * b + 4.0 * half * d)) / (2.0 * half))
    else:
        k = int(d / t1)
    if k < 1:
        k = 1
    while k > 1 and (k - 1) * t1 + half * (k - 1) * (k - 2) >= d:
        k -= 1
    while k * t1 + half * k * (k - 1) < d:
        k += 1
    return k


def simulate(apps: Sequence[AppSpec], policy: Policy, config: EngineConfig,
             progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Serve ``apps`` under ``policy`` on the simulated engine ``config`` (see the module docstring)."""
    return Simulator(apps, policy, config, progress=progress).run()


def make_simulation_policy(name: str, config: EngineConfig, **kwargs: Any) -> Policy:
    """``make_policy(name, M, nominal_iteration_s(config))`` for this engine."""
    from justitia.policies import make_policy

    return make_policy(name, config.kv_capacity, nominal_iteration_s(config), **kwargs)


__all__ = ["Simulator", "simulate", "arrival_features", "make_simulation_policy"]
