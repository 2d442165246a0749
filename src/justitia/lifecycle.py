"""Stop every server this process started when it is asked to stop (SIGTERM, SIGINT, SIGHUP).

Servers (:class:`justitia.vllm.serve.Server`) register themselves here while they run. Commands that
start servers (``justitia serve / bench / calibrate``, ``benchmarks/load_test.py``) run inside
:func:`stop_servers_on_signals`: on SIGTERM, SIGINT or SIGHUP the handler stops every registered
server (all asked at once, then each waited for), refuses new ones, and raises :class:`Interrupted`
(a ``KeyboardInterrupt``) in the main thread so the command unwinds as on Ctrl-C; the command line
exits with ``128 + signal number``. If unwinding then hangs (a worker thread blocked on a dead
server), the process exits anyway ``exit_after_s`` seconds later. A launcher killed outright
(SIGKILL) runs no handler: each server's supervisor (:mod:`justitia.vllm.supervise`) sees its parent
die and stops the server itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
EXIT_AFTER_S = 5.0  # after the servers are stopped, the rest of the unwinding gets this long


class Stoppable(Protocol):
    def terminate(self) -> None:
        """Ask it to stop; return at once."""

    def stop(self) -> object:
        """Stop it and wait until it has (bounded); idempotent."""


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread after a stop signal; every registered server is already stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


_lock = threading.RLock()
_live: dict[int, Stoppable] = {}
_stopping: int | None = None  # the signal being handled


def register(obj: Stoppable) -> None:
    """Track a started server until :func:`unregister`. Raises :class:`Interrupted` if a stop
    signal is being handled (then nothing may start any more)."""
    with _lock:
        if _stopping is not None:
            raise Interrupted(_stopping)
        _live[id(obj)] = obj


def unregister(obj: Stoppable) -> None:
    with _lock:
        _live.pop(id(obj), None)


def live() -> list[Stoppable]:
    """The servers registered now, oldest first."""
    with _lock:
        return list(_live.values())


def stop_all() -> int:
    """Stop every registered server: all asked at once, then each waited for. How many there were."""
    objs = live()
    for obj in objs:
        with contextlib.suppress(Exception):
            obj.terminate()
    for obj in objs:
        try:
            obj.stop()
        except Exception as e:  # noqa: BLE001  one server's failure must not keep the others running
            print(f"stopping {obj!r} failed: {e}", file=sys.stderr)
    return len(objs)


def _exit_later(code: int, after_s: float) -> None:
    def force() -> None:
        threading.Event().wait(after_s)
        sys.stderr.flush()
        os._exit(code)

    threading.Thread(target=force, name="exit-after-stop", daemon=True).start()


@contextlib.contextmanager
def stop_servers_on_signals(signals: Sequence[int] = STOP_SIGNALS,
                            exit_after_s: float | None = EXIT_AFTER_S) -> Iterator[None]:
    """Within this block, a stop signal stops every registered server and raises :class:`Interrupted`.

    The previous handlers come back on exit. Outside the main thread (where Python cannot set
    handlers) it does nothing. ``exit_after_s=None``: never force the exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: object) -> None:
        global _stopping
        with _lock:
            if _stopping is not None:
                return  # already stopping: the first signal's stop is bounded, let it finish
            _stopping = signum
        n = stop_all()
        print(f"{signal.Signals(signum).name}: stopped {n} server(s)", file=sys.stderr, flush=True)
        if exit_after_s is not None:
            _exit_later(128 + signum, exit_after_s)
        raise Interrupted(signum)

    global _stopping
    previous = {sig: signal.signal(sig, handle) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        with _lock:
            _stopping = None


def run_stopping_servers(main: Callable[[], int], name: str) -> int:
    """``main()`` under :func:`stop_servers_on_signals`; a stop signal gives ``128 + signal number``."""
    try:
        with stop_servers_on_signals():
            return main()
    except Interrupted as e:
        print(f"{name}: {e}", file=sys.stderr)
        return e.exit_code
