"""The measured causes of ``justitia reproduce``'s differences from the paper, on hand-computed cases."""

from __future__ import annotations

import pytest

from justitia.apps.model import AppSpec, Call, Stage
from justitia.paper.causes import cost_order_agreement, later_than_reference, noise_effect, size_class, vtc_strength


def _app(app_id: str, typ: str, prompt: int, output: int, n: int = 1) -> AppSpec:
    return AppSpec(app_id, 0.0, typ, (Stage(tuple(Call(prompt, output) for _ in range(n))),))


def test_vtc_strength_reads_the_papers_implied_ratio() -> None:
    v = vtc_strength({"vtc": 50.0, "app_fcfs": 200.0, "sjf-mlp": 40.0})
    assert v["vtc_over_parrot"] == 0.25 and v["srjf_over_vtc"] == 0.8
    assert v["paper_vtc_over_parrot"] == pytest.approx(0.389 / 0.425)


def test_later_than_reference_counts_by_size_class() -> None:
    types = {"a": "ev", "b": "fv", "c": "sc", "d": "mrs"}  # small, small, medium, large
    ref = {"a": 10.0, "b": 20.0, "c": 100.0, "d": 1000.0}
    acts = {"a": 14.0, "b": 19.0, "c": 130.0, "d": 900.0}
    out = later_than_reference(acts, ref, types)
    assert out["late"] == 2 and out["agents"] == 4
    assert out["by_class"]["small"] == {"agents": 2, "late": 1, "late_share": 0.5, "median_excess_s": 4.0}
    assert out["by_class"]["medium"]["median_excess_s"] == 30.0 and out["by_class"]["large"]["late"] == 0
    assert out["worst"]["app_id"] == "a" and out["worst"]["ratio"] == pytest.approx(1.4)  # 1.4 > 1.3 (c)
    assert size_class("chat") == "other"


def test_cost_order_agreement_counts_flipped_pairs() -> None:
    # memory cost p*d + d(d+1)/2 vs p + 2d: x (1000, 10) -> 10055 vs 1020; y (10, 200) -> 22100 vs 410;
    # z (100, 100) -> 15050 vs 300. Memory orders x < z < y, compute z < y < x: pairs (x,y), (x,z) flip.
    apps = [_app("x", "ev", 1000, 10), _app("y", "ev", 10, 200), _app("z", "ev", 100, 100)]
    out = cost_order_agreement(apps)
    assert out["pairs_flipped"] == pytest.approx(2 / 3)
    assert out["spearman"] == pytest.approx(-0.5)


def test_noise_effect_splits_the_jct_change_by_class() -> None:
    apps = [_app("s", "ev", 10, 10), _app("m", "sc", 10, 100), _app("l", "mrs", 10, 1000)]
    out = noise_effect(apps, 1.0, 0, {"s": 1.0, "m": 2.0, "l": 3.0}, {"s": 4.0, "m": 3.0, "l": 3.0})
    assert out["pairs_flipped"] == 0.0  # λ = 1: no noise, nothing flips
    assert out["jct_change_s"] == {"small": 3.0, "medium": 1.0, "large": 0.0}
    assert out["jct_change_share"]["small"] == 0.75


def test_report_names_the_baseline_only_when_our_vtc_is_stronger() -> None:
    from justitia.paper.report import _vtc_cause

    strong = {"causes": {"vtc": vtc_strength({"vtc": 35.0, "app_fcfs": 100.0})}}
    weak = {"causes": {"vtc": vtc_strength({"vtc": 95.0, "app_fcfs": 100.0})}}
    assert "Measured cause: the baseline" in _vtc_cause(strong, "vtc")
    assert "the gap is in the ordering's own gain" in _vtc_cause(weak, "vtc")
    assert _vtc_cause(strong, "app_fcfs") == ""
