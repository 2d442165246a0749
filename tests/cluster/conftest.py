"""Shared fixtures of the cluster tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    """The bundled SmolLM2 model, built (once, ~1 min) if the cache does not hold it yet."""
    from justitia.vllm.model import build_default_model

    return build_default_model()
