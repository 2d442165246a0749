"""Fig. 7, 8, 10 and 11 of the paper (§5.2–5.5) in the simulator.

* Fig. 7 — mean and P90 job (agent) completion time at density 1× / 2× / 3× under each policy;
* Fig. 8 — the finish-time fair ratio (an agent's JCT ÷ its JCT under VTC) as a CDF at 3×: the share
  of agents ≤ 1 and the worst ratio;
* Fig. 10 — robustness: Justitia fed the true cost × a random factor in ``[1/λ, λ]``
  (:class:`justitia.core.estimators.NoisyOracleEstimator`), mean JCT relative to λ = 1;
* Fig. 11 — ablation: Justitia with VTC's cost ``p + 2d`` (``justitia-c``) against Justitia.

Every run of one density shares one workload and one measured reference rate
(:func:`justitia.bench.experiment.measure_iteration_s`), as ``justitia simulate`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from justitia.apps.model import AppSpec
from justitia.core.policy import Estimator
from justitia.paper.config import PaperConfig, make_apps

Step = Callable[[str], None]


def _no_step(_: str) -> None:
    pass


@dataclass
class Setting:
    """One workload on one engine with its measured reference rate (shared by every policy run)."""

    apps: list[AppSpec]
    engine: Any
    capacity_tokens: float
    iteration_s: float


@dataclass
class PolicyRun:
    label: str
    mean_s: float
    p90_s: float
    acts: dict[str, float]
    wall_s: float
    preemptions: int = 0


@dataclass
class Context:
    """What the experiments share: the config, a progress callback, calibrated settings, estimators."""

    cfg: PaperConfig
    step: Step = _no_step
    estimators: dict[str, Estimator] = field(default_factory=dict)  # e.g. "mlp" → our retrained MLP
    settings: dict[float, Setting] = field(default_factory=dict)

    def setting(self, density: float) -> Setting:
        if density not in self.settings:
            self.settings[density] = calibrate(make_apps(self.cfg, density), self.cfg.gpu, self.cfg.exact_dynamic_keys)
            self.step(f"calibrate {density:g}×")
        return self.settings[density]


def calibrate(apps: Sequence[AppSpec], gpu: str, exact_dynamic_keys: bool = False) -> Setting:
    """The engine preset of ``gpu`` and its measured reference rate on ``apps``. ``exact_dynamic_keys``
    (:class:`justitia.sim.config.EngineConfig`) off: VTC's and SJF's keys lag service by at most
    ``served_every`` iterations, several times faster on the paper's call-heavy agents."""
    from justitia.bench.experiment import engine_config, measure_iteration_s, reference_rate

    engine = engine_config(gpu)
    cap, _ = reference_rate(engine)
    it_s, _ = measure_iteration_s(apps, engine)
    return Setting(list(apps), engine.replace(exact_dynamic_keys=exact_dynamic_keys), cap, it_s)


def available(name: str) -> bool:
    """Whether this build knows policy ``name`` (some of the paper's baselines may be missing)."""
    from justitia.policies import make_policy

    try:
        make_policy(name, 1.0, 1.0)
    except ValueError:
        return False
    return True


def build(name: str, setting: Setting, estimators: Mapping[str, Estimator]) -> Any:
    """Policy ``name``; a learned suffix (``-mlp``) uses the context's estimator object when it has one."""
    from justitia.core.policy import split_policy_name
    from justitia.policies import make_policy

    base, suffix = split_policy_name(name)
    if suffix and suffix in estimators:
        policy = make_policy(base, setting.capacity_tokens, setting.iteration_s, estimator=estimators[suffix])
        policy.name = name  # type: ignore[misc]
        return policy
    return make_policy(name, setting.capacity_tokens, setting.iteration_s)


def run_policy(setting: Setting, name: str, estimators: Mapping[str, Estimator] | None = None,
               *, estimator: Estimator | None = None, label: str | None = None) -> PolicyRun:
    """Simulate ``setting`` under ``name`` (or under ``name``'s base with ``estimator``)."""
    from justitia.core.policy import split_policy_name
    from justitia.policies import make_policy
    from justitia.sim.engine import simulate

    if estimator is not None:
        policy = make_policy(split_policy_name(name)[0], setting.capacity_tokens, setting.iteration_s,
                             estimator=estimator)
    else:
        policy = build(name, setting, estimators or {})
    t0 = time.perf_counter()
    res = simulate(setting.apps, policy, setting.engine)
    wall = time.perf_counter() - t0
    acts = {r.app_id: r.act_s for r in res.apps}
    v = np.fromiter(acts.values(), dtype=np.float64)
    return PolicyRun(label or name, float(v.mean()), float(np.percentile(v, 90)), acts, wall, res.preemptions)


def fair_ratios(run: PolicyRun, reference: PolicyRun) -> np.ndarray:
    """Each agent's JCT ÷ its JCT under the reference (VTC): the paper's finish-time fair ratio (the same
    ratio as :func:`justitia.bench.metrics.apply_fair_ratios`, on the JCTs this package keeps per run)."""
    from justitia.bench.metrics import fair_ratio

    return np.asarray([fair_ratio(run.acts[a], reference.acts[a]) for a in sorted(reference.acts)
                       if reference.acts[a] > 0])


def fair_summary(ratios: np.ndarray) -> dict[str, float]:
    """Share ≤ 1 (the threshold of ``simulate``'s ``fair_ratio_le1_share``), worst and median ratio."""
    from justitia.bench.metrics import share_no_later

    return {"le1_share": share_no_later(ratios), "max": float(ratios.max()),
            "p50": float(np.median(ratios))}


