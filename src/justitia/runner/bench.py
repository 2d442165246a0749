"""Real applications on a real server, one policy at a time (issue 5 §3).

:func:`run_stream` plays a stream of applications against an OpenAI-compatible endpoint: each job
waits for its arrival time, opens a :class:`justitia.runner.sdk.App`, and runs its program (a real
application of :mod:`justitia.runner.realapps`, or a workload-file application replayed with synthetic
prompts of exactly its token lengths). The outcome is a :class:`~justitia.sim.result.RunResult`, so
the same metrics / report / plots code serves ``justitia simulate`` and ``justitia bench``.

The fair-sharing reference of a real run (DESIGN §2): an app's cost is its *true* cost, the sum over
its calls of cost eq. 1 from the real prompt / completion token counts the server reported; ``M`` is
the server's KV capacity (``num_gpu_blocks × block_size`` from ``/metrics``); ``iteration_s`` is the
time of one engine step while busy: the run's busy time (the union of the intervals in which at least
one call was in flight) over the engine steps it took (``vllm:iteration_tokens_total_count``), pooled
over all policies of a comparison so they share one reference. (vLLM's inter-token latency is *not*
an iteration time: it includes the time a preempted request waits, so it grows with preemptions.)

An application that fails (its call raised after the client's retries) is recorded with its error and
left out of that run's result; :func:`justitia.runner.bench_report.evaluate_runs` then compares the
policies on the applications that finished under all of them, and the report names the failures.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from justitia.apps.model import AppSpec, Call, Stage
from justitia.core.cost import call_cost
from justitia.runner.realapps import APP_TYPES, AppPlan
from justitia.runner.sdk import App
from justitia.runner.server_stats import ServerStats, diff, scrape
from justitia.runner.stepclock import StepClock, StepFileCounter, release_in_order
from justitia.sim.result import AppRecord, RunResult

# token ids for synthetic prompts: plain sub-word pieces of the SmolLM2 / Llama vocabularies
_SYNTH_ID_RANGE = (1000, 30000)


def synthetic_prompt(rng: np.random.Generator, n: int) -> list[int]:
    """``n`` random token ids (distinct prompts: no prefix-cache hits beyond chance)."""
    return [int(t) for t in rng.integers(*_SYNTH_ID_RANGE, size=n)]


@dataclass(slots=True)
class Job:
    """One application of a stream, engine-agnostic: name, arrival and the program to run."""

    name: str
    app_type: str
    arrival_s: float
    weight: float
    cost_hint: float | None
    run: Callable[[App], Any]  # async program over the App


def plan_job(plan: AppPlan, hint: bool = True) -> Job:
    """A real application (:mod:`.realapps`); its cost hint is its planned cost (every call at max_tokens)."""
    kind = APP_TYPES[plan.app_type]
    return Job(plan.name, plan.app_type, plan.arrival_s, plan.weight, plan.cost_hint() if hint else None,
               lambda app: kind.run(app, plan))


def spec_job(spec: AppSpec, seed: int = 0, hint: bool = True) -> Job:
    """A workload-file application replayed with synthetic prompts of exactly its token lengths.

    Each call sends ``prompt_tokens`` random token ids and decodes exactly ``output_tokens`` tokens
    (``ignore_eos``); stages run in order with their ``delay_s``. The cost hint is the spec's true cost.
    """
    rng = np.random.default_rng([seed, abs(hash(spec.app_id)) % (2**31)])

    async def run(app: App) -> dict[str, Any]:
        for si, stage in enumerate(spec.stages):
            if si:
                app.next_stage()
            if stage.delay_s > 0:
                await asyncio.sleep(stage.delay_s)
            last_stage = si == len(spec.stages) - 1
            n = len(stage.calls)
            await asyncio.gather(*(
                app.complete(synthetic_prompt(rng, c.prompt_tokens),
                             max_tokens=c.output_tokens, last=last_stage and j == n - 1, temperature=0.0,
                             extra_body={"ignore_eos": True})
                for j, c in enumerate(stage.calls)))
        return {}

    return Job(spec.app_id, spec.type, spec.arrival_s, spec.weight, spec.cost if hint else None, run)


@dataclass(slots=True)
class JobOutcome:
    job: Job
    app: App
    result: dict[str, Any] | None = None
    error: str | None = None
    steps: tuple[float, float] | None = None  # (release, completion) on the step clock, if step-clocked


def busy_time(intervals: Sequence[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals: the time at least one call was in flight."""
    total, cur_s, cur_e = 0.0, math.nan, math.nan
    for s, e in sorted((a, b) for a, b in intervals if math.isfinite(a) and math.isfinite(b) and b > a):
        if not math.isfinite(cur_e) or s > cur_e:
            if math.isfinite(cur_e):
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if math.isfinite(cur_e):
        total += cur_e - cur_s
    return total


