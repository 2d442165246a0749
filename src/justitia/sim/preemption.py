"""Preemption in the simulated engine: which running request gives way, and preemption for admission
(DESIGN §3; PAPER §4: the policy's key orders preemption as well as admission).

* **Preemption by recompute** (vLLM 0.32's priority-policy path): when a running request cannot get a
  KV block, the running request with the largest policy key is preempted — its blocks freed, back to
  waiting, later recomputing prompt + generated tokens as one prefill. The contract makes even ``fcfs``
  pick its victim by key (the newest arrival) where vLLM's FCFS pops the last admitted.
* **Preemption for admission** (``EngineConfig.preempt_for_admission``, off by default as in vLLM):
  when the waiting head does not fit, running requests with a strictly larger key, admitted at least
  ``admission_preempt_min_iters`` iterations ago, are preempted, largest key first, if together they
  free enough.

Mixed into :class:`justitia.sim.engine.Simulator`, whose constructor describes the state used here.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

from justitia.sim.decoding import NEVER
from justitia.sim.kvcache import blocks_for
from justitia.sim.request import DECODE, SimRequest

if TYPE_CHECKING:
    from justitia.sim.engine import Simulator

_by_key = operator.attrgetter("key")


class Preemption:
    """Victim choice and preemption (a part of :class:`~justitia.sim.engine.Simulator`)."""

    def _running(self: Simulator) -> list[SimRequest]:
        """The running requests (decoders, then the prefilling one), with ``key`` = (policy key, seq)
        up to date. Keys of running requests are cached while the policy's version says they hold."""
        running = list(self.decode.members.values())
        if self.prefilling is not None:
            running.append(self.prefilling)
        if self.dynamic_keys or self.running_keys_version != self.policy.version:
            key = self.policy.key
            for r in running:
                r.key = (key(r.req), r.seq)
            self.running_keys_version = self.policy.version
        return running

    def _victim(self: Simulator) -> SimRequest:
        """The running request with the largest policy key (the policy's preemption choice)."""
        running = self._running()
        best = max(running, key=_by_key)
        if self.trace:
            others = [r.key for r in running if r is not best]
            self.preemption_log.append((self.now, best.req.req_id, best.key, max(others) if others else None))
        return best

    def _preempt(self: Simulator, victim: SimRequest, processed: bool) -> int:
        """Preempt ``victim`` (recompute): free its blocks, send it back to waiting. ``processed``: a
        decoder already given this iteration's token and block. Returns the token budget it gives back
        (1 for a processed decoder)."""
        self._report_service(victim)
        give = 0
        if victim.state == DECODE:
            self.decode.leave(victim, self.iteration, 1 if processed else 0)
            give = 1 if processed else 0
        else:  # the prefilling request (never processed before a victim search)
            self.prefilling = None
        freed = victim.blocks
        self.free += freed
        self.blocks_in_use -= freed
        victim.preemptions += 1
        self.preemptions += 1
        self.waiting.push(victim)
        return give

    def _admission_plan(self: Simulator, head: SimRequest, free: int, budget: int,
                        prefill_chunk: int) -> tuple[list[SimRequest] | None, int]:
        """Preemption for admission: the running requests to preempt so that ``head`` (the waiting
        queue's head; its heap entry on top) fits, or ``None`` if the eligible ones with a strictly larger
        key cannot free enough. Called at admission time (every decoder already holds this iteration's
        block; the prefilling request, if any, holds its chunk of ``prefill_chunk`` tokens). Also returns
        in how many iterations the next larger-key running request becomes eligible (decode advances
        stop there)."""
        head_key = self.waiting.head_key()
        iteration = self.iteration
        bs = self.block_size
        latest = iteration - self.admission_min_iters  # admitted at or before this: eligible
        candidates = []
        eligible_in = NEVER
        for r in self._running():
            if r.key > head_key:
                if r.admitted_iteration <= latest:
                    candidates.append(r)
                elif r.admitted_iteration - latest < eligible_in:
                    eligible_in = r.admitted_iteration - latest
        if not candidates:
            return None, eligible_in
        candidates.sort(key=_by_key, reverse=True)
        freed = 0
        give = 0
        plan = []
        for v in candidates:
            plan.append(v)
            if v.state == DECODE:
                freed += blocks_for(v.context_offset + iteration + 1, bs)
                give += 1
            else:
                freed += v.blocks
                give += prefill_chunk
            if free + freed >= self.waiting.blocks_to_admit(head, budget + give):
                return plan, eligible_in
        return None, eligible_in
