"""The HTTP edge accepts the demand predictor's optional ``vllm_xargs`` features (integers >= 0) and
refuses anything else with a 400 naming the field (justitia.vllm.middleware; issue 3 §2, issue 4)."""

from __future__ import annotations

import pytest

from justitia.vllm.middleware import MAX_COUNT, check_payload, did_you_mean

FEATURES = ("first_stage_calls", "hint_stages", "hint_calls")


@pytest.mark.parametrize("name", FEATURES)
@pytest.mark.parametrize("value", [0, 1, 7, MAX_COUNT])
def test_valid_counts_pass(name: str, value: int) -> None:
    assert check_payload({"vllm_xargs": {"app_id": "a", name: value}}) is None


@pytest.mark.parametrize("name", FEATURES)
@pytest.mark.parametrize("value", [-1, 2.5, 3.0, "4", True, None, [1], MAX_COUNT + 1, float("nan")])
def test_invalid_counts_are_refused_naming_the_field(name: str, value: object) -> None:
    bad = check_payload({"vllm_xargs": {"app_id": "a", name: value}})
    assert bad is not None and bad.status == 400
    assert bad.field == f"vllm_xargs.{name}" and f"vllm_xargs.{name}" in bad.message


def test_all_three_together_and_old_name_gets_a_suggestion() -> None:
    ok = {"app_id": "a", "first_stage_calls": 8, "hint_stages": 3, "hint_calls": 10, "app_cost_hint": 5.0}
    assert check_payload({"vllm_xargs": ok}) is None
    assert did_you_mean("first_calls") == "first_stage_calls"
    bad = check_payload({"vllm_xargs": {"first_calls": 2}})
    assert bad is not None and "did you mean vllm_xargs.first_stage_calls" in bad.message
    top = check_payload({"hint_calls": 3})  # belongs inside vllm_xargs
    assert top is not None and top.field == "hint_calls"
