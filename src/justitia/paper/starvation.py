"""Fig. 9 of the paper (§5.3): starvation of an elephant under SRJF, bounded under Justitia.

One large agent (the *elephant*, an MRS in the paper; here the largest of 10 drawn) arrives at t = 0; then a small agent (a *mouse*:
KBQA-V, CC or ALFWI, drawn at random) arrives every second, ``n`` mice in all (100 … 500). Under
shortest-remaining-job-first every mouse is smaller than the elephant's remaining cost, so the elephant
waits while mice keep coming: its completion time grows with ``n``. Under Justitia a mouse arriving at
``a`` gets ``F = V(a) + C``, and ``V`` keeps growing while the elephant is active in the fair
reference, so later mice eventually tag after the elephant: its completion time stays bounded.
Both policies use the oracle cost here, so the difference is the ordering rule alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from justitia.apps.arrivals import offered_load
from justitia.apps.model import AppSpec
from justitia.paper.config import PaperConfig, type_samples
from justitia.paper.experiments import Context, calibrate, run_policy

POLICIES = ("sjf", "justitia")
ELEPHANT_DRAWS = 10  # the elephant is the largest of this many agents of its type


def elephant_and_mice(cfg: PaperConfig, n_mice: int, seed: int | None = None) -> list[AppSpec]:
    """The elephant at t = 0 and ``n_mice`` mice, one every ``cfg.mouse_gap_s`` from t = gap."""
    seed = cfg.seed if seed is None else seed
    if n_mice < 1:
        raise ValueError(f"need at least one mouse, got {n_mice}")
    big = max(type_samples(cfg, cfg.elephant_type, ELEPHANT_DRAWS, seed), key=lambda a: a.cost)
    elephant = dataclasses.replace(big, arrival_s=0.0, app_id="elephant")
    pools = {t: type_samples(cfg, t, n_mice, seed + 1) for t in cfg.mouse_types}
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(cfg.mouse_types), size=n_mice)
    mice = []
    for i in range(n_mice):
        src = pools[cfg.mouse_types[int(which[i])]][i]
        mice.append(dataclasses.replace(src, app_id=f"mouse-{i:04d}", arrival_s=(i + 1) * cfg.mouse_gap_s))
    return [elephant, *mice]


def fig9(ctx: Context) -> dict[str, Any]:
    """``{"mice": {n: {policy: {"elephant_s", "mice_mean_s"}, "mice_load"}}, "elephant_cost", "elephant_alone_s"}``;
    ``mice_load`` is the load the mice alone offer (their cost ÷ the engine's measured rate × their window)."""
    cfg = ctx.cfg
    out: dict[str, Any] = {"mice": {}, "elephant_type": cfg.elephant_type, "mouse_types": list(cfg.mouse_types)}
    for n in cfg.mice:
        apps = elephant_and_mice(cfg, n)
        setting = calibrate(apps, cfg.gpu)
        row: dict[str, Any] = {}
        for p in POLICIES:
            r = run_policy(setting, p)
            mice = [v for k, v in r.acts.items() if k != "elephant"]
            row[p] = {"elephant_s": r.acts["elephant"], "mice_mean_s": float(np.mean(mice))}
            ctx.step(f"Fig. 9 {n} mice {p}")
        row["mice_load"] = offered_load(apps[1:], setting.capacity_tokens / setting.iteration_s)
        out["mice"][n] = row
        out["elephant_cost"] = apps[0].cost
    alone = calibrate(elephant_and_mice(cfg, 1)[:1], cfg.gpu)
    out["elephant_alone_s"] = run_policy(alone, "fcfs").acts["elephant"]
    ctx.step("Fig. 9 elephant alone")
    return out


def fig9_steps(cfg: PaperConfig) -> int:
    return len(cfg.mice) * len(POLICIES) + 1
