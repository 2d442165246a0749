"""SafePolicy: a failing policy falls back to FCFS for the step, logs once, counts (issue 6 §3)."""

from __future__ import annotations

import logging
import math

import pytest

from justitia.core.policies.justitia import Justitia
from justitia.core.policy import AppInfo, Key, Req
from justitia.policies import make_policy
from justitia.core.safe import FALLBACK, HEALTHY, SafePolicy


class BrokenJustitia(Justitia):
    """Justitia with switchable faults: key() raises / returns NaN for chosen apps, events raise."""

    def __init__(self) -> None:
        super().__init__(capacity_tokens=1000, iteration_s=0.01)
        self.bad_key_apps: set[str] = set()
        self.nan_apps: set[str] = set()
        self.list_key = False
        self.raise_in: set[str] = set()

    def key(self, req: Req) -> Key:
        if req.app_id in self.bad_key_apps:
            raise ZeroDivisionError(f"boom for {req.app_id}")
        if req.app_id in self.nan_apps:
            return (math.nan, req.seq)
        if self.list_key:
            return [1, 2]  # type: ignore[return-value]
        return super().key(req)

    listens_to_service = True  # served() records what it is told

    def served(self, req: Req, prefill_tokens: int, decode_tokens: int, held: float, now: float) -> None:
        if "served" in self.raise_in:
            raise RuntimeError("served exploded")
        super().served(req, prefill_tokens, decode_tokens, held, now)

    def app_arrived(self, app: AppInfo, now: float) -> None:
        if "app_arrived" in self.raise_in:
            raise RuntimeError("app_arrived exploded")
        super().app_arrived(app, now)


def setup_apps(p: SafePolicy) -> list[Req]:
    """Three apps: 'big' arrives first with a large cost, 'small' and 'mid' after; two requests each."""
    reqs: list[Req] = []
    seq = 0
    for t, app, cost in ((0.0, "big", 1e6), (0.1, "small", 10.0), (0.2, "mid", 1e3)):
        p.tick(t)
        p.app_arrived(AppInfo(app_id=app, arrival_s=t, cost_hint=cost), t)
        for _ in range(2):
            r = Req(req_id=f"{app}/{seq}", app_id=app, arrival_s=t, seq=seq, prompt_tokens=10)
            p.request_arrived(r, t)
            reqs.append(r)
            seq += 1
    return reqs


def order(p: SafePolicy, reqs: list[Req]) -> list[str]:
    return [r.req_id for r in sorted(reqs, key=p.key)]


FCFS_ORDER = ["big/0", "big/1", "small/2", "small/3", "mid/4", "mid/5"]
POLICY_ORDER = ["small/2", "small/3", "mid/4", "mid/5", "big/0", "big/1"]


def test_healthy_wrapper_keeps_the_policy_order_and_counts_nothing() -> None:
    inner = BrokenJustitia()
    p = SafePolicy(inner)
    reqs = setup_apps(p)
    p.tick(0.3)
    assert order(p, reqs) == POLICY_ORDER
    assert [r.req_id for r in sorted(reqs, key=inner.key)] == POLICY_ORDER
    assert p.fallbacks == 0 and not p.failing
    assert all(p.key(r)[0] == HEALTHY for r in reqs)
    assert p.name == "justitia" and p.clock is inner.clock  # attributes delegate


def test_key_failure_makes_the_step_fcfs_logs_once_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    inner = BrokenJustitia()
    p = SafePolicy(inner)
    reqs = setup_apps(p)
    inner.bad_key_apps = {"small", "mid", "big"}  # every key fails
    caplog.set_level(logging.DEBUG, logger="justitia")
    v0 = p.version
    p.tick(0.3)
    assert order(p, reqs) == FCFS_ORDER
    assert p.fallbacks == 1  # after the first failure the policy is not asked again this step
    assert p.failing and p.version > v0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "ZeroDivisionError" in caplog.text and "boom for" in caplog.text
    # Next step: tried again, fails again — counted, not logged again at ERROR.
    p.tick(0.4)
    assert not p.failing
    assert order(p, reqs) == FCFS_ORDER
    assert p.fallbacks == 2 and p.fallback_steps == 2
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    # The fault goes away: the next step is back to the policy order, and the version moved.
    inner.bad_key_apps.clear()
    v1 = p.version
    p.tick(0.5)
    assert p.version > v1
    assert order(p, reqs) == POLICY_ORDER
    assert p.fallbacks == 2


