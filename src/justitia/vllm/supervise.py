"""A tiny supervisor that holds one vLLM server's process tree and takes it down with its launcher.

``python -m justitia.vllm.supervise [--grace S] -- CMD ...`` runs ``CMD`` (vLLM's API server) as its
child and stays beside it. vLLM's API server starts the EngineCore, which starts the Worker; killing
the API server alone leaves both running (they hold the memory). So the supervisor

- makes itself a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): a process of the tree whose parent
  exits is re-parented to the supervisor, never to init, so every descendant stays findable;
- stops the whole tree when it gets SIGTERM, SIGINT or SIGHUP, when its launcher dies (its parent
  changes: even a SIGKILLed launcher, whose signal handlers never run), or when the API server exits
  on its own: SIGTERM to the API server (vLLM's clean shutdown), then SIGTERM to every process left
  after a short wait, then SIGKILL to whatever is still there ``grace`` seconds later;
- gives the API server ``PR_SET_PDEATHSIG``: if the supervisor itself is SIGKILLed, the API server
  gets SIGTERM and shuts its engine down.

It exits with the API server's exit status (128 + signal number if a signal ended it). Linux only
(``/proc``, ``prctl``); stdlib only, so it starts in a fraction of a second.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Sequence

from justitia.vllm.proctree import descendants, is_alive

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
POLL_S = 0.1
SERVER_FIRST_S = 2.0  # the API server alone gets this long to stop its engine cleanly
DEFAULT_GRACE_S = 5.0  # then SIGTERM to every process of the tree; SIGKILL after this many more seconds
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def prctl(option: int, arg: int) -> bool:
    """``prctl(option, arg)``; False where it is not available or refused."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, arg, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def spawn(cmd: Sequence[str]) -> int:
    """Fork and exec ``cmd`` (in our process group), with SIGTERM as its parent-death signal."""
    pid = os.fork()
    if pid == 0:  # child
        try:
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            os.execvp(cmd[0], list(cmd))
        finally:
            os._exit(127)  # exec failed
    return pid


class Reaper:
    """Reaps every exited child (ours and re-parented orphans) and remembers the server's status."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.status: int | None = None

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.server_pid:
                self.status = status

    def exit_code(self) -> int:
        if self.status is None:
            return 1
        code = os.waitstatus_to_exitcode(self.status)
        return 128 - code if code < 0 else code


def signal_all(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def wait_tree(reaper: Reaper, until: float) -> list[int]:
    """Reap until no descendant is left or ``until`` (monotonic) passes; the descendants left."""
    while True:
        reaper.reap()
        left = descendants(os.getpid())
        if not left or time.monotonic() >= until:
            return left
        time.sleep(POLL_S)


def stop_tree(reaper: Reaper, grace: float) -> None:
    """SIGTERM the server, then every process left, then SIGKILL what is still there."""
    if is_alive(reaper.server_pid):
        signal_all([reaper.server_pid], signal.SIGTERM)
        left = wait_tree(reaper, time.monotonic() + min(SERVER_FIRST_S, grace))
    else:
        left = descendants(os.getpid())
    if left:
        signal_all(left, signal.SIGTERM)
        left = wait_tree(reaper, time.monotonic() + grace)
    for _ in range(50):  # SIGKILL cannot be refused; repeat for anything forked meanwhile
        if not left:
            break
        signal_all(left, signal.SIGKILL)
        left = wait_tree(reaper, time.monotonic() + 1.0)
    reaper.reap()


def supervise(cmd: Sequence[str], grace: float = DEFAULT_GRACE_S) -> int:
    """Run ``cmd`` until it exits, we are signalled or our parent dies; stop its tree; its exit code."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    parent = os.getppid()
    asked: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        asked.append(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    reaper = Reaper(spawn(cmd))
    while reaper.status is None and not asked and os.getppid() == parent:
        time.sleep(POLL_S)
        reaper.reap()
    stop_tree(reaper, grace)
    return reaper.exit_code()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    grace = DEFAULT_GRACE_S
    if args[:1] == ["--grace"]:
        grace = float(args[1])
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m justitia.vllm.supervise [--grace SECONDS] -- COMMAND ...", file=sys.stderr)
        return 2
    return supervise(args, grace)


if __name__ == "__main__":
    sys.exit(main())
