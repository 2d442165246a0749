"""The paper's TF-IDF + per-type MLP predictor (§4.2, Table 1) on small synthetic sets."""

from __future__ import annotations

import numpy as np
import pytest

from justitia.core.policy import AppInfo
from justitia.paper.tfidf import Tfidf, TfidfEstimator, TfidfMLPConfig, first_width


def test_tfidf_rows_are_unit_and_ignore_unknown_words():
    tf = Tfidf.fit(["the cat sat", "the dog ran", "the cat ran"])
    assert set(tf.vocab) == {"the", "cat", "sat", "dog", "ran"}
    # "the" is in every document: lowest idf
    assert tf.idf[tf.vocab["the"]] == pytest.approx(min(tf.idf))
    v = tf.transform("The CAT, the cat!")
    assert float(np.linalg.norm(v)) == pytest.approx(1.0)
    assert v[tf.vocab["cat"]] > v[tf.vocab["the"]] > 0
    assert not tf.transform("zebra").any()


def test_first_width_proportional_to_input_size():
    cfg = TfidfMLPConfig(width_per_token=0.25, min_width=16, max_width=256)
    assert first_width(400, cfg) == 100
    assert first_width(800, cfg) == 200
    assert first_width(10, cfg) == 16 and first_width(10_000, cfg) == 256


def _synthetic(rng: np.random.Generator, n: int) -> tuple[list[str], list[float]]:
    """Cost = 1000 × (number of 'step' words) for 'long' tasks, 100 × for 'short' ones, among filler."""
    filler = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    texts, costs = [], []
    for _ in range(n):
        k = int(rng.integers(1, 6))
        kind = "long" if rng.random() < 0.5 else "short"
        words = [kind] + ["step"] * k + list(rng.choice(filler, 30))
        texts.append(" ".join(rng.permutation(words)))
        costs.append((1000.0 if kind == "long" else 100.0) * k)
    return texts, costs


def test_learns_better_than_the_mean():
    rng = np.random.default_rng(0)
    train, test = _synthetic(rng, 100), _synthetic(rng, 100)
    est = TfidfEstimator.train({"t": train}, TfidfMLPConfig(epochs=300)).with_texts(
        {f"x{i}": t for i, t in enumerate(test[0])})
    pred = np.asarray([est.estimate(AppInfo(f"x{i}", 0.0, app_type="t")) for i in range(100)])
    true = np.asarray(test[1])
    model_err = np.mean(np.abs(pred - true) / true)
    mean_err = np.mean(np.abs(np.mean(train[1]) - true) / true)
    assert model_err < 0.5 * mean_err
    # an unknown type or a missing text gets the mean training cost, not an error
    assert est.estimate(AppInfo("nope", 0.0, app_type="t")) == pytest.approx(np.mean(train[1]))
