"""A tiny event feeder for policy unit tests (our own logic; the engine lives in justitia.sim).

It plays the engine's side of the Policy contract (DESIGN §1): announce applications and requests,
report service with cost-eq.-1 accounting, finish requests/applications, and ask for keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from justitia.core.cost import held_token_iters
from justitia.core.policy import AppInfo, Policy, Req


class Driver:
    def __init__(self, policy: Policy) -> None:
        self.p = policy
        self.seq = 0
        self.now = 0.0
        self.reqs: dict[str, Req] = {}
        self.decoded: dict[str, int] = {}

    def at(self, t: float) -> None:
        assert t >= self.now, "time must not go backwards"
        self.now = t
        self.p.tick(t)

    def app(self, app_id: str, t: float, cost: float | None = None, weight: float = 1.0,
            features: Mapping[str, Any] | None = None) -> AppInfo:
        self.at(t)
        info = AppInfo(app_id=app_id, arrival_s=t, weight=weight, cost_hint=cost, features=dict(features or {}))
        self.p.app_arrived(info, t)
        return info

    def req(self, app_id: str, t: float, prompt: int = 100, stage: int = 0, call: int = 0,
            req_id: str | None = None) -> Req:
        self.at(t)
        rid = req_id or f"{app_id}/r{self.seq}"
        r = Req(req_id=rid, app_id=app_id, arrival_s=t, seq=self.seq, prompt_tokens=prompt, stage=stage, call_index=call)
        self.seq += 1
        self.reqs[rid] = r
        self.decoded[rid] = 0
        self.p.request_arrived(r, t)
        return r

    def serve(self, r: Req, t: float, decode: int, prefill: int = 0) -> float:
        """Report ``decode`` decode iterations of ``r`` ending at ``t`` (cost eq. 1 accounting)."""
        self.at(t)
        held = held_token_iters(r.prompt_tokens, self.decoded[r.req_id], decode)
        self.decoded[r.req_id] += decode
        self.p.served(r, prefill, decode, held, t)
        return held

    def finish(self, r: Req, t: float) -> None:
        self.at(t)
        self.p.request_finished(r, t)
        self.reqs.pop(r.req_id, None)

    def finish_app(self, app_id: str, t: float) -> None:
        self.at(t)
        for r in [r for r in self.reqs.values() if r.app_id == app_id]:
            self.finish(r, t)
        self.p.app_finished(app_id, t)

    def order(self, reqs: Iterable[Req] | None = None) -> list[str]:
        """Request ids in admission order (ascending key); the last one is preempted first."""
        pool = list(self.reqs.values()) if reqs is None else list(reqs)
        return [r.req_id for r in sorted(pool, key=self.p.key)]

    def victim(self, running: Iterable[Req]) -> str:
        """The running request the engine preempts first (largest key)."""
        return max(running, key=self.p.key).req_id


def assert_no_app_state(policy: Policy, allow: Iterable[str] = ()) -> None:
    """Every per-application/per-request container of ``policy`` is empty (no state leaks)."""
    allowed = set(allow)
    for name, val in vars(policy).items():
        if name in allowed:
            continue
        if isinstance(val, (dict, set, list)):
            assert len(val) == 0, f"{type(policy).__name__}.{name} still holds {val!r}"