# ----------------------------------------------------------------------------------------- figures


def fig7(ctx: Context) -> dict[str, Any]:
    """``{"densities": {d: {policy: {mean_s, p90_s, wall_s}}}, "missing": [...]}`` and the runs kept
    for Fig. 8 and 11 (under ``"_runs"``)."""
    cfg = ctx.cfg
    pols = [p for p in cfg.policies if available(p)]
    out: dict[str, Any] = {"densities": {}, "missing": [p for p in cfg.policies if not available(p)], "_runs": {}}
    for d in cfg.densities:
        ctx.setting(d)
    runs = run_many(ctx, [(d, p) for d in cfg.densities for p in pols], "Fig. 7")
    for d in cfg.densities:
        out["_runs"][d] = {p: runs[(d, p)] for p in pols}
        out["densities"][d] = {p: {"mean_s": r.mean_s, "p90_s": r.p90_s, "wall_s": r.wall_s,
                                   "preemptions": r.preemptions} for p, r in out["_runs"][d].items()}
    return out


_FORKED: Context | None = None  # the context a forked worker of run_many reads (inherited, not pickled)


def _run_job(job: tuple[float, str]) -> tuple[tuple[float, str], PolicyRun]:
    assert _FORKED is not None
    d, p = job
    return job, run_policy(_FORKED.settings[d], p, _FORKED.estimators)


def run_many(ctx: Context, jobs: Sequence[tuple[float, str]], what: str) -> dict[tuple[float, str], PolicyRun]:
    """Run ``(density, policy)`` jobs on ``ctx.cfg.workers`` processes (forked: the calibrated settings
    and trained estimators are inherited); results are identical to running them one by one."""
    global _FORKED
    for d, _ in jobs:
        ctx.setting(d)
    workers = min(ctx.cfg.workers, len(jobs))
    out: dict[tuple[float, str], PolicyRun] = {}
    _FORKED = ctx
    try:
        if workers <= 1:
            done = map(_run_job, jobs)
        else:
            import multiprocessing

            pool = multiprocessing.get_context("fork").Pool(workers)
            done = pool.imap_unordered(_run_job, jobs)
        for job, run in done:
            out[job] = run
            ctx.step(f"{what} {job[0]:g}× {job[1]}")
        if workers > 1:
            pool.close()
            pool.join()
    finally:
        _FORKED = None
    return out


def fig8(fig7_out: Mapping[str, Any], density: float) -> dict[str, Any]:
    """Fair-ratio CDF data at ``density`` from Fig. 7's runs: per policy the sorted ratios and summary."""
    runs: dict[str, PolicyRun] = fig7_out["_runs"][density]
    if "vtc" not in runs:
        return {"density": density, "policies": {}, "note": "vtc was not run: no fair reference"}
    ref = runs["vtc"]
    pols = {}
    for p, r in runs.items():
        if p == "vtc":
            continue
        ratios = fair_ratios(r, ref)
        pols[p] = {**fair_summary(ratios), "ratios": sorted(ratios.tolist())}
    return {"density": density, "policies": pols}


def fig10(ctx: Context, density: float, base: str = "justitia") -> dict[str, Any]:
    """Mean JCT of ``base`` with costs × a factor in [1/λ, λ], per λ (averaged over noise seeds); each λ
    keeps its noise seed 0 run's JCTs per agent under ``"_acts"`` (for :mod:`justitia.paper.causes`)."""
    from justitia.core.estimators import NoisyOracleEstimator

    s = ctx.setting(density)
    rows = {}
    for lam in ctx.cfg.lambdas:
        seeds = 1 if lam == 1.0 else ctx.cfg.noise_seeds
        means = []
        for k in range(seeds):
            r = run_policy(s, base, estimator=NoisyOracleEstimator(lam, seed=k), label=f"{base} λ={lam:g}")
            means.append(r.mean_s)
            if k == 0:
                first = r.acts
            ctx.step(f"Fig. 10 λ={lam:g} seed {k}")
        rows[f"{lam:g}"] = {"mean_s": float(np.mean(means)), "runs": means, "_acts": first}
    ref = rows.get("1", next(iter(rows.values())))["mean_s"]
    for v in rows.values():
        v["vs_oracle"] = v["mean_s"] / ref
    return {"density": density, "policy": base, "lambdas": rows}


def fig11(ctx: Context, fig7_out: Mapping[str, Any], ablated: str = "justitia-c", base: str = "justitia") -> dict[str, Any]:
    """Mean JCT of ``ablated`` (VTC's cost) vs ``base`` at every density."""
    if not available(ablated):
        return {"missing": ablated, "densities": {}}
    dens = ctx.cfg.densities
    known = {(d, p): r for d in dens for p, r in fig7_out["_runs"].get(d, {}).items()}
    todo = [(d, p) for d in dens for p in (base, ablated) if (d, p) not in known]
    runs = {**known, **run_many(ctx, todo, "Fig. 11")}
    rows = {}
    for d in dens:
        ref, r = runs[(d, base)], runs[(d, ablated)]
        rows[d] = {base: ref.mean_s, ablated: r.mean_s, "ratio": r.mean_s / ref.mean_s,
                   f"{base}_p90": ref.p90_s, f"{ablated}_p90": r.p90_s}
    return {"densities": rows, "base": base, "ablated": ablated}


def fig7_steps(cfg: PaperConfig) -> int:
    return len(cfg.densities) * (1 + sum(available(p) for p in cfg.policies))


def fig10_steps(cfg: PaperConfig) -> int:
    return sum(1 if lam == 1.0 else cfg.noise_seeds for lam in cfg.lambdas)
