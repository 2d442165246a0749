"""Applications and requests through the simulated engine: arrivals, stage releases, completions and
the service reported to the policy (DESIGN §1; cost eq. 1 in :mod:`justitia.core.cost`).

Stage ``k+1``'s calls arrive when every call of stage ``k`` has finished, plus the stage's ``delay_s``
(the first stage starts at the app's arrival plus its ``delay_s``). Service is reported to policies that
listen (:attr:`Policy.listens_to_service`) in spans — prefill tokens, decoded tokens and the
token·iterations of KV held (cost eq. 1, :func:`held_token_iters`) — at finish, at preemption, every
``served_every`` iterations and, for dynamic-key policies, before every decision that reads keys.

Mixed into :class:`justitia.sim.engine.Simulator`, whose constructor describes the state used here.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from justitia.apps.model import arrival_features
from justitia.core.cost import held_token_iters
from justitia.core.policy import AppInfo, Req
from justitia.sim.request import DECODE, DONE, SimApp, SimRequest
from justitia.sim.result import AppRecord

if TYPE_CHECKING:
    from justitia.sim.engine import Simulator

_INF = float("inf")


class AppLifecycle:
    """Arrivals, stages, completions, service reports (a part of :class:`~justitia.sim.engine.Simulator`)."""

    def _next_event_s(self: Simulator) -> float:
        """When the next application arrives or the next delayed stage is released (inf: none known)."""
        t = self.arrivals[0][0] if self.arrivals else _INF
        if self.stage_releases and self.stage_releases[0][0] < t:
            t = self.stage_releases[0][0]
        return t

    def _ingest(self: Simulator, now: float) -> None:
        """Process every arrival and stage release due at ``now``, in time order (arrivals first on ties)."""
        arrivals = self.arrivals
        releases = self.stage_releases
        policy = self.policy
        while True:
            t_app = arrivals[0][0] if arrivals else _INF
            t_rel = releases[0][0] if releases else _INF
            if t_app <= t_rel:
                if t_app > now:
                    return
                _, index, spec = heapq.heappop(arrivals)
                info = AppInfo(app_id=spec.app_id, arrival_s=spec.arrival_s, weight=spec.weight, app_type=spec.type,
                               cost_hint=spec.cost, features=arrival_features(spec))
                app = SimApp(index, spec, info)
                policy.tick(t_app)
                v0 = policy.version
                policy.app_arrived(info, t_app)
                if self.app_events_keep_keys:  # only the new app (nothing queued or running yet) was keyed
                    self._carry_policy_version(v0)
                if policy.estimator is not None:
                    app.estimated_cost = float(policy.estimator.estimate(info))
                self._start_stage(app, 0, t_app)
            else:
                if t_rel > now:
                    return
                t, _, app, stage = heapq.heappop(releases)
                policy.tick(t)
                self._release_stage(app, stage, t)

    def _carry_policy_version(self: Simulator, old: int) -> None:
        """The policy moved on from version ``old`` without changing any queued or running key."""
        new = self.policy.version
        self.waiting.carry_version(old, new)
        if self.running_keys_version == old:
            self.running_keys_version = new

    def _start_stage(self: Simulator, app: SimApp, stage: int, t: float) -> None:
        delay = app.spec.stages[stage].delay_s
        if delay > 0:
            self._release_seq += 1
            heapq.heappush(self.stage_releases, (t + delay, self._release_seq, app, stage))
        else:
            self._release_stage(app, stage, t)

    def _release_stage(self: Simulator, app: SimApp, stage: int, t: float) -> None:
        calls = app.spec.stages[stage].calls
        app.stage = stage
        app.calls_left = len(calls)
        policy = self.policy
        app_id = app.spec.app_id
        for j, c in enumerate(calls):
            seq = self.next_seq
            self.next_seq = seq + 1
            req = Req(f"{app_id}/{stage}.{j}", app_id, t, seq, c.prompt_tokens, stage, j)
            rq = SimRequest(seq, req, app, c.prompt_tokens, c.output_tokens)
            policy.request_arrived(req, t)
            self.waiting.push(rq)

    def _finish_request(self: Simulator, rq: SimRequest) -> None:
        """``rq`` generated its last token at ``now`` (its blocks were freed by the caller)."""
        now = self.now
        if rq.state == DONE:
            raise RuntimeError(f"request {rq.req.req_id!r} finished twice")
        rq.state = DONE
        rq.finish_s = now
        self.finished += 1
        self.last_finish_s = now
        req = rq.req
        self.policy.request_finished(req, now)
        if self.trace:
            self.requests.append({"req_id": req.req_id, "app_id": req.app_id, "stage": req.stage,
                                  "arrival_s": req.arrival_s, "first_scheduled_s": rq.first_scheduled_s,
                                  "finish_s": now, "prompt_tokens": rq.prompt_tokens,
                                  "output_tokens": rq.output_tokens, "preemptions": rq.preemptions})
        if self._on_call_finished is not None:
            self._on_call_finished(req.app_id, req.stage, req.call_index, rq.prompt_tokens, rq.output_tokens, now)
        app = rq.app
        app.calls_done += 1
        app.calls_left -= 1
        if app.calls_left == 0:
            if app.stage + 1 < len(app.spec.stages):
                self._start_stage(app, app.stage + 1, now)
            else:
                self._finish_app(app, now)
        if self.progress is not None and (self.finished % self._progress_every == 0
                                          or self.finished == self.total_requests):
            self.progress(self.finished, self.total_requests)

    def _finish_app(self: Simulator, app: SimApp, now: float) -> None:
        spec = app.spec
        self.records[app.index] = AppRecord(
            app_id=spec.app_id, app_type=spec.type, arrival_s=spec.arrival_s, completion_s=now,
            cost=app.cost, weight=spec.weight, num_calls=app.calls_done, estimated_cost=app.estimated_cost)
        self.apps_done += 1
        v0 = self.policy.version
        self.policy.app_finished(spec.app_id, now)
        if self.app_events_keep_keys:  # the finished app has no queued or running request
            self._carry_policy_version(v0)
        if self._on_app_finished is not None:
            self._on_app_finished(spec.app_id, now)

    def _report_service(self: Simulator, rq: SimRequest) -> None:
        """Report ``rq``'s unreported service to a listening policy."""
        if not self.reports_service:
            return
        g = rq.generated_offset + self.iteration if rq.state == DECODE else rq.generated
        d = g - rq.reported_generated
        prefill = rq.unreported_prefill
        if d or prefill:
            held = held_token_iters(rq.prompt_tokens, rq.reported_generated, d)
            self.policy.served(rq.req, prefill, d, held, self.now)
            rq.reported_generated = g
            rq.unreported_prefill = 0

    def _report_all_service(self: Simulator) -> None:
        """Report every running request's unreported service."""
        if not self.reports_service:
            return
        iteration = self.iteration
        now = self.now
        served = self.policy.served
        for r in list(self.decode.members.values()):
            g = r.generated_offset + iteration
            d = g - r.reported_generated
            if d or r.unreported_prefill:
                served(r.req, r.unreported_prefill, d, held_token_iters(r.prompt_tokens, r.reported_generated, d), now)
                r.reported_generated = g
                r.unreported_prefill = 0
        if self.prefilling is not None:
            self._report_service(self.prefilling)