@dataclass(slots=True)
class BenchRun:
    """One policy's real run: the RunResult for the report, plus the raw outcomes and server stats."""

    policy: str
    result: RunResult
    outcomes: list[JobOutcome]
    stats: ServerStats
    t0: float
    measured: list[AppSpec] = field(default_factory=list)  # the run's apps with their real token counts
    busy_s: float = 0.0  # time with at least one call in flight
    failed: list[JobOutcome] = field(default_factory=list)  # apps whose program raised (not in result)
    # step-clocked runs (--clock steps): app name -> (release step, completion step) on the step clock
    app_steps: dict[str, tuple[float, float]] = field(default_factory=dict)
    ref_step_s: float = 0.0  # the step clock's reference step time (stream seconds per step)

    @property
    def mean_itl_s(self) -> float:
        return self.stats.itl_sum_s / self.stats.itl_count if self.stats.itl_count else math.nan

    @property
    def step_s(self) -> float:
        """Mean engine step time while busy: busy time / engine steps (nan when no steps were counted)."""
        return self.busy_s / self.stats.steps if self.stats.steps > 0 else math.nan


async def _run_jobs(
    jobs: Sequence[Job], client: Any, model: str, on_done: Callable[[JobOutcome], None] | None,
    clock: StepClock | None = None,
) -> tuple[float, list[JobOutcome]]:
    """Play the jobs: released at their wall-clock arrival, or by ``clock`` (steps; each outcome's
    ``steps`` then holds its release and completion step)."""
    t0 = time.monotonic()

    async def play(job: Job) -> JobOutcome:
        app = App(client, type=job.app_type, weight=job.weight, cost_hint=job.cost_hint, model=model)
        out = JobOutcome(job, app)
        try:
            async with app:
                out.result = await job.run(app)
        except Exception as e:  # noqa: BLE001 - one failed app must not stop the stream; reported below
            out.error = f"{type(e).__name__}: {e}"
        if on_done is not None:
            on_done(out)
        return out

    if clock is None:
        async def on_time(job: Job) -> JobOutcome:
            await asyncio.sleep(max(0.0, t0 + job.arrival_s - time.monotonic()))
            return await play(job)

        return t0, list(await asyncio.gather(*(on_time(j) for j in jobs)))

    async def stamped(job: Job, step: float) -> JobOutcome:
        out = await play(job)
        out.steps = (step, clock.now())
        return out

    clock.start()
    tasks = await release_in_order(jobs, clock, stamped)
    return t0, list(await asyncio.gather(*tasks))


def measured_spec(out: JobOutcome, t0: float) -> AppSpec:
    """The application as it really ran: stages of (real prompt, real completion) token counts."""
    app = out.app
    stages: dict[int, list[Any]] = {}
    for c in app.calls:
        stages.setdefault(c.stage, []).append(c)
    built: list[Stage] = []
    prev_end: float | None = None
    for k in sorted(stages):
        calls = stages[k]
        start = min(c.start_s for c in calls)
        delay = 0.0 if prev_end is None else max(0.0, start - prev_end)
        built.append(Stage(tuple(Call(max(1, c.prompt_tokens), max(1, c.completion_tokens)) for c in calls), delay))
        prev_end = max(c.end_s for c in calls)
    assert app.start_s is not None
    return AppSpec(out.job.name, app.start_s - t0, out.job.app_type, tuple(built), out.job.weight)


