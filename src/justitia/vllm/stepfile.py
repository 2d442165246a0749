"""The Justitia scheduler plus an engine step counter in a file, for ``justitia bench --clock steps``.

:class:`StepFileScheduler` is :class:`~justitia.vllm.scheduler.JustitiaScheduler` that, after each
step that scheduled tokens (the steps vLLM's ``vllm:iteration_tokens_total`` counts), writes the
count so far as 8 bytes to ``JUSTITIA_STEP_FILE``: the benchmark's client paces its stream by it
(:mod:`justitia.runner.stepclock`) at the cost of one ``pwrite`` a step, where a ``/metrics`` scrape
would cost tens of milliseconds.
"""

from __future__ import annotations

import os
from typing import Any

from justitia.runner.stepclock import write_step_file
from justitia.vllm.scheduler import JustitiaScheduler

STEP_FILE_ENV = "JUSTITIA_STEP_FILE"
SCHEDULER_CLS = "justitia.vllm.stepfile.StepFileScheduler"


class StepFileScheduler(JustitiaScheduler):
    """:class:`JustitiaScheduler` that publishes its count of token-scheduling steps (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._step_count = 0
        path = os.environ.get(STEP_FILE_ENV)
        self._step_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644) if path else None
        if self._step_fd is not None:
            write_step_file(self._step_fd, 0)

    def update_from_output(self, scheduler_output: Any, model_runner_output: Any) -> Any:
        out = super().update_from_output(scheduler_output, model_runner_output)
        if scheduler_output.total_num_scheduled_tokens > 0:
            self._step_count += 1
            if self._step_fd is not None:
                write_step_file(self._step_fd, self._step_count)
        return out

    def shutdown(self) -> None:
        try:
            super().shutdown()
        finally:
            if self._step_fd is not None:
                os.close(self._step_fd)
                self._step_fd = None
