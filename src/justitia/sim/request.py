"""The simulated engine's view of an application and of one request (DESIGN §1, §3).

A :class:`SimRequest` is one call of an application's stage as the engine serves it: waiting, prefilling
(chunked), decoding in the lock-step decode group (:mod:`justitia.sim.decoding`), or done. While it
decodes, its context and generated-token counts are stored relative to the engine's iteration counter
(``offset + iteration``), so an iteration that only decodes touches no request.
"""

from __future__ import annotations

from typing import Any

from justitia.apps.model import AppSpec
from justitia.core.policy import AppInfo, Req

# request states
PENDING = 0  # not in any queue: between stages, or being moved between waiting and running
WAITING = 1  # in the waiting queue (:class:`justitia.sim.waiting.WaitingQueue`)
PREFILL = 2  # running, its prompt (or recomputation) not yet fully computed
DECODE = 3  # running in the decode group, one token per iteration
DONE = 4  # generated its last token


class SimApp:
    """An application being served: which stage runs and how many of its calls are still open."""

    __slots__ = ("index", "spec", "info", "stage", "calls_left", "calls_done", "cost", "estimated_cost")

    def __init__(self, index: int, spec: AppSpec, info: AppInfo) -> None:
        self.index = index  # order of addition to the engine (the run's result lists apps in this order)
        self.spec = spec
        self.info = info
        self.stage = -1  # the stage whose calls were released last
        self.calls_left = 0  # calls of that stage not finished yet
        self.calls_done = 0
        self.cost = info.cost_hint  # the true cost (cost eq. 2), what the oracle estimator sees
        self.estimated_cost: float | None = None  # the policy's estimator's figure, if it has one


class SimRequest:
    """Engine-side state of one call.

    ``computed`` tokens hold KV (``blocks`` blocks); ``to_compute`` is what its prefill must reach (the
    prompt, or prompt + generated tokens when it recomputes after a preemption). While ``state ==
    DECODE`` the fields ``computed``, ``generated`` and ``blocks`` are stale: the truth at the start of
    engine iteration ``i`` is ``computed = context_offset + i`` and ``generated = generated_offset + i``.
    """

    __slots__ = ("seq", "req", "app", "prompt_tokens", "output_tokens", "generated", "computed", "to_compute",
                 "blocks", "context_offset", "generated_offset", "finish_iteration", "state", "run_order",
                 "reported_generated", "unreported_prefill", "wait_epoch", "key_epoch", "key",
                 "admitted_iteration", "preemptions", "first_scheduled_s", "finish_s")

    def __init__(self, seq: int, req: Req, app: SimApp, prompt_tokens: int, output_tokens: int) -> None:
        self.seq = seq  # engine sequence number: arrival order, the tie-break between equal keys
        self.req = req  # what the policy sees
        self.app = app
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.generated = 0
        self.computed = 0
        self.to_compute = prompt_tokens
        self.blocks = 0
        self.context_offset = 0
        self.generated_offset = 0
        self.finish_iteration = 0  # the iteration at whose start it has generated its last token
        self.state = PENDING
        self.run_order = -1  # position in the running list (admission order; vLLM's running order)
        self.reported_generated = 0  # generated tokens already reported to the policy (Policy.served)
        self.unreported_prefill = 0  # prefill tokens computed but not reported yet
        self.wait_epoch = 0  # bumped on every entry into waiting: older need-heap entries are void
        self.key_epoch = 0  # bumped on every re-key: a key-heap entry is valid iff its epoch is this
        self.key: Any = None  # (policy key, seq): cached while running, for victim choice
        self.admitted_iteration = 0  # when it was last admitted (preemption for admission)
        self.preemptions = 0
        self.first_scheduled_s = -1.0
        self.finish_s = -1.0