KEEPALIVE_S = 1.0  # below uvicorn's 5 s keep-alive: a pooled connection is never reused as the server drops it
MAX_RETRIES = 2  # connection errors and 5xx (the OpenAI client's own retry rules)


def make_client(url: str, request_timeout_s: float = 900.0) -> Any:
    """The benchmark's OpenAI client: short keep-alive (no reuse-after-close races), a few retries."""
    import httpx
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient

    http = DefaultAsyncHttpxClient(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100,
                                                       keepalive_expiry=KEEPALIVE_S))
    return AsyncOpenAI(base_url=url.rstrip("/") + "/v1", api_key="EMPTY", max_retries=MAX_RETRIES,
                       timeout=request_timeout_s, http_client=http)


WARMUP_BATCHES = (1, 4, 8, 16)  # concurrent requests per warm-up round
WARMUP_PROMPTS = (64, 512)  # prompt tokens (short and long prefills)


def warm_up(url: str, model: str | None = None, seed: int = 0) -> None:
    """A few untimed rounds of requests (batch sizes and prompt lengths the stream will use) before a
    measured run: a fresh CPU engine pays one-off costs on the first shapes it meets, and the first
    policy of a comparison must not pay them alone. Random-token prompts: nothing is prefix-cached."""
    rng = np.random.default_rng([seed, 7])

    async def main() -> None:
        client = make_client(url, 300.0)
        try:
            m = model or (await client.models.list()).data[0].id
            for n in WARMUP_BATCHES:
                for p in WARMUP_PROMPTS:
                    await asyncio.gather(*(
                        client.completions.create(model=m, prompt=synthetic_prompt(rng, p),
                                                  max_tokens=4, extra_body={"ignore_eos": True})
                        for _ in range(n)))
        finally:
            await client.close()

    asyncio.run(main())


def run_stream(
    jobs: Sequence[Job], url: str, policy: str, *, model: str | None = None,
    on_done: Callable[[JobOutcome], None] | None = None, request_timeout_s: float = 900.0,
    ready: Callable[[], None] | None = None, step_file: str | Path | None = None, step_s: float = 0.1,
) -> BenchRun:
    """Play ``jobs`` against the server at ``url`` (``http://host:port``) and measure everything.

    With ``step_file`` (the server's engine step counter, :mod:`justitia.vllm.stepfile`) the stream is
    step-clocked (:mod:`justitia.runner.stepclock`, ``step_s`` stream seconds per step); otherwise
    applications start at their wall-clock arrival. Applications whose program raised are kept in
    :attr:`BenchRun.failed` (with their error) and left out of the result; RuntimeError only if every
    application failed (a dead server, say).
    """
    if not jobs:
        raise ValueError("no applications to run")
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError("application names in a stream must be unique")
    before = scrape(url)

    async def main(clock: StepClock | None) -> tuple[float, list[JobOutcome]]:
        client = make_client(url, request_timeout_s)
        try:
            m = model
            if m is None:
                page = await client.models.list()
                m = page.data[0].id
            return await _run_jobs(jobs, client, m, on_done, clock)
        finally:
            await client.close()

    if ready is not None:
        ready()  # e.g. a barrier: side-by-side runs start their streams together
        before = scrape(url)
    wall0 = time.monotonic()
    if step_file is None:
        t0, outs = asyncio.run(main(None))
    else:
        with StepFileCounter(step_file) as counter:
            t0, outs = asyncio.run(main(StepClock(counter, step_s)))
    wall = time.monotonic() - wall0
    run = measure_run(policy, outs, t0, diff(scrape(url), before), wall)
    if step_file is not None:
        run.ref_step_s = step_s
        run.app_steps = {o.job.name: o.steps for o in outs if o.steps is not None and not o.error}
    return run


