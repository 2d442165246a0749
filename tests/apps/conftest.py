"""Shared fixtures for the workload tests: real traces from ../shared/data."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def paper_mix_20k():
    """20,000 paper-mix applications (seed 6), generated once for the statistical tests."""
    from justitia.apps.workloads import make_workload

    return make_workload("paper-mix", 20_000, seed=6)
