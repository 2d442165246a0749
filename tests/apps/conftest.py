"""Shared fixtures for the workload tests: real traces from ../shared/data (skip if the folder is absent)."""

from __future__ import annotations

import pytest

from justitia.paths import shared_data_dir


@pytest.fixture(scope="session", autouse=True)
def _shared_data() -> None:
    try:
        shared_data_dir()
    except FileNotFoundError as e:  # pragma: no cover - the data folder is part of the environment
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def paper_mix_20k():
    """20,000 paper-mix applications (seed 6), generated once for the statistical tests."""
    from justitia.apps.workloads import make_workload

    return make_workload("paper-mix", 20_000, seed=6)
