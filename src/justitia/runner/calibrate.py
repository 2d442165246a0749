"""Calibrate the simulator's latency model on the real (CPU) engine, and check sim against real (issue 5 §4).

Method (``justitia calibrate``)
-------------------------------
The simulated engine prices one iteration as ``T = a + b·prefill + c·decode + d·kv_read``
(:class:`justitia.sim.latency.LinearLatency`, latency eq. 1 in its linear form). We measure iterations of
known composition on a private server (nothing else runs on it), reading the server's own timers from
``/metrics`` so HTTP overhead stays out:

* **decode samples** — ``n`` requests sent together (``n`` in 1…16), each a random-token prompt of ``p``
  tokens (distinct, so no prefix-cache hits) decoding exactly ``o`` tokens (``ignore_eos``). Every
  iteration after the prefills decodes ``n`` tokens and reads about ``n·(p + o/2)`` KV tokens; its time
  is the mean inter-token latency (``vllm:inter_token_latency_seconds`` sum / count over the batch).
  Sample: ``(prefill 0, decode n, kv n·(p + o/2), ITL)``.
* **prefill samples** — one request of ``p`` prompt tokens (``p`` ≤ the per-iteration token budget, so
  one iteration) and ``max_tokens=1``; its time is ``vllm:request_prefill_time_seconds`` (scheduled →
  first token). Sample: ``(prefill p, decode 0, kv 0, prefill time)``.

Prefill attention on CPU is visibly quadratic, so the fit includes latency eq. 1's ``e·prefill_attn``
(``p²`` for a one-chunk prefill). A least-squares fit on relative errors over all samples
(coefficients that come out negative are dropped and the rest refitted, so the model never predicts
faster iterations for more work) gives ``a, b, c, d, e``; the JSON
(model, samples, server limits) is saved under ``cache_dir()/calibration/``.

Sim-vs-real (``justitia bench --compare-sim``)
----------------------------------------------
Each real run is replayed in the simulator: the same applications (``measured_<policy>.jsonl``: the
real prompt / completion tokens of every call, real arrival times, stages) on an engine with the
server's KV capacity, block size, ``max_num_seqs`` and token budget and the calibrated latency model,
under the same policy with the same cost hints. We compare mean ACT (simulated / real) per policy and
whether the policies rank the same. Goal: ranking identical, mean ACT within 20 %.

The simulator has no prefix cache: it stores and computes every prompt token of every call. vLLM's
prefix cache shares the blocks of identical prompt prefixes (the k samples of self-consistency and
best-of-n, the chat template), which on the real applications lets ~1.5× more requests run at once
(measured: 1,486 real engine steps vs 2,342 simulated for the same 40 apps, mean ACT 33–41 % off).
So ``--compare-sim`` starts its servers without the prefix cache, like the simulated engine; then the
40-app stream agrees within 14 % per policy with the same ranking (README). The engine is pinned to
one core, as in the calibration run, so no speed correction is applied.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# the CPU server's limits (vLLM 0.32 defaults for the OpenAI server on CPU; justitia serve's block size)
CPU_MAX_NUM_SEQS = 128
CPU_MAX_NUM_BATCHED_TOKENS = 2048
SERVER_BLOCK_SIZE = 32

DECODE_GRID = {"quick": [(1, 64), (4, 64), (8, 256), (16, 64), (16, 256)],
               "full": [(1, 64), (2, 256), (4, 64), (4, 512), (8, 256), (12, 64), (16, 256), (16, 512)]}
PREFILL_GRID = {"quick": [128, 512, 1024, 2000], "full": [64, 256, 512, 1024, 1536, 2000]}
DECODE_TOKENS = 48


def calibration_path() -> Path:
    from justitia.paths import cache_dir

    return cache_dir() / "calibration" / "cpu-latency.json"


@dataclass(slots=True)
class Sample:
    kind: str  # "decode" | "prefill"
    prefill_tokens: int
    decode_tokens: int
    kv_tokens_read: int
    seconds: float

    @property
    def prefill_attn(self) -> float:
        """Σ (2cx + x²) over prefill chunks (latency eq. 1): one whole-prompt chunk here."""
        return float(self.prefill_tokens) ** 2


async def _measure(url: str, model: str, progress: Callable[[str], None], grid: str, seed: int) -> list[Sample]:
    from openai import AsyncOpenAI

    from justitia.runner.bench import synthetic_prompt
    from justitia.runner.server_stats import scrape

    rng = np.random.default_rng(seed)
    client = AsyncOpenAI(base_url=url.rstrip("/") + "/v1", api_key="EMPTY", max_retries=0, timeout=600)
    samples: list[Sample] = []

    def prefill_time(stats_text: str) -> tuple[float, float]:
        s = c = 0.0
        for line in stats_text.splitlines():
            if line.startswith("vllm:request_prefill_time_seconds_sum"):
                s += float(line.rsplit(" ", 1)[1])
            elif line.startswith("vllm:request_prefill_time_seconds_count"):
                c += float(line.rsplit(" ", 1)[1])
        return s, c

    def raw_metrics() -> str:
        import urllib.request

        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=10) as r:  # noqa: S310 - local
            return r.read().decode()

    try:
        # warm-up: first requests pay one-off costs
        await client.completions.create(model=model, prompt=synthetic_prompt(rng, 32), max_tokens=4)
        for p in PREFILL_GRID[grid]:
            for _ in range(2):
                s0, c0 = prefill_time(raw_metrics())
                await client.completions.create(model=model, prompt=synthetic_prompt(rng, p), max_tokens=1)
                s1, c1 = prefill_time(raw_metrics())
                if c1 > c0:
                    samples.append(Sample("prefill", p, 0, 0, (s1 - s0) / (c1 - c0)))
            progress(f"prefill {p} tokens")
        for n, p in DECODE_GRID[grid]:
            before = scrape(url)
            await asyncio.gather(*(
                client.completions.create(model=model, prompt=synthetic_prompt(rng, p), max_tokens=DECODE_TOKENS,
                                          extra_body={"ignore_eos": True})
                for _ in range(n)))
            after = scrape(url)
            cnt = after.itl_count - before.itl_count
            if cnt > 0:
                itl = (after.itl_sum_s - before.itl_sum_s) / cnt
                samples.append(Sample("decode", 0, n, int(n * (p + DECODE_TOKENS / 2)), itl))
            progress(f"decode {n}×{p}")
    finally:
        await client.close()
    return samples


def fit_nonneg(samples: Sequence[Sample]) -> Any:
    """``LinearLatency`` (with the quadratic prefill-attention term ``e``) fitted by least squares on
    *relative* errors (each sample weighted 1/measured, so 50 ms decode steps count as much as 3 s
    prefills); coefficients that come out negative are dropped and the rest refitted."""
    from justitia.sim.latency import LinearLatency

    if len(samples) < 5:
        raise ValueError(f"need at least 5 calibration samples, got {len(samples)}")
    X = np.array([[1.0, s.prefill_tokens, s.decode_tokens, s.kv_tokens_read, s.prefill_attn] for s in samples],
                 dtype=float)
    y = np.array([s.seconds for s in samples], dtype=float)
    if np.any(~np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("calibration sample times must be positive and finite")
    w = 1.0 / y
    Xw, yw = X * w[:, None], y * w
    active = list(range(X.shape[1]))
    while True:
        sol, *_ = np.linalg.lstsq(Xw[:, active], yw, rcond=None)
        coef = np.zeros(X.shape[1])
        coef[active] = sol
        neg = [i for i in active if coef[i] < 0]
        if not neg:
            break
        active.remove(min(neg, key=lambda i: coef[i]))
        if not active:
            raise ValueError("calibration samples give no positive latency model")
    return LinearLatency(*coef.tolist())


def fit_report(model: Any, samples: Sequence[Sample]) -> list[dict[str, float]]:
    out = []
    for s in samples:
        pred = model.step_s(s.prefill_tokens, s.decode_tokens, s.kv_tokens_read, s.prefill_attn)
        out.append({"kind": s.kind, "prefill": s.prefill_tokens, "decode": s.decode_tokens, "kv": s.kv_tokens_read,
                    "measured_s": s.seconds, "model_s": pred, "rel_err": pred / s.seconds - 1 if s.seconds > 0 else math.nan})
    return out


def save_calibration(path: Path, model: Any, samples: Sequence[Sample], extra: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"latency": model.to_json(), "samples": [asdict(s) for s in samples],
           "max_num_seqs": CPU_MAX_NUM_SEQS, "max_num_batched_tokens": CPU_MAX_NUM_BATCHED_TOKENS,
           "block_size": SERVER_BLOCK_SIZE, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}
    path.write_text(json.dumps(obj, indent=2) + "\n")
    return path


def load_calibration(path: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """``(LinearLatency, the whole JSON)`` of a saved calibration; a clear error if there is none."""
    from justitia.sim.latency import latency_from_json

    path = path or calibration_path()
    if not path.exists():
        raise FileNotFoundError(f"no calibration at {path}; run `justitia calibrate` first")
    obj = json.loads(path.read_text())
    return latency_from_json(obj["latency"]), obj


def calibrate(url: str, grid: str = "quick", seed: int = 0, progress: Callable[[str], None] = print,
              model: str | None = None) -> tuple[Any, list[Sample]]:
    """Measure samples on the server at ``url`` and fit the latency model."""
    async def main() -> list[Sample]:
        m = model
        if m is None:
            from openai import AsyncOpenAI

            c = AsyncOpenAI(base_url=url.rstrip("/") + "/v1", api_key="EMPTY")
            m = (await c.models.list()).data[0].id
            await c.close()
        return await _measure(url, m, progress, grid, seed)

    samples = asyncio.run(main())
    return fit_nonneg(samples), samples


# ---------------------------------------------------------------------- sim vs real
def sim_config(latency: Any, capacity_tokens: float, calib: dict[str, Any] | None = None) -> Any:
    from justitia.sim.config import EngineConfig

    c = calib or {}
    return EngineConfig(latency=latency, capacity_tokens=int(capacity_tokens),
                        block_size=int(c.get("block_size", SERVER_BLOCK_SIZE)),
                        max_num_batched_tokens=int(c.get("max_num_batched_tokens", CPU_MAX_NUM_BATCHED_TOKENS)),
                        max_num_seqs=int(c.get("max_num_seqs", CPU_MAX_NUM_SEQS)), name="cpu-calibrated")


@dataclass(slots=True)
class RealRun:
    """What the sim-vs-real check needs of one real run (from memory or from a bench output folder)."""

    policy: str
    specs: list[Any]  # AppSpec with real token counts, arrivals and stages
    hints: dict[str, float | None]  # app_cost_hint each app sent
    act_s: dict[str, float]
    makespan_s: float
    preemptions: int
    step_s: float = math.nan  # the run's measured engine step time while busy


def real_runs_from_bench(runs: Sequence[Any], metrics: Sequence[Any]) -> list[RealRun]:
    return [RealRun(r.policy, list(r.measured), {o.job.name: o.job.cost_hint for o in r.outcomes},
                    {a.app_id: a.act_s for a in m.apps}, r.result.makespan_s, int(r.result.preemptions),
                    r.step_s)
            for r, m in zip(runs, metrics)]


def real_runs_from_dir(folder: Path) -> tuple[list[RealRun], float, float]:
    """Read a ``justitia bench`` output folder: ``(runs, M, iteration_s)``."""
    import csv

    from justitia.apps.model import load_jsonl

    bj = folder / "bench.json"
    if not bj.exists():
        raise FileNotFoundError(f"{bj} not found: pass the --out folder of a finished `justitia bench`")
    data = json.loads(bj.read_text())
    rows: dict[str, list[dict[str, str]]] = {}
    with (folder / "apps.csv").open() as f:
        for row in csv.DictReader(f):
            rows.setdefault(row["policy"], []).append(row)
    runs = []
    for pol, fig in data["policies"].items():
        specs = load_jsonl(folder / f"measured_{pol}.jsonl")
        r = rows.get(pol, [])
        runs.append(RealRun(pol, specs, {x["app_id"]: float(x["estimated_cost"]) if x["estimated_cost"] else None for x in r},
                            {x["app_id"]: float(x["act_s"]) for x in r}, float(fig["makespan_s"]), int(fig["preemptions"]),
                            float(fig.get("step_s", math.nan))))
    return runs, float(data["capacity_tokens"]), float(data["iteration_s"])


def compare_sim(runs: Sequence[RealRun], capacity_tokens: float, iteration_s: float,
                calibration: Path | None = None) -> dict[str, Any]:
    """Replay each real run in the simulator (same apps, lengths, arrivals, policy, hints); compare ACTs.

    Policies that need a cost get the hint each app sent the real server (what its oracle estimator
    read), so both engines order alike.
    """
    from justitia.policies import make_policy, needs_cost
    from justitia.sim.engine import simulate

    latency, calib = load_calibration(calibration)
    config = sim_config(latency, capacity_tokens, calib)
    out: dict[str, Any] = {"latency": latency.to_json(), "capacity_tokens": config.kv_capacity, "policies": {}}
    from justitia.sim.latency import LinearLatency

    def sim(run: RealRun, cfg: Any) -> Any:
        policy = make_policy(run.policy, cfg.kv_capacity, iteration_s,
                             estimator=_HintEstimator(run.hints) if needs_cost(run.policy) else None)
        return simulate(run.specs, policy, cfg)

    def mean_act(res: Any, ids: list[str]) -> tuple[float, dict[str, float]]:
        acts = {a.app_id: a.act_s for a in res.apps}
        missing = [i for i in ids if i not in acts]
        if missing:
            raise ValueError(f"simulated run lacks apps {missing[:3]}")
        return float(np.mean([acts[i] for i in ids])), acts

    for run in runs:
        ids = sorted(run.act_s)
        res = sim(run, config)
        sim_mean, sim_act = mean_act(res, ids)
        real_mean = float(np.mean([run.act_s[i] for i in ids]))
        per_app = np.array([sim_act[i] / run.act_s[i] for i in ids if run.act_s[i] > 0])
        row: dict[str, Any] = {
            "real_mean_act_s": real_mean, "sim_mean_act_s": sim_mean, "sim_over_real": sim_mean / real_mean,
            "per_app_ratio_median": float(np.median(per_app)),
            "real_makespan_s": run.makespan_s, "sim_makespan_s": res.makespan_s,
            "real_preemptions": run.preemptions, "sim_preemptions": int(res.preemptions),
            "real_step_s": run.step_s, "sim_step_s": _busy_step_s(res),
        }
        # Step-matched replay: the host's speed drifts between the calibration and the run (±10-20 % on
        # this VM), which shifts every simulated time alike. Rescale the latency model by the run's own
        # measured step time / the simulated step time (engine speed only, no ACT enters) and replay.
        f = run.step_s / row["sim_step_s"] if row["sim_step_s"] > 0 else math.nan
        if math.isfinite(f) and f > 0 and isinstance(latency, LinearLatency):
            scaled = LinearLatency(latency.a * f, latency.b * f, latency.c * f, latency.d * f, latency.e * f)
            m2, _ = mean_act(sim(run, config.replace(latency=scaled)), ids)
            row.update({"speed_factor": f, "sim_matched_mean_act_s": m2, "sim_matched_over_real": m2 / real_mean})
        out["policies"][run.policy] = row
    pols = out["policies"]
    real_rank = sorted(pols, key=lambda p: pols[p]["real_mean_act_s"])
    sim_rank = sorted(pols, key=lambda p: pols[p]["sim_mean_act_s"])
    out["real_ranking"] = real_rank
    out["sim_ranking"] = sim_rank
    out["ranking_identical"] = real_rank == sim_rank
    out["max_mean_act_error"] = max(abs(v["sim_over_real"] - 1) for v in pols.values()) if pols else math.nan
    if pols and all("sim_matched_mean_act_s" in v for v in pols.values()):
        out["sim_matched_ranking"] = sorted(pols, key=lambda p: pols[p]["sim_matched_mean_act_s"])
        out["ranking_identical_matched"] = out["sim_matched_ranking"] == real_rank
        out["max_mean_act_error_matched"] = max(abs(v["sim_matched_over_real"] - 1) for v in pols.values())
    return out


def _busy_step_s(res: Any) -> float:
    """The simulated engine's mean step time while busy (as the bench measures the real one)."""
    busy = float((res.extra or {}).get("busy_s", res.makespan_s))
    return busy / res.iterations if res.iterations else math.nan


