"""The paper's finish-time fair ratio (JCT ÷ the same app's JCT under vtc) and its delay bound."""

from __future__ import annotations

import csv
import json

import pytest

from justitia.apps.model import AppSpec, Call, Stage
from justitia.bench.metrics import AppMetrics, PolicyMetrics, apply_fair_ratios, evaluate, paper_bound_s
from justitia.bench.report import FAIR_RATIO_KEYS, SUMMARY_KEYS, summary_dict, write_apps_csv
from justitia.sim.result import AppRecord, RunResult


def _pm(policy: str, acts: dict[str, float]) -> PolicyMetrics:
    apps = [AppMetrics(app_id=a, app_type="t", arrival_s=1.0, completion_s=1.0 + act, fair_finish_s=1.0 + act,
                       cost=1.0, estimated_cost=None, critical_path_s=0.0, allowed_delay_s=0.0)
            for a, act in acts.items()]
    return PolicyMetrics(policy=policy, apps=apps, fair_bound_s=0.0, throughput_tok_s=0.0, preemptions=0)


def test_fair_ratio_on_a_hand_computed_case(tmp_path) -> None:
    vtc = _pm("vtc", {"a": 10.0, "b": 20.0, "c": 40.0, "d": 5.0})
    jus = _pm("justitia", {"a": 5.0, "b": 20.0, "c": 50.0, "d": 4.0})  # ratios .5, 1, 1.25, .8
    s = summary_dict("w", [jus, vtc])["policies"]
    assert s["justitia"]["fair_ratio_le1_share"] == 0.75  # a, b (exactly 1), d
    assert s["justitia"]["fair_ratio_max"] == 1.25
    assert s["vtc"]["fair_ratio_le1_share"] == 1.0 and s["vtc"]["fair_ratio_max"] == 1.0
    assert tuple(s["justitia"]) == SUMMARY_KEYS + FAIR_RATIO_KEYS
    rows = list(csv.DictReader(write_apps_csv(tmp_path / "apps.csv", [jus, vtc]).open()))
    assert {r["app_id"]: float(r["fair_ratio"]) for r in rows if r["policy"] == "justitia"} == \
        {"a": 0.5, "b": 1.0, "c": 1.25, "d": 0.8}


def test_no_vtc_no_fair_ratio_keys(tmp_path) -> None:
    jus = _pm("justitia", {"a": 5.0})
    s = summary_dict("w", [jus, _pm("fcfs", {"a": 7.0})])["policies"]
    assert tuple(s["justitia"]) == SUMMARY_KEYS
    rows = list(csv.DictReader(write_apps_csv(tmp_path / "apps.csv", [jus]).open()))
    assert rows[0]["fair_ratio"] == ""
    json.dumps(s)


def test_an_app_missing_under_vtc_is_an_error() -> None:
    with pytest.raises(ValueError, match="did not run under 'vtc'"):
        apply_fair_ratios([_pm("vtc", {"a": 1.0}), _pm("justitia", {"a": 1.0, "z": 2.0})])


def test_paper_bound_is_two_largest_calls_plus_largest_app_over_the_rate() -> None:
    big = AppSpec("big", 0.0, "t", (Stage((Call(100, 10), Call(10, 10))), Stage((Call(200, 4),))))
    small = AppSpec("small", 1.0, "t", (Stage((Call(50, 2),)),))
    c_max = max(c.cost for a in (big, small) for c in a.calls())
    assert c_max == Call(100, 10).cost == 100 * 10 + 55
    res = RunResult("justitia", [AppRecord("big", "t", 0.0, 5.0, big.cost), AppRecord("small", "t", 1.0, 2.0, small.cost)],
                    capacity_tokens=1000.0, iteration_s=0.01, makespan_s=5.0)
    m = evaluate(res, [big, small])
    assert m.paper_bound_s == pytest.approx((2 * c_max + big.cost) / 1000.0 * 0.01)
    assert paper_bound_s(c_max, big.cost, 1000.0, 0.01) == m.paper_bound_s
    assert m.summary()["apps_over_paper_bound"] == sum(a.delay_vs_fair_s > m.paper_bound_s for a in m.apps)