def test_one_bad_app_in_a_sort_keeps_a_total_order_and_makes_the_rest_fcfs() -> None:
    inner = BrokenJustitia()
    p = SafePolicy(inner)
    reqs = setup_apps(p)
    inner.bad_key_apps = {"mid"}
    p.tick(0.3)
    # sorted() keys every element first: small/big keyed before mid are tier 0, mid on are tier 1.
    got = order(p, reqs)
    assert got == ["small/2", "small/3", "big/0", "big/1", "mid/4", "mid/5"]
    # The batch API makes the whole step FCFS.
    p.tick(0.35)
    keys = p.keys(reqs)
    assert all(k[0] == FALLBACK for k in keys)
    assert [r.req_id for _, r in sorted(zip(keys, reqs), key=lambda kr: kr[0])] == FCFS_ORDER
    # Preemption victim while failing: the newest request (vLLM's FCFS victim).
    assert max(reqs, key=p.key).req_id == "mid/5"


@pytest.mark.parametrize("fault", ["nan", "list"])
def test_invalid_keys_are_failures(fault: str) -> None:
    inner = BrokenJustitia()
    p = SafePolicy(inner)
    reqs = setup_apps(p)
    if fault == "nan":
        inner.nan_apps = {"small", "mid", "big"}
    else:
        inner.list_key = True
    p.tick(0.3)
    assert order(p, reqs) == FCFS_ORDER
    assert p.fallbacks == 1
    assert isinstance(p.last_error, ValueError if fault == "nan" else TypeError)


def test_event_failures_do_not_escape_and_state_is_still_released() -> None:
    inner = BrokenJustitia()
    p = SafePolicy(inner)
    reqs = setup_apps(p)
    inner.raise_in = {"served", "app_arrived"}
    p.tick(0.3)
    p.served(reqs[0], 10, 1, 11.0, 0.3)  # raises inside, caught
    assert p.failing and p.fallbacks == 1
    assert order(p, reqs) == FCFS_ORDER
    p.tick(0.4)
    p.app_arrived(AppInfo(app_id="late", arrival_s=0.4, cost_hint=1.0), 0.4)
    late = Req(req_id="late/6", app_id="late", arrival_s=0.4, seq=6)
    p.request_arrived(late, 0.4)
    assert p.failing and p.fallbacks == 2
    # Next step: 'late' is unknown to Justitia (its arrival failed), its key raises KeyError.
    p.tick(0.5)
    assert order(p, [*reqs, late])[-1] == "late/6"
    assert p.fallbacks == 3 and isinstance(p.last_error, KeyError)
    inner.raise_in.clear()
    for app in ("big", "small", "mid", "late"):
        for r in [r for r in [*reqs, late] if r.app_id == app]:
            p.request_finished(r, 1.0)
        p.app_finished(app, 1.0)
    assert inner.apps == {} and inner.state_entries() == 0


def test_wrapping_is_idempotent_and_rejects_non_policies() -> None:
    inner = make_policy("fcfs", 1000, 0.01)
    p = SafePolicy(SafePolicy(inner))
    assert p.inner is inner
    with pytest.raises(TypeError):
        SafePolicy(object())  # type: ignore[arg-type]


def test_changed_apps_is_forwarded_and_none_after_every_regime_flip() -> None:
    """The wrapped policy's changed_apps() report passes through; after entering or leaving a failing
    step (keys switched regime) the wrapper answers None once: "re-key everything"."""
    vtc = make_policy("vtc", 1000, 0.01)
    p = SafePolicy(vtc)
    assert p.reports_changed_apps and p.dynamic_keys and p.listens_to_service
    reqs = setup_apps(p)
    assert p.changed_apps() is None  # VTC's own first answer: nothing was reported yet
    p.served(reqs[0], 10, 2, 0.0, 0.3)
    assert p.changed_apps() == {"big"}
    assert p.changed_apps() == set()
    vtc.apps.pop("mid")  # a bug: the policy forgets an app that still has requests
    assert p.key(reqs[4])[0] == FALLBACK and p.failing
    p.served(reqs[2], 10, 0, 0.0, 0.3)
    assert p.changed_apps() is None  # entered FCFS: every key moved
    assert p.changed_apps() == set()
    p.tick(0.4)
    assert not p.failing and p.changed_apps() is None  # left FCFS: every key moved again
    p.served(reqs[2], 0, 1, 0.0, 0.5)
    assert p.changed_apps() == {"small"}