class _HintEstimator:
    """The cost the real run declared for each app (``app_cost_hint``), as the server's oracle saw it."""

    name = "hint"

    def __init__(self, hints: dict[str, float | None]) -> None:
        self.hints = hints

    def estimate(self, app: Any) -> float:
        h = self.hints.get(app.app_id)
        if h is not None:
            return float(h)
        return float(app.cost_hint or 0.0)


def print_agreement(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    t = Table(title="simulator (calibrated CPU latency) vs real engine", title_justify="left", header_style="bold")
    for col in ("policy", "real mean ACT s", "sim mean ACT s", "sim / real", "median app sim/real",
                "step ms real/sim", "step-matched sim / real", "real makespan s", "sim makespan s",
                "preemptions real/sim"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for p, v in data["policies"].items():
        t.add_row(p, f"{v['real_mean_act_s']:.2f}", f"{v['sim_mean_act_s']:.2f}", f"{v['sim_over_real']:.2f}",
                  f"{v['per_app_ratio_median']:.2f}", f"{v['real_step_s'] * 1e3:.1f}/{v['sim_step_s'] * 1e3:.1f}",
                  f"{v.get('sim_matched_over_real', math.nan):.2f}", f"{v['real_makespan_s']:.1f}",
                  f"{v['sim_makespan_s']:.1f}", f"{v['real_preemptions']}/{v['sim_preemptions']}")
    console.print(t)
    if "ranking_identical_matched" in data:
        console.print(f"step-matched: ranking {data['sim_matched_ranking']} "
                      f"{'identical' if data['ranking_identical_matched'] else 'DIFFERENT'}; largest mean-ACT error "
                      f"{data['max_mean_act_error_matched'] * 100:.0f} %")
    console.print(f"ranking real {data['real_ranking']} vs sim {data['sim_ranking']}: "
                  f"{'identical' if data['ranking_identical'] else 'DIFFERENT'}; "
                  f"largest mean-ACT error {data['max_mean_act_error'] * 100:.0f} %")
