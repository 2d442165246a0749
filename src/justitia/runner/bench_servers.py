"""Servers of ``justitia bench`` and ``justitia calibrate``: the one server factory and where engines run.

:func:`make_server` is the only place a benchmark builds a ``justitia serve``
(:class:`justitia.vllm.serve.Server`) for a policy; :func:`engine_cores` decides which CPU core each
engine computes on; :func:`execute` plays one stream once per policy (fresh servers, side by side or
one after another, or ``--endpoint``). Why one engine core and a warm-up: see the README
("How it measures, and why").
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from justitia.runner.bench_plan import BenchPlan, ServerSpec

PORT_RANGE = (8200, 8300)  # started servers pick a free port here (justitia serve's own default is 8000-8100)
PORT_SPAN = 100  # with --port P: free ports from P to P + 99
PRESTART_MAX = 4  # servers started together up front (about 3.5 GB of memory each)
BARRIER_TIMEOUT_S = 900.0

BENCH_APP_IDLE_S = 30.0  # the SDK ends every app with app_done; the idle window is only a fallback, and on a
# busy 2-core host the client may take seconds between stages (a 2 s window would split an app in two)


def make_server(spec: ServerSpec, policy: str, *, port: int | None = None, core: int | None = None,
                log: Any = print, log_file: Path | None = None, step_file: Path | None = None) -> Any:
    """A (not yet started) ``justitia serve`` for ``policy`` as ``spec`` says. ``core`` pins the
    engine's compute threads to that CPU core (``VLLM_CPU_OMP_THREADS_BIND``); the API server and the
    EngineCore loop keep the other cores. ``step_file``: the engine writes its step count there
    (:mod:`justitia.vllm.stepfile`, for ``--clock steps``)."""
    from justitia.vllm.serve import Server

    env = {"VLLM_CPU_OMP_THREADS_BIND": str(core), "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"} if core is not None else {}
    frontends = [c for c in usable_cores() if c != core] if core is not None else None
    trace = (log_file.parent if log_file else Path.cwd()) / f"trace_{policy}.jsonl" if spec.trace else None
    extra = [] if spec.prefix_caching else ["--no-enable-prefix-caching"]
    if step_file is not None:
        from justitia.vllm.stepfile import SCHEDULER_CLS, STEP_FILE_ENV

        env[STEP_FILE_ENV] = str(step_file)
        extra += ["--scheduler-cls", SCHEDULER_CLS]  # the plugin plus the step counter, instead of the plugin
    return Server(spec.model, policy=policy, kv_tokens=spec.kv_tokens, port=port, port_range=PORT_RANGE, log=log,
                  cpus=frontends, log_file=log_file, env=env, app_idle_s=BENCH_APP_IDLE_S, trace_file=trace,
                  plugin=step_file is None, extra_args=extra)


def step_file_for(plan: BenchPlan, out: Path, policy: str) -> Path | None:
    """Where a step-clocked run's engine writes its step count (None for wall-clock runs)."""
    return out / f".engine_steps_{policy}" if plan.clock == "steps" else None


@contextlib.contextmanager
def started_server(spec: ServerSpec, policy: str, *, port: int | None = None, core: int | None = None,
                   log: Any = print, log_file: Path | None = None) -> Iterator[str]:
    """A fresh server (:func:`make_server`); yields its URL once ``/health`` answers and stops it
    (its whole process group) afterwards."""
    with make_server(spec, policy, port=port, core=core, log=log, log_file=log_file) as srv:
        yield str(srv.url)


def free_ports(n: int, first: int | None = None) -> list[int]:
    """``n`` distinct free ports: in :data:`PORT_RANGE`, or from ``first`` to ``first + PORT_SPAN - 1``."""
    from justitia.vllm.serve import port_is_free

    lo, hi = PORT_RANGE if first is None else (first, min(first + PORT_SPAN, 65536))
    ports = [p for p in range(lo, hi) if port_is_free("127.0.0.1", p)][:n]
    if len(ports) < n:
        raise ValueError(f"need {n} free ports in {lo}-{hi - 1}, found {len(ports)}")
    return ports


def usable_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def engine_cores(n_policies: int, cores: Sequence[int], sequential: bool) -> tuple[bool, list[int | None]]:
    """Where each policy's engine computes: ``(side_by_side, core per policy)``.

    Side by side (all streams at once) needs one core per engine *plus* one for the API servers and
    this client: engines on ``cores[1:]``, everything else on ``cores[0]``. Otherwise the policies run
    one after another, every engine pinned to the same last core (so they all run on the same silicon)
    and the API server and client keep the other cores. On one core nothing is pinned.
    """
    if len(cores) <= 1:
        return False, [None] * n_policies
    if not sequential and n_policies > 1 and len(cores) >= n_policies + 1:
        return True, list(cores[1:n_policies + 1])
    return False, [cores[-1]] * n_policies


