"""Justitia: fair and efficient scheduling of LLM applications (arXiv 2510.17015).

Importing the package is cheap; the client SDK (``justitia.App``) is loaded on first use so that
``justitia.core`` and the simulator never pull in the OpenAI client, vLLM or torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "App":
        from justitia.runner.sdk import App

        return App
    raise AttributeError(f"module 'justitia' has no attribute {name!r}")
