"""Which application each request belongs to, and when an application starts and ends (DESIGN §1).

The paper schedules *agents* (§4.3): an agent arrives with its first inference and leaves the
scheduler when its last one is done. Inside a server the plugin only sees requests tagged with an
``app_id`` (:mod:`justitia.vllm.xargs`), so :class:`AppTracker` applies the rule clients rely on:

1. An application *starts* with the first request carrying its ``app_id`` (``policy.app_arrived``;
   the ``weight``/``app_type``/``app_cost_hint`` of that first request are the application's).
   A request without ``app_id`` is its own single-request application.
2. It *ends* (``policy.app_finished``; all its per-app state is dropped) when all its requests are
   done (finished or aborted) and either the last one carried ``app_done`` — then at once — or no new
   request with that ``app_id`` arrived within the idle window (checked by :meth:`AppTracker.expire_idle`).
   A request with the same ``app_id`` arriving later starts a *new* application.

Pure Python over :mod:`justitia.core`: no vLLM import, testable on its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from justitia.core.policy import AppInfo, Policy, Req
from justitia.vllm.xargs import COUNT_FIELDS, AppTags

Emit = Callable[..., None]
"""``emit(event, **fields)``: the trace writer (or a no-op)."""


@dataclass(slots=True)
class TrackedApp:
    """One live application: what the policy was told, and which of its requests are still in the engine."""

    info: AppInfo
    live: set[str] = field(default_factory=set)
    done_requested: bool = False
    requests_seen: int = 0


def app_features(tags: AppTags, prompt: int, own: bool) -> dict[str, Any]:
    """``AppInfo.features`` of a new application (keys of :mod:`justitia.predict.features`): the
    client's optional ``first_stage_calls`` (default 1), ``hint_stages``, ``hint_calls``, the first
    stage's prompt tokens and, when a cluster tier sent one, its global ``finish_tag``. Only the first
    request is seen when the application arrives, so ``prompt_tokens_total`` = its prompt ×
    ``first_stage_calls`` (its siblings are assumed alike) and ``prompt_tokens_max`` = its prompt."""
    feats: dict[str, Any] = {"first_stage_calls": 1, "own": own}
    for name in COUNT_FIELDS:
        if name in tags.counts:
            feats[name] = tags.counts[name]
    feats["prompt_tokens_total"] = prompt * max(int(feats["first_stage_calls"]), 1)
    feats["prompt_tokens_max"] = prompt
    if tags.finish_tag is not None:
        feats["finish_tag"] = tags.finish_tag
    return feats


def _no_emit(event: str, **fields: Any) -> None:
    return None


class AppTracker:
    """Request <-> application bookkeeping and application lifetimes, feeding ``policy`` (module doc).

    ``on_app_end(app_type, act_s)`` is called for every application that ends (the plugin records
    the completion time in Prometheus). Every operation is O(1) (idle expiry O(1) per ended app).
    """

    def __init__(self, policy: Policy, idle_s: float, emit: Emit | None = None,
                 on_app_end: Callable[[str, float], None] | None = None) -> None:
        self.policy = policy
        self.idle_s = idle_s
        self.emit = emit or _no_emit
        self.on_app_end = on_app_end
        self.reqs: dict[str, Req] = {}
        self.apps: dict[str, TrackedApp] = {}
        self.idle: OrderedDict[str, float] = OrderedDict()  # app_id -> time its last request ended
        self.apps_seen = 0
        self.apps_finished = 0
        self._seq = 0

    def request_arrived(self, req_id: str, tags: AppTags, prompt_tokens: int, now: float,
                        arrival_s: float | None = None) -> Req:
        """Register a new request (its application arrives with it if not live); return its :class:`Req`.

        ``arrival_s``: the request's own arrival instant on the same clock as ``now`` (default ``now``);
        it orders requests whose policy keys otherwise tie (every policy ends its key with it)."""
        own = tags.app_id is None
        app_id = req_id if tags.app_id is None else tags.app_id
        app = self.apps.get(app_id)
        if app is None:
            info = AppInfo(app_id=app_id, arrival_s=now, weight=tags.weight or 1.0,
                           app_type=tags.app_type or "unknown", cost_hint=tags.cost_hint,
                           features=app_features(tags, prompt_tokens, own))
            app = self.apps[app_id] = TrackedApp(info)
            self.apps_seen += 1
            self.policy.app_arrived(info, now)
            self.emit("app_arrived", app_id=app_id, app_type=info.app_type, weight=info.weight,
                      cost_hint=info.cost_hint, own=own)
        else:
            self.idle.pop(app_id, None)
        self._seq += 1
        req = Req(req_id=req_id, app_id=app_id, arrival_s=now if arrival_s is None else arrival_s, seq=self._seq,
                  prompt_tokens=prompt_tokens, call_index=app.requests_seen)
        app.requests_seen += 1
        app.live.add(req_id)
        if own or tags.app_done:
            app.done_requested = True
        self.reqs[req_id] = req
        self.policy.request_arrived(req, now)
        self.emit("request_arrived", req_id=req_id, app_id=app_id, prompt_tokens=prompt_tokens)
        return req

    def request_done(self, req_id: str, now: float, **trace: Any) -> Req | None:
        """A request left the engine (finished or aborted); ends its application if that was the
        last one and ``app_done`` was asked, else starts the idle window. ``None`` if unknown."""
        req = self.reqs.pop(req_id, None)
        if req is None:
            return None
        self.policy.request_finished(req, now)
        self.emit("request_finished", req_id=req_id, app_id=req.app_id, **trace)
        app = self.apps.get(req.app_id)
        if app is not None:
            app.live.discard(req_id)
            if not app.live:
                if app.done_requested:
                    self.end_app(req.app_id, now, "app_done")
                else:
                    self.idle[req.app_id] = now
                    self.idle.move_to_end(req.app_id)
        return req

    def end_app(self, app_id: str, now: float, why: str) -> None:
        """End ``app_id`` now (no-op if it is not live)."""
        app = self.apps.pop(app_id, None)
        since = self.idle.pop(app_id, None)
        if app is None:
            return
        if self.on_app_end is not None:
            # ACT: arrival to the end of its last request (an idle-ended app ended when it went idle)
            self.on_app_end(app.info.app_type, (now if since is None else since) - app.info.arrival_s)
        self.policy.app_finished(app_id, now)
        self.apps_finished += 1
        self.emit("app_finished", app_id=app_id, why=why, requests=app.requests_seen)

    def expire_idle(self, now: float) -> None:
        """End every application idle for at least ``idle_s``."""
        idle = self.idle
        while idle:
            app_id, since = next(iter(idle.items()))
            if now - since < self.idle_s:
                break
            self.end_app(app_id, now, "idle")

    def stats(self) -> dict[str, int]:
        """Sizes of the tracker's state (all return to 0 once every application has ended)."""
        return {
            "apps_seen": self.apps_seen,
            "apps_finished": self.apps_finished,
            "active_apps": len(self.apps),
            "idle_apps": len(self.idle),
            "tracked_requests": len(self.reqs),
        }