def _stream(plan: BenchPlan, jobs: Sequence[Any], url: str, policy: str, bar: Any, task: Any,
            ready: Any = None, step_file: Path | None = None) -> Any:
    from justitia.runner.bench import run_stream

    try:
        return run_stream(jobs, url, policy, on_done=lambda _o: bar.advance(task), ready=ready,
                          step_file=step_file, step_s=plan.step_s)
    finally:
        if step_file is not None:
            step_file.unlink(missing_ok=True)


def run_parallel(plan: BenchPlan, policies: Sequence[str], jobs: Sequence[Any], out: Path, bar: Any,
                 tasks: dict[str, Any], cores: Sequence[int | None]) -> list[Any]:
    """Every policy at once, each on a fresh server pinned to its own CPU core; the streams start
    together (a barrier after all servers are ready), so whatever else loads the machine loads every
    policy alike: the side-by-side comparison the standards ask for on a shared, noisy host."""
    from concurrent.futures import ThreadPoolExecutor

    from justitia.runner.bench import warm_up

    ports = free_ports(len(policies), plan.port)
    barrier = threading.Barrier(len(policies))

    def one(i: int, pol: str) -> Any:
        task = tasks[pol]
        try:
            steps = step_file_for(plan, out, pol)
            with make_server(plan.server, pol, port=ports[i], core=cores[i], log=bar.console.log,
                             log_file=out / f"server_{pol}.log", step_file=steps) as srv:
                url = str(srv.url)
                bar.update(task, description=f"{pol} (ready)")

                def ready() -> None:
                    warm_up(url)
                    barrier.wait(timeout=BARRIER_TIMEOUT_S)
                    bar.update(task, description=pol)

                return _stream(plan, jobs, url, pol, bar, task, ready, steps)
        except BaseException:
            barrier.abort()  # do not leave the other policies waiting for a server that never comes
            raise

    with ThreadPoolExecutor(len(policies)) as ex:
        futs = [ex.submit(one, i, p) for i, p in enumerate(policies)]
        return [f.result() for f in futs]


def run_one_at_a_time(plan: BenchPlan, policies: Sequence[str], jobs: Sequence[Any], out: Path, bar: Any,
                      tasks: dict[str, Any], cores: Sequence[int | None]) -> list[Any]:
    """The policies one after another. Up to :data:`PRESTART_MAX` servers start together first (an
    idle vLLM engine waits on its input queue and takes no CPU), so start-up is paid once; each stream
    then has the engine core to itself."""
    from justitia.runner.bench import warm_up

    runs: list[Any] = []
    for g in range(0, len(policies), PRESTART_MAX):
        group = list(policies[g:g + PRESTART_MAX])
        ports = free_ports(len(group), plan.port)
        with contextlib.ExitStack() as stack:
            servers = []
            for i, pol in enumerate(group):
                srv = make_server(plan.server, pol, port=ports[i], core=cores[g + i], log=bar.console.log,
                                  log_file=out / f"server_{pol}.log", step_file=step_file_for(plan, out, pol))
                stack.callback(srv.stop)
                srv.start()
                servers.append(srv)
            for pol, srv in zip(group, servers):
                srv.wait_ready()
                bar.update(tasks[pol], description=f"{pol} (ready)")
            for pol, srv in zip(group, servers):
                bar.update(tasks[pol], description=f"{pol} (warm-up)")
                warm_up(str(srv.url))
                bar.update(tasks[pol], description=pol)
                runs.append(_stream(plan, jobs, str(srv.url), pol, bar, tasks[pol],
                                    step_file=step_file_for(plan, out, pol)))
                srv.stop()  # free its memory before the next stream
    return runs


def execute(plan: BenchPlan, policies: Sequence[str], jobs: Sequence[Any], out: Path, console: Any,
            layout: tuple[bool, list[int | None]], label: str = "") -> list[Any]:
    """Run the stream once per policy (fresh servers, or ``--endpoint``); the runs in ``policies`` order.
    ``layout`` is :func:`engine_cores`'s answer for these policies."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    side_by_side, cores = layout
    pinned = [c for c in cores if c is not None]
    saved_affinity = usable_cores()
    pin_client = bool(pinned) and not side_by_side and hasattr(os, "sched_setaffinity")
    if pin_client:
        os.sched_setaffinity(0, [c for c in saved_affinity if c != pinned[0]])  # this client too
    try:
        with Progress(TextColumn("[bold]{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TextColumn("apps"),
                      TimeElapsedColumn(), console=console) as bar:
            tasks = {pol: bar.add_task(f"{label}{pol}" if plan.endpoint else f"{label}{pol} (starting)", total=len(jobs))
                     for pol in policies}
            if plan.endpoint:
                return [_stream(plan, jobs, plan.endpoint, policies[0], bar, tasks[policies[0]])]
            if side_by_side:
                return run_parallel(plan, policies, jobs, out, bar, tasks, cores)
            return run_one_at_a_time(plan, policies, jobs, out, bar, tasks, cores)
    finally:
        if pin_client:
            os.sched_setaffinity(0, saved_affinity)
