"""Parrot-style application-level FIFO (issue 2 §2; DESIGN §6 "Parrot-style app-level FIFO").

Whole applications are served in the order they arrived: every request of an earlier application
runs before any request of a later one, even when the later application's request reached the
engine first (e.g. the earlier application was between stages). Inside an application requests are
first come, first served. The key is

    key(r) = (a_app, n_app, a_r, seq_r)

with ``a_app`` the application's arrival time, ``n_app`` its arrival order (ties of ``a_app``),
``a_r`` the request's arrival and ``seq_r`` the engine's sequence number. The running request of the
latest application is preempted first. Keys change only on arrivals (static policy).
"""

from __future__ import annotations

from justitia.core.policy import AppInfo, Estimator, Key, Policy, Req


class AppFCFS(Policy):
    """First come, first served over *applications* (Parrot-style)."""

    name = "app_fcfs"
    app_events_keep_keys = True  # arrivals/finishes never re-key other apps

    def __init__(self, capacity_tokens: float, iteration_s: float, estimator: Estimator | None = None) -> None:
        super().__init__(capacity_tokens, iteration_s, estimator)
        self._order: dict[str, int] = {}
        self._next = 0

    def app_arrived(self, app: AppInfo, now: float) -> None:
        super().app_arrived(app, now)
        self._order[app.app_id] = self._next
        self._next += 1

    def app_finished(self, app_id: str, now: float) -> None:
        self._order.pop(app_id, None)
        super().app_finished(app_id, now)

    def key(self, req: Req) -> Key:
        try:
            app, n = self.apps[req.app_id], self._order[req.app_id]
        except KeyError:
            raise KeyError(f"request {req.req_id!r} belongs to unknown application {req.app_id!r}; "
                           "the engine must call app_arrived() first") from None
        return (app.arrival_s, n, req.arrival_s, req.seq)
