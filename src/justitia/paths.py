"""Where the project's data and caches live."""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """``../shared/data`` next to the project (override with ``JUSTITIA_DATA``)."""
    env = os.environ.get("JUSTITIA_DATA")
    candidates = [Path(env)] if env else []
    candidates += [_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        "shared data folder not found; looked in: " + ", ".join(str(c) for c in candidates)
        + " (set JUSTITIA_DATA to the folder holding traces/ and profiling/)"
    )


def cache_dir() -> Path:
    """Cache for built models and trained predictors (``JUSTITIA_CACHE``, default ``~/.cache/justitia``)."""
    d = Path(os.environ.get("JUSTITIA_CACHE", Path.home() / ".cache" / "justitia"))
    d.mkdir(parents=True, exist_ok=True)
    return d
