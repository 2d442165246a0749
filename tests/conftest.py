"""Suite-wide checks. The real traces and GPU profiles in ../shared/data are part of the environment:
a missing folder fails the run at once with the paths searched, instead of skipping tests silently."""

from __future__ import annotations

from justitia.paths import shared_data_dir


def pytest_sessionstart(session: object) -> None:
    shared_data_dir()  # raises FileNotFoundError naming every place it looked
