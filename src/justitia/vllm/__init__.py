"""Justitia on the real vLLM engine: the scheduler plugin, the bundled model and the server launcher.

``justitia.vllm.JustitiaScheduler`` (and ``JustitiaAsyncScheduler``) are loaded lazily so that
importing this package (e.g. for :mod:`justitia.vllm.middleware`) does not import vLLM.
"""

from __future__ import annotations

from typing import Any

__all__ = ["JustitiaScheduler", "JustitiaAsyncScheduler", "JustitiaSchedulerMixin", "Server"]


def __getattr__(name: str) -> Any:
    if name in ("JustitiaScheduler", "JustitiaAsyncScheduler", "JustitiaSchedulerMixin"):
        from justitia.vllm import scheduler

        return getattr(scheduler, name)
    if name == "Server":
        from justitia.vllm.serve import Server

        return Server
    raise AttributeError(f"module 'justitia.vllm' has no attribute {name!r}")
