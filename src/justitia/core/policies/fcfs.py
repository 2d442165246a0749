"""vLLM's default policy (paper §5.1's "vLLM" baseline): requests in arrival order; the newest running
request is preempted first."""

from __future__ import annotations

from justitia.core.policy import Key, Policy, Req


class FCFS(Policy):
    """First come, first served over *requests* (vLLM ``--scheduling-policy fcfs``)."""

    name = "fcfs"
    capacity_keeps_keys = True  # the key reads no capacity or iteration time
    app_events_keep_keys = True  # arrivals/finishes never re-key other apps

    def key(self, req: Req) -> Key:
        return (req.arrival_s, req.seq)
