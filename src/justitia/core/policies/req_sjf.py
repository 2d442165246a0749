"""vLLM-SJF, the paper's per-request baseline (§5.1): shortest predicted *request* first.

The paper ranks each inference by a predicted duration (DistilBERT on the prompt). Here a request's
predicted job is its KV cost (cost eq. 1) from what is known when it arrives: its prompt length ``p``
and an output-length estimate ``ô`` — the mean output length of the finished requests of the same
application type so far (online, per type: the type is the strongest prior, App. A of the paper),
:data:`DEFAULT_OUTPUT_TOKENS` before any finished:

    key(r) = (p·ô + ô²/2, a_r, seq_r)                                             (req-SJF eq. 1)

Applications are ignored (no app-level order, no fairness); the key is fixed at arrival, so
preemption victims are the requests with the largest predicted job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from justitia.core.cost import call_cost
from justitia.core.policy import Estimator, Key, Policy, Req

DEFAULT_OUTPUT_TOKENS = 256
"""Output estimate of a type before any of its requests finished."""


class OutputMeans:
    """Mean output length per application type, learned from finished requests. It is bounded by the
    number of types (not applications), so it outlives the applications by design."""

    def __init__(self, default: float = DEFAULT_OUTPUT_TOKENS) -> None:
        self.default = float(default)
        self._stats: dict[str, tuple[int, int]] = {}  # type -> (finished requests, their output tokens)

    def add(self, app_type: str, output_tokens: int) -> None:
        n, total = self._stats.get(app_type, (0, 0))
        self._stats[app_type] = (n + 1, total + output_tokens)

    def mean(self, app_type: str) -> float:
        n, total = self._stats.get(app_type, (0, 0))
        return total / n if n else self.default


@dataclass(slots=True)
class _ReqState:
    pred: float  # p·ô + ô²/2 at arrival (req-SJF eq. 1)
    decoded: int = 0  # tokens generated so far: the request's true output once it finishes


class ReqSJF(Policy):
    """Shortest predicted request (prompt + per-type mean output) first."""

    name = "req-sjf"
    capacity_keeps_keys = True  # the key reads no capacity or iteration time
    listens_to_service: ClassVar[bool] = True  # counts each request's decoded tokens
    app_events_keep_keys = True

    def __init__(self, capacity_tokens: float, iteration_s: float, estimator: Estimator | None = None) -> None:
        super().__init__(capacity_tokens, iteration_s, estimator)
        self._reqs: dict[str, _ReqState] = {}
        self.outputs = OutputMeans()

    def _type_of(self, req: Req) -> str:
        app = self.apps.get(req.app_id)
        return app.info.app_type if app is not None else "unknown"

    def output_estimate(self, app_type: str) -> float:
        """``ô`` of req-SJF eq. 1 for ``app_type``."""
        return self.outputs.mean(app_type)

    def request_arrived(self, req: Req, now: float) -> None:
        o = self.output_estimate(self._type_of(req))
        self._reqs[req.req_id] = _ReqState(call_cost(max(req.prompt_tokens, 0), max(o, 1.0)))

    def served(self, req: Req, prefill_tokens: int, decode_tokens: int, held_token_iters: float, now: float) -> None:
        st = self._reqs.get(req.req_id)
        if st is not None:
            st.decoded += decode_tokens

    def request_finished(self, req: Req, now: float) -> None:
        st = self._reqs.pop(req.req_id, None)
        if st is not None and st.decoded > 0:
            self.outputs.add(self._type_of(req), st.decoded)

    def key(self, req: Req) -> Key:
        st = self._reqs.get(req.req_id)
        if st is None:  # a request the engine did not announce: predict it now
            self.request_arrived(req, req.arrival_s)
            st = self._reqs[req.req_id]
        return (st.pred, req.arrival_s, req.seq)
