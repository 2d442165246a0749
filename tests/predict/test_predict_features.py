"""Arrival features: one function for the training (AppSpec) and serving (AppInfo) paths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from justitia.apps.model import AppSpec, Call, Stage
from justitia.core.policy import AppInfo
from justitia.predict.features import (
    FEATURE_NAMES,
    N_FEATURES,
    app_info,
    arrival_features,
    feature_matrix,
    feature_vector,
)


def _spec(app_type: str = "self-consistency") -> AppSpec:
    first = Stage((Call(100, 50), Call(300, 20), Call(200, 80)))
    second = Stage((Call(900, 200),), delay_s=1.0)
    return AppSpec("a1", 2.5, app_type, (first, second))


def col(name: str) -> int:
    return FEATURE_NAMES.index(name)


def test_spec_and_engine_paths_give_identical_vectors() -> None:
    spec = _spec()
    # what an engine (simulator or vLLM plugin) builds from what it sees at arrival
    engine = AppInfo("a1", 2.5, app_type="self-consistency",
                     features={"first_stage_calls": 3, "prompt_tokens_total": 600, "prompt_tokens_max": 300})
    v_train = feature_vector(app_info(spec))
    v_serve = feature_vector(engine)
    assert v_train.shape == (N_FEATURES,)
    np.testing.assert_array_equal(v_train, v_serve)
    np.testing.assert_array_equal(feature_matrix([app_info(spec), engine]), np.vstack([v_train, v_serve]))
    assert v_train[col("type=self-consistency")] == 1.0 and v_train[col("type=unknown")] == 0.0
    assert v_train[col("log_calls")] == pytest.approx(math.log(3))
    assert v_train[col("log_prompt_total")] == pytest.approx(math.log1p(600))
    assert v_train[col("log_prompt_mean")] == pytest.approx(math.log1p(200))
    assert v_train[col("log_prompt_max")] == pytest.approx(math.log1p(300))
    assert v_train[col("has_hint_stages")] == 0.0


def test_hints_and_defaults() -> None:
    spec = _spec()
    feats = arrival_features(spec, hints=True)
    assert feats["hint_stages"] == 2 and feats["hint_calls"] == 4
    v = feature_vector(app_info(spec, hints=True))
    assert v[col("has_hint_stages")] == 1.0 and v[col("log_hint_stages")] == pytest.approx(math.log1p(2))
    assert v[col("has_hint_calls")] == 1.0 and v[col("log_hint_calls")] == pytest.approx(math.log1p(4))
    # a bare request (vLLM without xargs): one call, mean = max = total, unknown type
    bare = feature_vector(AppInfo("r", 0.0, features={"prompt_tokens_total": 99}))
    assert bare[col("type=unknown")] == 1.0 and bare[col("log_calls")] == 0.0
    assert bare[col("log_prompt_mean")] == bare[col("log_prompt_max")] == pytest.approx(math.log1p(99))


def test_unknown_type_uses_unknown_column() -> None:
    v = feature_vector(app_info(_spec("my-new-agent")))
    assert v[col("type=unknown")] == 1.0
    assert v[: col("type=unknown")].sum() == 0.0


def test_oracle_flag_sets_true_cost() -> None:
    spec = _spec()
    assert app_info(spec).cost_hint == spec.cost
    assert app_info(spec, oracle=False).cost_hint is None


@pytest.mark.parametrize("bad", [-1, float("nan"), "12", True])
def test_bad_feature_values_are_named(bad: object) -> None:
    info = AppInfo("x", 0.0, features={"prompt_tokens_total": bad})
    with pytest.raises(ValueError, match="prompt_tokens_total"):
        feature_vector(info)


class _Recorder:
    """An estimator that keeps the AppInfo the engine hands it at each arrival."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: dict[str, AppInfo] = {}

    def estimate(self, app: AppInfo) -> float:
        self.seen[app.app_id] = app
        return 1.0


def _by_hand(spec: AppSpec) -> np.ndarray:
    """The feature vector written out from the application's first stage, not through the library."""
    prompts = [c.prompt_tokens for c in spec.stages[0].calls]
    v = np.zeros(N_FEATURES)
    v[col(f"type={spec.type}") if f"type={spec.type}" in FEATURE_NAMES else col("type=unknown")] = 1.0
    v[col("log_calls")] = math.log(len(prompts))
    v[col("log_prompt_total")] = math.log1p(sum(prompts))
    v[col("log_prompt_mean")] = math.log1p(sum(prompts) / len(prompts))
    v[col("log_prompt_max")] = math.log1p(max(prompts))
    return v


def test_concrete_feature_values() -> None:
    """Three calls with prompts 100, 300, 200 (second stage unseen at arrival), type self-consistency."""
    v = feature_vector(app_info(_spec()))
    assert v[col("type=self-consistency")] == 1.0 and v.sum() == pytest.approx(1.0 + 1.0986 + 6.3986 + 5.3033 + 5.7071,
                                                                                abs=1e-3)
    assert v[col("log_calls")] == pytest.approx(1.0986, abs=1e-4)  # ln 3
    assert v[col("log_prompt_total")] == pytest.approx(6.3986, abs=1e-4)  # ln 601
    assert v[col("log_prompt_mean")] == pytest.approx(5.3033, abs=1e-4)  # ln 201
    assert v[col("log_prompt_max")] == pytest.approx(5.7071, abs=1e-4)  # ln 301


def test_simulator_hands_the_predictor_the_features_of_the_first_stage() -> None:
    """What the simulator gives an estimator at arrival is the first stage's fan-out and prompt lengths
    (compared with values written out from each application's structure)."""
    from justitia.apps.workloads import make_workload
    from justitia.sim.config import preset
    from justitia.sim.engine import make_simulation_policy, simulate

    apps = make_workload("paper-mix", 60, seed=11)
    rec = _Recorder()
    cfg = preset("h100-llama2-7b")
    simulate(apps, make_simulation_policy("justitia", cfg, estimator=rec), cfg)
    assert sorted(rec.seen) == sorted(a.app_id for a in apps)
    assert len({len(a.stages[0].calls) for a in apps}) > 1  # fan-outs differ: the check means something
    for a in apps:
        np.testing.assert_allclose(feature_vector(rec.seen[a.app_id]), _by_hand(a), rtol=1e-12, err_msg=a.app_id)
        assert rec.seen[a.app_id].app_type == a.type and rec.seen[a.app_id].arrival_s == a.arrival_s
