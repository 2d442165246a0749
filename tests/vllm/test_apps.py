"""The application tracker without vLLM: lifetimes, request <-> app bookkeeping, a reused id."""

from __future__ import annotations

import pytest

from justitia.core.cost import call_cost
from justitia.core.safe import SafePolicy
from justitia.policies import make_policy
from justitia.vllm.apps import AppTracker
from justitia.vllm.xargs import AppTags


def tracker(policy: str = "justitia", idle_s: float = 1.0) -> tuple[AppTracker, list[tuple[str, float]]]:
    ended: list[tuple[str, float]] = []
    pol = SafePolicy(make_policy(policy, 2048, 0.05))
    return AppTracker(pol, idle_s, on_app_end=lambda t, act: ended.append((t, act))), ended


def test_app_done_ends_at_once_and_idle_ends_after_the_window() -> None:
    t, ended = tracker(idle_s=1.0)
    t.request_arrived("a0", AppTags(app_id="A", app_type="x"), 10, 0.0)
    t.request_arrived("a1", AppTags(app_id="A", app_done=True), 10, 0.1)
    t.request_arrived("b0", AppTags(app_id="B", app_type="y"), 10, 0.2)
    t.request_done("a1", 0.5)  # app_done asked, but a0 still runs
    assert "A" in t.apps
    t.request_done("a0", 0.7)
    assert "A" not in t.apps and ended == [("x", pytest.approx(0.7))]
    t.request_done("b0", 1.0)
    t.expire_idle(1.9)
    assert "B" in t.apps and list(t.idle) == ["B"]
    t.request_arrived("b1", AppTags(app_id="B"), 10, 1.95)  # a new stage within the window: same app
    assert t.apps_seen == 2 and not t.idle
    t.request_done("b1", 2.0)
    t.expire_idle(3.0)
    assert t.stats() == {"apps_seen": 2, "apps_finished": 2, "active_apps": 0, "idle_apps": 0, "tracked_requests": 0}
    assert ended[1] == ("y", pytest.approx(2.0 - 0.2))  # ended when it went idle, not when noticed


def test_request_without_app_id_is_its_own_app_and_unknown_done_is_ignored() -> None:
    t, _ = tracker()
    r = t.request_arrived("solo", AppTags(), 5, 0.0)
    assert r.app_id == "solo" and t.apps["solo"].info.features["own"] is True
    assert t.request_done("nope", 0.1) is None
    t.request_done("solo", 0.2)
    assert t.stats()["active_apps"] == 0 and t.policy.state_entries() == 0


@pytest.mark.parametrize("policy", ["justitia", "vtc", "sjf", "app_fcfs", "plas", "atlas", "fcfs"])
def test_reused_id_inside_the_reference_is_a_new_app_without_fallback(policy: str) -> None:
    t, _ = tracker(policy)
    pol = t.policy
    cost = 4 * call_cost(16, 3)
    for rnd in range(4):  # the same id, each run ended by app_done, back at once
        now = rnd * 0.01
        reqs = [t.request_arrived(f"u{rnd}.{i}", AppTags(app_id="user-42", cost_hint=cost * 10, app_done=(i == 3)),
                                  16, now) for i in range(4)]
        assert t.apps["user-42"].info.arrival_s == now
        pol.key(reqs[0])
        for r in reqs:
            pol.served(r, 16, 3, call_cost(16, 3), now + 0.001)
            t.request_done(r.req_id, now + 0.002)
        pol.tick(now + 0.003)
        if policy == "justitia":
            assert pol.virtual_time() < cost * 10  # the ended incarnations are still in the reference
    assert pol.fallbacks == 0 and t.apps_seen == 4 and t.apps_finished == 4
    assert t.stats()["active_apps"] == 0 and pol.state_entries() == 0


def test_finish_tag_and_counts_reach_app_features() -> None:
    t, _ = tracker()
    t.request_arrived("r", AppTags(app_id="G", finish_tag=12.5, counts={"first_stage_calls": 4}), 30, 0.0)
    f = t.apps["G"].info.features
    assert f["finish_tag"] == 12.5 and f["first_stage_calls"] == 4 and f["prompt_tokens_total"] == 120
