"""Named workloads: mixes of application types with arrival times (paper §5.1's 72/26/2 % mix, DESIGN §6).

``make_workload(name, n_apps, seed)`` returns ``n_apps`` applications sorted by arrival. Arrivals are
Poisson at ``rate`` apps/s (default 1) unless the workload replays a trace; the simulator re-times
them to a chosen load with :func:`justitia.apps.arrivals.scale_to_load`. App ids are
``f"{type}-{i:05d}"`` (``i`` the app's index in the workload), unique and stable for a seed.

``paper-mix`` mirrors the paper's evaluation (DESIGN §6): the paper's own examples — MapReduce
summarization of large files and parallel search on hard math problems (self-consistency, tree of
thought) — plus the other task-parallel agents of its v2 framing (multi-agent debate, ReAct chains)
and the single chat requests that dominate production traffic (Azure 2023 trace). Shares (by count):

=================  =====  ==========================================================================
type               share  why
=================  =====  ==========================================================================
chat               40 %   the bulk of real traffic is single requests; they are the small apps that
                          suffer head-of-line blocking behind big ones
self-consistency   15 %   the paper's "parallel search directions for a hard math problem"
tree-of-thought    10 %   the same example, searched as a tree (rounds of parallel expansions)
mapreduce          15 %   the paper's "MapReduce summarization of a large file": the heavy tail
debate             10 %   rounds of parallel agents, prompts growing with history
react              10 %   sequential agent chains with tool delays (little parallelism)
=================  =====  ==========================================================================

The result is a heavy-tailed application cost (measured on 20k apps: p99/p50 ≈ 12, max/mean ≈ 21-29,
mean/median ≈ 2; see tests/apps): most applications are small, a few are huge. That spread is what
makes the scheduler matter — FCFS lets a huge app block many small ones, instantaneous fair sharing
slows everyone. Mean cost by type (token·iterations, 20k apps): chat 0.26 M, react 1.0 M,
tree-of-thought 1.8 M, mapreduce 2.9 M (p99 16 M, max 57 M), self-consistency 3.0 M, debate 3.8 M.

``paper-suite`` is the paper's own workload (§5.1, :mod:`justitia.apps.paper_suite`): its nine agent
classes (and CG) sampled 72 / 26 / 2 % small / medium / large, each agent built on a real input text
(:func:`justitia.apps.paper_inputs.paper_suite_input_text`), submitted at times drawn from the
Mooncake trace squeezed into the window ``n_apps / rate`` (the paper's 1×: 300 agents in 18 min,
``rate = density_rate(1)``; 2× and 3×: 9 and 6 min). Its ids end in ``@<input ref>``.

Dump a workload as JSONL: ``python -m justitia.apps.workloads NAME N SEED OUT.jsonl``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from justitia.apps.arrivals import density_rate, poisson_arrivals, trace_arrivals, window_arrivals
from justitia.apps.generators import DEFAULT_MAX_MODEL_LEN, GENERATORS, fit
from justitia.apps.model import AppSpec, Stage, dump_jsonl, load_jsonl
from justitia.apps.traces import AZURE_CODE, AZURE_CONV, load_request_trace


@dataclass(frozen=True)
class WorkloadSpec:
    """A named mix: application type → share (by count), and the default arrival process."""

    name: str
    shares: Mapping[str, float]
    arrivals: str = "poisson"  # "poisson", "trace" (Azure conversation) or "mooncake" (the paper's window)
    description: str = ""
    replay: str | None = None  # trace file whose rows are replayed as single calls (lengths and arrivals)
    kwargs: Mapping[str, Mapping[str, object]] = field(default_factory=dict)


PAPER_MIX_SHARES: dict[str, float] = {
    "chat": 0.40,
    "self-consistency": 0.15,
    "tree-of-thought": 0.10,
    "mapreduce": 0.15,
    "debate": 0.10,
    "react": 0.10,
}

WORKLOADS: dict[str, WorkloadSpec] = {
    "paper-mix": WorkloadSpec("paper-mix", PAPER_MIX_SHARES, description="the paper's evaluation mix (module docstring)"),
    **{t: WorkloadSpec(t, {t: 1.0}, description=f"only {t} applications") for t in GENERATORS},
    "paper-suite": WorkloadSpec(
        "paper-suite", {"paper-suite": 1.0}, arrivals="mooncake",
        description="the paper's agent classes (apps.paper_suite), Mooncake submission times",
    ),
    "azure-chat": WorkloadSpec(
        "azure-chat", {"chat": 1.0}, arrivals="trace", replay=AZURE_CONV,
        description="Azure 2023 conversation trace replayed: consecutive rows, their lengths and arrival times",
    ),
    "azure-code": WorkloadSpec(
        "azure-code", {"code": 1.0}, arrivals="trace", replay=AZURE_CODE,
        description="Azure 2023 code trace replayed (bursty arrivals, long prompts, short outputs)",
    ),
}
"""Known workload names → specs."""


def workload_names() -> list[str]:
    return list(WORKLOADS)


def make_workload(
    name: str,
    n_apps: int,
    seed: int,
    *,
    rate: float | None = None,
    arrivals: str | None = None,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    progress: bool = False,
) -> list[AppSpec]:
    """``n_apps`` applications of workload ``name``, deterministic for ``seed``, sorted by arrival.

    ``arrivals`` overrides the workload's arrival process: ``"poisson"`` (rate ``rate`` apps/s),
    ``"trace"`` (Azure conversation arrival times re-scaled to ``rate``) or ``"mooncake"`` (Mooncake
    times squeezed into ``n_apps / rate`` s; ``paper-suite``'s default, its default rate the paper's
    1×, :func:`density_rate`). Every call fits
    ``max_model_len`` tokens. ``progress`` shows a Rich progress bar (about 1M calls take ~10 s here).
    """
    spec = WORKLOADS.get(name)
    if spec is None:
        raise ValueError(f"unknown workload {name!r}; known workloads: {', '.join(WORKLOADS)}")
    if not isinstance(n_apps, (int, np.integer)) or isinstance(n_apps, bool) or n_apps < 1:
        raise ValueError(f"n_apps must be a positive integer, got {n_apps!r}")
    kind = arrivals or spec.arrivals
    if kind not in ("poisson", "trace", "mooncake"):
        raise ValueError(f"unknown arrival process {kind!r}; use 'poisson', 'trace' or 'mooncake'")
    rng = np.random.default_rng(seed)
    if name == "paper-suite":
        from justitia.apps.paper_suite import make_paper_suite

        r = density_rate(1.0) if rate is None else rate
        times = _times(kind, n_apps, r, np.random.default_rng([seed, 7]))
        return sorted(make_paper_suite(int(n_apps), seed, times.tolist()), key=lambda a: (a.arrival_s, a.app_id))
    rate = 1.0 if rate is None else rate

    if spec.replay:
        tr = load_request_trace(spec.replay)
        t_name = next(iter(spec.shares))
        start = int(rng.integers(0, len(tr)))
        times = trace_arrivals(n_apps, rate, rng, tr, start=start) if kind == "trace" else poisson_arrivals(n_apps, rate, rng)
        rows = (start + np.arange(n_apps)) % len(tr)
        p, o = tr.prompt_tokens[rows].tolist(), tr.output_tokens[rows].tolist()
        return [
            AppSpec(f"{t_name}-{i:05d}", float(times[i]), t_name, (Stage((fit(p[i], o[i], max_model_len),)),))
            for i in range(n_apps)
        ]

    types = list(spec.shares)
    probs = np.asarray([spec.shares[t] for t in types], dtype=np.float64)
    probs /= probs.sum()
    which = rng.choice(len(types), size=n_apps, p=probs)
    times = _times(kind, n_apps, rate, rng)
    apps = []
    indices: Iterable[int] = range(n_apps)
    if progress:
        from rich.progress import track

        indices = track(indices, description=f"generating {name}", total=n_apps, transient=True)
    for i in indices:
        t = types[int(which[i])]
        apps.append(GENERATORS[t](rng, f"{t}-{i:05d}", float(times[i]), max_model_len=max_model_len, **spec.kwargs.get(t, {})))
    return apps


def _times(kind: str, n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    if kind == "poisson":
        return poisson_arrivals(n, rate, rng)
    if kind == "trace":
        return trace_arrivals(n, rate, rng)
    return window_arrivals(n, n / rate, rng)


def load_workload(name_or_path: str | Path, n_apps: int | None = None, seed: int = 0, **kw: object) -> list[AppSpec]:
    """A named workload (:func:`make_workload`) or a JSONL workload file (:func:`load_jsonl`).

    For a file, ``n_apps`` (if given) keeps the first ``n_apps`` applications by arrival and ``seed`` is
    unused. A name needs ``n_apps``. Anything else is an error naming the known workloads.
    """
    s = str(name_or_path)
    if s in WORKLOADS:
        if n_apps is None:
            raise ValueError(f"workload {s!r} needs a number of applications (n_apps)")
        return make_workload(s, n_apps, seed, **kw)  # type: ignore[arg-type]
    path = Path(s)
    if path.suffix == ".jsonl" or path.exists():
        apps = load_jsonl(path)
        if n_apps is not None:
            if n_apps < 1:
                raise ValueError(f"n_apps must be a positive integer, got {n_apps!r}")
            apps = apps[:n_apps]
        return apps
    raise ValueError(
        f"unknown workload {s!r}: not a known name ({', '.join(WORKLOADS)}) and not a workload file (.jsonl)"
    )


def workload_summary(apps: Sequence[AppSpec]) -> list[dict[str, float | int | str]]:
    """Per application type (and ``all``): apps, calls, stages per app, and app cost mean / p50 / p99 /
    max in token·iterations (cost eq. 2)."""
    by_type: dict[str, list[AppSpec]] = {}
    for a in apps:
        by_type.setdefault(a.type, []).append(a)
    rows = []
    for t, group in [*sorted(by_type.items()), ("all", list(apps))]:
        if not group:
            continue
        cost = np.array([a.cost for a in group])
        rows.append({
            "type": t,
            "apps": len(group),
            "calls": int(sum(a.num_calls for a in group)),
            "stages_per_app": float(np.mean([len(a.stages) for a in group])),
            "mean_cost": float(cost.mean()),
            "p50_cost": float(np.percentile(cost, 50)),
            "p99_cost": float(np.percentile(cost, 99)),
            "max_cost": float(cost.max()),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m justitia.apps.workloads NAME N SEED OUT.jsonl``: write a workload as JSONL."""
    ap = argparse.ArgumentParser(prog="python -m justitia.apps.workloads", description="Write a named workload as JSONL.")
    ap.add_argument("name", help=f"workload name: {', '.join(WORKLOADS)}")
    ap.add_argument("n_apps", type=int, help="number of applications")
    ap.add_argument("seed", type=int, help="random seed")
    ap.add_argument("out", type=Path, help="output .jsonl file")
    ap.add_argument("--rate", type=float, default=None,
                    help="arrival rate, apps per second (default 1; paper-suite: the paper's 1x, 300 per 18 min)")
    ap.add_argument("--arrivals", choices=("poisson", "trace", "mooncake"), default=None, help="arrival process (default: the workload's)")
    ap.add_argument("--max-model-len", type=int, default=DEFAULT_MAX_MODEL_LEN, help="cap on prompt+output tokens per call")
    args = ap.parse_args(argv)
    try:
        t0 = time.perf_counter()
        apps = make_workload(args.name, args.n_apps, args.seed, rate=args.rate, arrivals=args.arrivals,
                             max_model_len=args.max_model_len, progress=True)
        gen_s = time.perf_counter() - t0
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    dump_jsonl(apps, args.out)
    calls = sum(a.num_calls for a in apps)
    print(f"wrote {len(apps)} applications ({calls} calls) of {args.name!r} to {args.out} "
          f"(generated in {gen_s:.2f} s, {calls / max(gen_s, 1e-9):,.0f} calls/s)")
    print(f"{'type':18s} {'apps':>8s} {'calls':>9s} {'stages':>6s} {'mean cost':>10s} {'p50':>10s} {'p99':>10s} {'max':>10s}")
    for r in workload_summary(apps):
        print(f"{r['type']:18s} {r['apps']:8d} {r['calls']:9d} {r['stages_per_app']:6.1f} {r['mean_cost']:10.3g} "
              f"{r['p50_cost']:10.3g} {r['p99_cost']:10.3g} {r['max_cost']:10.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