def measure_run(policy: str, outs: Sequence[JobOutcome], t0: float, stats: ServerStats, wall: float) -> BenchRun:
    """The :class:`BenchRun` of a played stream (wall-clock times; see :func:`run_stream`)."""
    failed = [o for o in outs if o.error]
    ok = [o for o in outs if not o.error]
    if not ok:
        msg = "; ".join(f"{o.job.name}: {o.error}" for o in failed[:3])
        raise RuntimeError(f"all {len(outs)} applications failed under policy {policy!r}: {msg}")
    records = []
    specs = []
    for o in ok:
        a = o.app
        assert a.start_s is not None and a.end_s is not None
        records.append(AppRecord(
            app_id=o.job.name, app_type=o.job.app_type, arrival_s=a.start_s - t0, completion_s=a.end_s - t0,
            cost=float(sum(call_cost(c.prompt_tokens, c.completion_tokens) for c in a.calls)),
            weight=o.job.weight, num_calls=len(a.calls), estimated_cost=o.job.cost_hint,
        ))
        specs.append(measured_spec(o, t0))
    busy = busy_time([(c.start_s, c.end_s) for o in outs for c in o.app.calls])
    first = min(r.arrival_s for r in records)
    makespan = max(r.completion_s for r in records) - first
    itl = stats.itl_sum_s / stats.itl_count if stats.itl_count else math.nan
    step = busy / stats.steps if stats.steps > 0 else math.nan
    result = RunResult(
        policy=policy, apps=records,
        capacity_tokens=stats.capacity_tokens if math.isfinite(stats.capacity_tokens) else 1.0,
        iteration_s=step if math.isfinite(step) and step > 0 else 1.0, makespan_s=makespan,
        prompt_tokens=sum(c.prompt_tokens for o in ok for c in o.app.calls),
        output_tokens=sum(c.completion_tokens for o in ok for c in o.app.calls),
        preemptions=int(stats.preemptions), iterations=int(stats.steps), wall_s=wall,
        extra={"mean_itl_s": itl, "step_s": step, "busy_s": busy, "failed_apps": len(failed)},
    )
    return BenchRun(policy, result, list(outs), stats, t0, specs, busy_s=busy, failed=failed)


def call_rows(run: BenchRun) -> list[dict[str, Any]]:
    """One row per call (for calls.csv): times relative to the run start."""
    rows = []
    for o in run.outcomes:
        for c in o.app.calls:
            rows.append({
                "policy": run.policy, "app_id": o.job.name, "type": o.job.app_type, "call": c.index,
                "stage": c.stage, "kind": c.kind, "start_s": c.start_s - run.t0, "end_s": c.end_s - run.t0,
                "latency_s": c.latency_s, "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens, "max_tokens": c.max_tokens, "last": int(c.last),
                "error": c.error or "",
            })
    return rows


def run_figures(run: BenchRun) -> dict[str, float]:
    """Throughput and per-call latency figures of one run (bench.json)."""
    lat = np.array([c.latency_s for o in run.outcomes for c in o.app.calls if c.ok], dtype=float)
    r = run.result
    span = r.makespan_s
    return {
        "apps": len(r.apps),
        "calls": int(lat.size),
        "prompt_tokens": int(r.prompt_tokens),
        "output_tokens": int(r.output_tokens),
        "makespan_s": span,
        "wall_s": r.wall_s,
        # throughput while the server had work (busy time: at least one call in flight), so idle gaps
        # between arrivals do not count, but a policy's slow, half-empty tail does
        "output_tok_s": r.output_tokens / run.busy_s if run.busy_s > 0 else 0.0,
        "total_tok_s": (r.prompt_tokens + r.output_tokens) / run.busy_s if run.busy_s > 0 else 0.0,
        "output_tok_s_makespan": r.output_tokens / span if span > 0 else 0.0,
        "call_latency_p50_s": float(np.percentile(lat, 50)) if lat.size else 0.0,
        "call_latency_p99_s": float(np.percentile(lat, 99)) if lat.size else 0.0,
        "call_latency_mean_s": float(lat.mean()) if lat.size else 0.0,
        "step_s": run.step_s,
        "engine_steps": int(run.stats.steps),
        "busy_s": run.busy_s,
        "mean_itl_s": run.mean_itl_s,
        "preemptions": int(r.preemptions),
        "failed_apps": len(run.failed),
        "prefix_cache_hit_rate": run.stats.prefix_hits / run.stats.prefix_queries if run.stats.prefix_queries else 0.0,
        "capacity_tokens": float(run.stats.capacity_tokens),
    }
