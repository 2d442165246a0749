"""What one ``justitia bench`` run will do: a typed, validated plan built once from the arguments.

:class:`BenchPlan` is frozen: every later stage (starting servers, playing the stream, the report)
reads it and nothing changes it. :func:`plan_from_args` turns the parsed command line into a plan and
refuses bad input with an error naming the option; :class:`ServerSpec` is what a started server
needs (the one server factory, :func:`justitia.runner.bench_servers.make_server`, builds from it).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

# Presets (measured on 2 CPU cores, KV 2,048 tokens): Poisson at 1 app/s overloads the engine (offered
# load ≈ 3), so the order of service decides completion times, as on a busy GPU server.
QUICK = {"apps": 20, "rate": 1.0, "sizes": "quick", "policies": "fcfs,justitia", "clock": "steps"}
FULL = {"apps": 40, "rate": 1.0, "sizes": "full", "policies": "fcfs,vtc,justitia", "clock": "wall"}

CLOCKS = ("wall", "steps")
"""``wall``: arrivals at their wall-clock times, times in seconds. ``steps``: arrivals released by the
engine's own step counter, times measured in engine steps (:mod:`justitia.runner.stepclock`)."""

DEFAULT_STEP_S = 0.1
"""Reference step time of the step clock: an arrival at stream time ``t`` is released at engine step
``t / DEFAULT_STEP_S`` on every host (about the quick preset's step time on 2 CPU cores)."""

MIN_KV_TOKENS = 16


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """What every server a comparison starts shares (the policy is given per server)."""

    kv_tokens: int
    model: str | None = None
    prefix_caching: bool = True
    trace: bool = False  # the plugin's trace (JUSTITIA_TRACE_FILE) as trace_<policy>.jsonl beside the server's log


@dataclass(frozen=True, slots=True)
class BenchPlan:
    """One bench invocation, validated (see :func:`plan_from_args`)."""

    name: str  # display name of the stream (real-mix-quick, or the workload file's stem)
    policies: tuple[str, ...]
    server: ServerSpec
    out: Path
    n_apps: int | None  # None: every application of --workload
    rate: float
    sizes: str
    seed: int = 0
    workload: Path | None = None
    endpoint: str | None = None
    port: int | None = None
    sequential: bool = False
    hint: bool = True
    compare_sim: bool = False
    repeat: int = 1
    plots: bool = True
    clock: str = "wall"
    step_s: float = DEFAULT_STEP_S
    quick: bool = False

    def __post_init__(self) -> None:
        check_plan(self)


def check_plan(p: BenchPlan) -> None:
    """Raise ``ValueError`` naming the option for anything a run could not do."""
    if not p.policies:
        raise ValueError("--policies: no policy given")
    if p.endpoint and len(p.policies) != 1:
        raise ValueError("with --endpoint the server runs one policy: give --policies one label (e.g. --policies fcfs)")
    if not p.endpoint:
        from justitia.core.policy import split_policy_name

        for pol in p.policies:
            split_policy_name(pol)  # ValueError naming the known policies
    if p.n_apps is None and p.workload is None:
        raise ValueError("--apps: a number of applications is needed without --workload")
    if p.n_apps is not None and p.n_apps < 1:
        raise ValueError(f"--apps must be >= 1, got {p.n_apps}")
    if not (math.isfinite(p.rate) and p.rate > 0):
        raise ValueError(f"--rate must be a positive number of applications per second, got {p.rate}")
    if p.server.kv_tokens < MIN_KV_TOKENS:
        raise ValueError(f"--kv-tokens must be >= {MIN_KV_TOKENS}, got {p.server.kv_tokens}")
    if p.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {p.repeat}")
    if p.clock not in CLOCKS:
        raise ValueError(f"--clock must be one of {', '.join(CLOCKS)}, got {p.clock!r}")
    if p.clock == "steps" and p.endpoint:
        raise ValueError("--clock steps reads the engine's step counter of a server the bench starts; "
                         "it cannot be used with --endpoint")
    if not (math.isfinite(p.step_s) and p.step_s > 0):
        raise ValueError(f"--step-ms must be a positive number of milliseconds, got {p.step_s * 1e3:g}")
    if p.workload is not None and not p.workload.is_file():
        raise ValueError(f"--workload: workload file not found: {p.workload}")
    if p.port is not None and not 0 < p.port < 65536:
        raise ValueError(f"--port must be a TCP port (1-65535), got {p.port}")


def plan_from_args(args: argparse.Namespace) -> BenchPlan:
    """The plan of ``justitia bench`` (:mod:`justitia.runner.bench_cli`): presets filled in, every
    value checked; ``ValueError`` naming the option otherwise."""
    from justitia.bench.experiment import parse_policies

    preset = QUICK if args.quick else FULL
    workload = Path(args.workload) if args.workload else None
    sizes = args.sizes or str(preset["sizes"])
    no_cache = bool(args.no_prefix_caching or args.compare_sim)  # the simulator has no prefix cache
    out = Path(args.out) if args.out else Path("results") / "bench"
    server = ServerSpec(kv_tokens=args.kv_tokens, model=args.model, prefix_caching=not no_cache,
                        trace=args.trace)
    return BenchPlan(
        name=workload.stem if workload else f"real-mix-{sizes}",
        policies=tuple(parse_policies(args.policies or str(preset["policies"]))),
        server=server, out=out,
        n_apps=args.apps if args.apps is not None else (None if workload else int(preset["apps"])),
        rate=float(preset["rate"]) if args.rate is None else args.rate,
        sizes=sizes, seed=args.seed, workload=workload, endpoint=args.endpoint, port=args.port,
        sequential=args.sequential, hint=not args.no_hint, compare_sim=args.compare_sim, repeat=args.repeat,
        plots=not args.no_plots, clock=_clock(args, preset), step_s=args.step_ms / 1e3, quick=args.quick,
    )


def _clock(args: argparse.Namespace, preset: dict[str, object]) -> str:
    """``--clock`` as given; else the preset's, except with ``--endpoint`` (no step counter to read)."""
    if args.clock:
        return str(args.clock)
    return "wall" if args.endpoint else str(preset["clock"])
