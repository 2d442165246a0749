"""Parrot-style application-level FIFO (paper §5.1's "Parrot" baseline; DESIGN §6).

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

from justitia.core.policy import Key, Policy, Req


class AppFCFS(Policy):
    """First come, first served over *applications* (Parrot-style)."""

    name = "app_fcfs"
    capacity_keeps_keys = True  # the key reads no capacity or iteration time
    app_events_keep_keys = True  # arrivals/finishes never re-key other apps

    def key(self, req: Req) -> Key:
        try:
            app = self.apps[req.app_id]
        except KeyError:
            raise self.unknown_app(req) from None
        return (app.info.arrival_s, app.order, req.arrival_s, req.seq)
