"""Fixtures for the predictor tests: one small model trained once per session (real PyTorch, real
generators and traces from ../shared/data; a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest



@pytest.fixture(scope="session")
def small_spec():
    from justitia.predict.train import DataSpec

    return DataSpec("mix", "", n_apps=1200, seed=3)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, small_spec):
    """(model, path) of an MLP trained on a small mix (40 epochs)."""
    from justitia.predict.mlp import TrainConfig
    from justitia.predict.train import train_predictor

    model = train_predictor(small_spec, TrainConfig(epochs=40, seed=3, progress=False))
    path = Path(tmp_path_factory.mktemp("predictor")) / "model.pt"
    model.save(path)
    return model, path
