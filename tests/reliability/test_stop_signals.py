"""Processes never outlive their launcher: a stop signal (SIGTERM, SIGINT, SIGHUP) or the launcher's
SIGKILL leaves no process of the servers it started, and their ports free.

The fast tests run :class:`justitia.vllm.serve.Server`, its supervisor and :mod:`justitia.lifecycle`
for real, with ``fake_server_tree.py`` in place of vLLM (a child that ignores SIGTERM, a grandchild that
left the group and was orphaned). The e2e tests do the same with ``justitia serve`` and
``justitia bench`` on the real engine (ports 18400-18499).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from justitia import lifecycle
from justitia.vllm.proctree import descendants, is_alive
from justitia.vllm.serve import pick_port, port_is_free

HERE = Path(__file__).parent
GONE_WITHIN_S = 30.0  # generous on a loaded 2-core host; the measured stops take 2-3 s
STOPS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL]


def wait_until(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def assert_all_gone(pids: Iterable[int], ports: Iterable[int], what: str) -> None:
    pids, ports = list(pids), list(ports)
    wait_until(lambda: not any(is_alive(p) for p in pids) and all(port_is_free("127.0.0.1", p) for p in ports),
               GONE_WITHIN_S)
    left = {p: _cmdline(p) for p in pids if is_alive(p)}
    for p in left:  # do not leave them to the next test
        os.kill(p, signal.SIGKILL)
    assert not left, f"{what}: still running {GONE_WITHIN_S:.0f} s after the signal: {left}"
    busy = [p for p in ports if not port_is_free("127.0.0.1", p)]
    assert not busy, f"{what}: ports still held: {busy}"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:80]
    except OSError:
        return "?"


def expected_exit(sig: int) -> int:
    return -signal.SIGKILL if sig == signal.SIGKILL else 128 + sig


# ---------------------------------------------------------------------- fast: fake server trees
@pytest.fixture()
def fake_model(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


@pytest.mark.parametrize("sig", STOPS, ids=lambda s: signal.Signals(s).name)
def test_launcher_signal_leaves_no_server_process(sig: int, fake_model: Path, tmp_path: Path) -> None:
    n = 2
    port = pick_port("127.0.0.1", 18450, 18498)
    ports = [port, port + 1]
    launcher = subprocess.Popen([sys.executable, str(HERE / "fake_launcher.py"), str(fake_model), str(tmp_path),
                                 str(port), str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert launcher.stdout is not None and launcher.stdout.readline().strip() == "ready", launcher.stderr
        pidfiles = [tmp_path / f"server{i}.pids" for i in range(n)]
        # each tree: the server, its two children and the orphaned grandchild (written a moment later)
        assert wait_until(lambda: all(f.exists() and len(f.read_text().split()) == 4 for f in pidfiles), 30)
        tree = set(descendants(launcher.pid)) | {int(p) for f in pidfiles for p in f.read_text().split()}
        assert len(tree) == n * 5  # per server: supervisor, server, 3 processes below it
        # per server, one process left the launcher's session (so a process-group kill misses it)
        assert sum(os.getsid(p) == p for p in tree) == n
        assert all(is_alive(p) for p in tree)
        launcher.send_signal(sig)
        assert launcher.wait(timeout=GONE_WITHIN_S) == expected_exit(sig)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert_all_gone(tree, ports, f"launcher stopped by {signal.Signals(sig).name}")


def test_supervisor_exits_with_the_servers_status(tmp_path: Path) -> None:
    from justitia.vllm.supervise import main

    child = subprocess.run([sys.executable, "-m", "justitia.vllm.supervise", "--", "sh", "-c", "exit 3"])
    assert child.returncode == 3
    killed = subprocess.run([sys.executable, "-m", "justitia.vllm.supervise", "--", "sh", "-c", "kill -9 $$"])
    assert killed.returncode == 128 + signal.SIGKILL
    assert main([]) == 2  # no command: usage


# ---------------------------------------------------------------------- fast: the registry itself
class FakeServer:
    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    def terminate(self) -> None:
        self.log.append(f"terminate {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        lifecycle.unregister(self)
        if self.fail:
            raise RuntimeError("boom")


def test_stop_signal_stops_every_registered_server_then_raises() -> None:
    log: list[str] = []
    a, b, c = FakeServer(log, "a", fail=True), FakeServer(log, "b"), FakeServer(log, "c")
    before = signal.getsignal(signal.SIGHUP)
    with pytest.raises(lifecycle.Interrupted) as err:
        with lifecycle.stop_servers_on_signals(exit_after_s=None):
            for s in (a, b, c):
                lifecycle.register(s)
            lifecycle.unregister(c)  # stopped earlier by its owner: not stopped again
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)  # the handler raises in this (main) thread long before
    assert err.value.signum == signal.SIGHUP and err.value.exit_code == 128 + signal.SIGHUP
    # all asked first, then each waited for; one failing does not keep the next running
    assert log == ["terminate a", "terminate b", "stop a", "stop b"]
    assert lifecycle.live() == []
    assert signal.getsignal(signal.SIGHUP) is before  # the previous handler is back


def test_no_server_starts_while_stopping() -> None:
    log: list[str] = []
    late = FakeServer(log, "late")
    with pytest.raises(lifecycle.Interrupted):
        with lifecycle.stop_servers_on_signals(exit_after_s=None):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            finally:  # e.g. a worker thread starting its server while the handler runs
                with pytest.raises(lifecycle.Interrupted):
                    lifecycle.register(late)
    assert lifecycle.live() == []
    lifecycle.register(late)  # outside the handled stop, servers start again
    lifecycle.unregister(late)


# ---------------------------------------------------------------------- e2e: the real engine
def _tree_when(pred: Callable[[list[int]], bool], launcher: subprocess.Popen[str], timeout: float) -> list[int]:
    found: list[int] = []

    def ok() -> bool:
        found[:] = descendants(launcher.pid)
        return launcher.poll() is not None or pred(found)

    assert wait_until(ok, timeout) and launcher.poll() is None, \
        f"launcher exited ({launcher.returncode}) or its tree never formed: {found}\n{_output(launcher)}"
    return [launcher.pid, *found]


def _output(launcher: subprocess.Popen[str]) -> str:
    if launcher.poll() is None or launcher.stdout is None:
        return ""
    return launcher.stdout.read()[-3000:]


def _has_engine(pids: list[int]) -> bool:
    return sum(_cmdline(p).startswith("VLLM::") for p in pids) >= 2  # EngineCore and Worker


def _serve(model: Path, port: int, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "justitia.cli", "serve", "--model", str(model), "--port", str(port), "--policy",
         "fcfs", "--kv-tokens", "1024", "--max-num-seqs", "2", "--log-file", str(log), "--timeout", "400"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.e2e
def test_serve_stopped_by_sighup_or_killed_leaves_nothing(real_model_dir: Path, tmp_path: Path) -> None:
    """Two `justitia serve` started together (one start's wait): SIGHUP one, SIGKILL the other."""
    ports = [pick_port("127.0.0.1", 18400, 18420)]
    ports.append(pick_port("127.0.0.1", ports[0] + 1, 18420))
    launchers = [_serve(real_model_dir, p, tmp_path / f"serve{p}.log") for p in ports]
    try:
        for launcher, port in zip(launchers, ports):
            line = launcher.stdout.readline()  # type: ignore[union-attr]  # printed once /health answers
            assert line.startswith(f"http://127.0.0.1:{port}/v1"), (line, launcher.stderr.read())  # type: ignore[union-attr]
        trees = [_tree_when(_has_engine, launcher, 30) for launcher in launchers]
        for launcher, sig in zip(launchers, (signal.SIGHUP, signal.SIGKILL)):
            launcher.send_signal(sig)
        assert launchers[0].wait(timeout=GONE_WITHIN_S) == 0  # serve: a requested stop is a clean end
        assert "stopped" in launchers[0].stderr.read()  # type: ignore[union-attr]
        assert launchers[1].wait(timeout=GONE_WITHIN_S) == -signal.SIGKILL
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                launcher.kill()
                launcher.wait()
    assert_all_gone(trees[0], ports[:1], "justitia serve stopped by SIGHUP")
    assert_all_gone(trees[1], ports[1:], "justitia serve killed by SIGKILL")


@pytest.mark.e2e
def test_bench_stopped_mid_run_by_sigterm_leaves_nothing(real_model_dir: Path, tmp_path: Path) -> None:
    port = pick_port("127.0.0.1", 18420, 18440)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "justitia.cli", "bench", "--policies", "fcfs", "--apps", "6", "--rate", "2",
         "--sizes", "quick", "--kv-tokens", "1024", "--model", str(real_model_dir), "--port", str(port),
         "--out", str(tmp_path / "bench"), "--no-plots"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _tree_when(_has_engine, launcher, 400)

        def serving() -> bool:  # the stream is running: the engine has answered a request
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                return False
            return any(line.startswith("vllm:request_success_total") and not line.endswith(" 0.0")
                       for line in text.splitlines())

        assert wait_until(lambda: serving() or launcher.poll() is not None, 400) and launcher.poll() is None
        tree = _tree_when(_has_engine, launcher, 5)
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=GONE_WITHIN_S) == 128 + signal.SIGTERM
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert_all_gone(tree, [port], "justitia bench stopped by SIGTERM")
