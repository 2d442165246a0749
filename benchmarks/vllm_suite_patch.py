"""pytest plugin for ``benchmarks/vllm_scheduler_suite.sh``: run vLLM's own scheduler tests on the plugin.

Loaded with ``-p vllm_suite_patch`` before vLLM's test modules are imported. With
``JUSTITIA_SUITE=plugin`` it puts :class:`~justitia.vllm.scheduler.JustitiaScheduler` (and the async
variant) in the place of vLLM's ``Scheduler``/``AsyncScheduler`` in the modules the tests import them
from; with ``JUSTITIA_SUITE=vllm`` nothing is replaced (the baseline). The policy is ``JUSTITIA_POLICY``.
"""

from __future__ import annotations

import os

if os.environ.get("JUSTITIA_SUITE") == "plugin":
    import vllm.v1.core.sched.async_scheduler as _async_mod
    import vllm.v1.core.sched.scheduler as _sched_mod

    from justitia.vllm.scheduler import JustitiaAsyncScheduler, JustitiaScheduler

    _sched_mod.Scheduler = JustitiaScheduler  # type: ignore[misc]
    _async_mod.AsyncScheduler = JustitiaAsyncScheduler  # type: ignore[misc]
