"""One detailed engine iteration, as vLLM 0.32's ``Scheduler.schedule()`` builds it (DESIGN §1, §3),
timed by latency eq. 1. Its phases:

1. **schedule running** — the decoders, in running (admission) order, each take one token and, when its
   context fills a block, a new block; a decoder that cannot get one preempts the running request with
   the largest key; if that is itself, the rest of the running list is skipped this iteration;
2. **schedule prefill** — the request still prefilling (last in running order) takes
   ``min(remaining, budget)`` tokens (chunked prefill), preempting for its blocks likewise;
3. **admit** — if nothing was preempted, waiting requests in ascending key order while the token budget
   (``max_num_batched_tokens``), ``max_num_seqs`` and the free blocks allow; the first that does not fit
   stops admission (or, with preemption for admission, may displace larger-key running requests);
4. **execute** — the iteration's time from its prefill tokens, decoders and KV read;
5. **advance** — chunks are credited, finished prefills sample their first token and join the decode
   group, finished requests leave.

Mixed into :class:`justitia.sim.engine.Simulator`, whose constructor describes the state used here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from justitia.sim.kvcache import blocks_for
from justitia.sim.request import DECODE, PENDING, PREFILL, SimRequest

if TYPE_CHECKING:
    from justitia.sim.engine import Simulator


class Step:
    """What one detailed iteration has scheduled so far."""

    __slots__ = ("budget", "preempted", "reported", "stopped", "paused", "chunks", "prefill", "prefill_scheduled")

    def __init__(self, budget: int) -> None:
        self.budget = budget  # tokens left (max_num_batched_tokens)
        self.preempted = False  # a request was preempted: nothing is admitted this iteration
        self.reported = False  # service was reported to a dynamic-key policy before its keys were read
        self.stopped = False  # a decoder preempted itself: the running requests after it are skipped
        self.paused: list[SimRequest] = []  # the decoders skipped (they rejoin the group unchanged)
        self.chunks: list[tuple[SimRequest, int, int]] = []  # (request, new tokens, tokens computed before)
        self.prefill: SimRequest | None = None  # the request prefilling when the prefill phase began
        self.prefill_scheduled = False  # it got a chunk (always the first of ``chunks``)


class DetailedIteration:
    """The phases of one detailed iteration (a part of :class:`~justitia.sim.engine.Simulator`)."""

    def _detailed_step(self: Simulator) -> None:
        step = Step(self.config.max_num_batched_tokens)
        self._schedule_running(step)
        self._schedule_prefill(step)
        if not step.preempted and self.waiting.requests:
            self._admit(step)
        if self.blocks_in_use > self.max_blocks_in_use:
            self.max_blocks_in_use = self.blocks_in_use
        if self.free < 0 or self.blocks_in_use > self.num_blocks:
            raise RuntimeError(f"KV accounting broken: free={self.free} in_use={self.blocks_in_use}")
        if self._execute(step):
            self._advance(step)

    def _report_before_keys(self: Simulator, step: Step) -> None:
        """Dynamic-key policies see all service so far before a decision reads their keys."""
        if self.dynamic_keys and not step.reported:
            self._report_all_service()
            step.reported = True

    def _schedule_running(self: Simulator, step: Step) -> None:
        decode = self.decode
        iteration = self.iteration
        needed = decode.blocks_needed(iteration)
        if needed <= self.free:  # the common case: every decoder gets its token and block
            self.free -= needed
            self.blocks_in_use += needed
            step.budget -= decode.size
            return
        self._report_before_keys(step)
        # Walk the decoders that need a block, in running order; the others just take their token. A
        # victim "was processed" (holds this iteration's block) iff it is a needer ahead of the one being
        # served, i.e. its run order is smaller.
        for r in decode.needing_block(iteration):
            if r.state != DECODE:
                continue  # preempted earlier in this walk
            while self.free < 1:
                v = self._victim()
                self._preempt(v, v.run_order < r.run_order)
                step.preempted = True
                if v is r:
                    break
            if r.state != DECODE:  # r itself was preempted: vLLM stops scheduling running requests
                step.stopped = True
                step.paused = [x for x in decode.members.values() if x.run_order > r.run_order]
                self.stopped_steps += 1
                for x in step.paused:
                    decode.leave(x, iteration)
                break
            self.free -= 1
            self.blocks_in_use += 1
        step.budget -= decode.size

    def _schedule_prefill(self: Simulator, step: Step) -> None:
        pf = step.prefill = self.prefilling
        if pf is None or step.stopped or step.budget <= 0:
            return
        x = min(pf.to_compute - pf.computed, step.budget)
        nb = blocks_for(pf.computed + x, self.block_size) - pf.blocks
        if nb > self.free:
            self._report_before_keys(step)
            while nb > self.free:
                v = self._victim()
                step.budget += self._preempt(v, v.state == DECODE)
                step.preempted = True
                if v is pf:
                    break
        if self.prefilling is pf:
            self.free -= nb
            self.blocks_in_use += nb
            pf.blocks += nb
            step.budget -= x
            step.chunks.append((pf, x, pf.computed))
            step.prefill_scheduled = True

    def _admit(self: Simulator, step: Step) -> None:
        waiting = self.waiting
        max_seqs = self.config.max_num_seqs
        running = self.decode.size + (1 if self.prefilling is not None else 0)
        if step.budget <= 0 or running >= max_seqs:
            return
        if self.dynamic_keys and not self.preempt_for_admission and not waiting.admissible(
                self.free, step.budget, running):
            return
        self._report_before_keys(step)
        fresh = False
        while step.budget > 0 and running < max_seqs:
            r = waiting.head(fresh)
            fresh = True
            if r is None:
                break
            if waiting.blocks_to_admit(r, step.budget) > self.free:
                if not self.preempt_for_admission:
                    break
                made_room = self._preempt_for_admission(r, step)
                if made_room is None:
                    break
                displaced, r.key = made_room
                running -= displaced
                if waiting.blocks_to_admit(r, step.budget) > self.free:
                    raise RuntimeError("preemption for admission freed too few blocks (engine invariant broken)")
            else:
                r.key = waiting.pop_head()
            self._start_running(r, step)
            running += 1

    def _preempt_for_admission(self: Simulator, head: SimRequest, step: Step) -> tuple[int, Any] | None:
        """Preempt the planned larger-key running requests so that ``head`` fits: how many, and the head's
        ``(key, seq)``; ``None`` if no plan frees enough. Takes the head's heap entry off first (victims
        re-enter the queue)."""
        pf_x = step.chunks[0][1] if step.prefill_scheduled else 0  # the prefill's chunk is the first one
        plan, _ = self._admission_plan(head, self.free, step.budget, pf_x)
        if plan is None:
            return None
        head_key = self.waiting.pop_head()
        for v in plan:
            if self.trace:
                self.admission_log.append((self.now, v.req.req_id, v.key, head_key))
            if v is step.prefill:
                step.chunks.pop(0)
                step.budget += pf_x
                step.prefill_scheduled = False
                self._preempt(v, False)
            else:
                step.budget += self._preempt(v, True)
            self.admission_preemptions += 1
        return len(plan), head_key

    def _start_running(self: Simulator, r: SimRequest, step: Step) -> None:
        """``r`` (its heap entry taken, ``key`` set) leaves waiting and gets its first chunk."""
        x = r.to_compute if r.to_compute < step.budget else step.budget
        nb = blocks_for(x, self.block_size)
        if self.waiting.keyed_version != self.running_keys_version:
            self.running_keys_version = -1  # the cached running keys are of another version: re-key at the next victim search
        self.waiting.remove(r)
        r.admitted_iteration = self.iteration
        r.state = PREFILL
        r.run_order = self.next_run_order
        self.next_run_order += 1
        r.blocks = nb
        self.free -= nb
        self.blocks_in_use += nb
        step.budget -= x
        if r.first_scheduled_s < 0:
            r.first_scheduled_s = self.now
        step.chunks.append((r, x, 0))

    def _execute(self: Simulator, step: Step) -> bool:
        """Run the scheduled iteration: advance the clock by its latency (eq. 1) and the counters.
        Returns False (and undoes the pause) if nothing was scheduled."""
        n = self.decode.size
        pre = 0
        ctx = 0
        attn = 0
        for _, x, c in step.chunks:
            pre += x
            ctx += c
            attn += 2 * c * x + x * x
        if n == 0 and pre == 0:
            self.no_progress_steps += 1
            if self.no_progress_steps > 3:
                raise RuntimeError(f"simulated engine made no progress at t={self.now:.3f}s "
                                   f"(waiting={len(self.waiting.requests)}, free blocks={self.free})")
            for r in step.paused:
                self.decode.join(r, self.iteration)
            return False
        self.no_progress_steps = 0
        self.detailed_steps += 1
        kv_dec = self.decode.kv_tokens(self.iteration)
        dt = self.config.latency.step_s(pre, n, kv_dec + ctx, float(attn))
        if self.blocks_in_use >= 0.9 * self.num_blocks:
            self.saturated_s += dt
            self.saturated_iterations += 1
        self.kv_token_s += dt * (kv_dec + ctx)
        self.busy_s += dt
        self.iteration += 1
        self.now += dt
        return True

    def _advance(self: Simulator, step: Step) -> None:
        """Credit the executed iteration: skipped decoders rejoin, chunks are computed, a completed
        prefill samples its first token (and joins the decode group, or finishes), finished decoders
        leave."""
        iteration = self.iteration
        for r in step.paused:
            self.decode.join(r, iteration)
        if step.prefill_scheduled:
            self.prefilling = None  # re-set below if its prefill is still unfinished
        # else: a prefilling request that was not scheduled this iteration (a decoder preempted itself,
        # or no budget was left) stays mid-prefill with its blocks; it must not be dropped.
        for r, x, _ in step.chunks:
            r.computed += x
            r.unreported_prefill += x
            if r.computed == r.to_compute:  # prefill done: the last chunk samples a token
                r.generated += 1
                r.to_compute += 1
                if r.generated >= r.output_tokens:
                    r.state = PENDING
                    self._report_service(r)
                    self._release_blocks(r)
                    self._finish_request(r)
                else:
                    self.decode.join(r, iteration)
            else:
                if self.prefilling is not None:
                    raise RuntimeError("more than one request left mid-prefill (engine invariant broken)")
                r.state = PREFILL
                self.prefilling = r
        self._finish_decoders()
        if self.config.check_invariants:
            self.check_invariants()

    def _finish_decoders(self: Simulator) -> None:
        """Decoders that generated their last token leave the group and finish."""
        iteration = self.iteration
        for r in self.decode.finished_by(iteration):
            self._report_service(r)
            self.decode.leave(r, iteration)
            self._release_blocks(r)
            self._finish_request(r)

    def _release_blocks(self: Simulator, r: SimRequest) -> None:
        self.free += r.blocks
        self.blocks_in_use -= r.blocks
