"""The whole reproduction behind ``justitia reproduce``: every §5 experiment, a progress bar, the outputs.

Order: the predictors are trained first (Table 1's training agents; our retrained MLP then serves
``sjf-mlp`` and ``justitia-mlp`` everywhere), then Fig. 7 (and Fig. 8 from its top-density runs),
Fig. 11, Fig. 10, Table 1's evaluation, Fig. 9 and Fig. 12, and the measured causes of every difference
(:mod:`justitia.paper.causes`). Outputs in ``out``: ``results.json``
(every number), ``REPORT.md`` and one PNG per figure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from justitia.paper.causes import measured_causes
from justitia.paper.config import PaperConfig
from justitia.paper.experiments import Context, available, fig7, fig7_steps, fig8, fig10, fig10_steps, fig11
from justitia.paper.overhead import fig12, fig12_steps
from justitia.paper.predictors import table1, table1_steps, train_all
from justitia.paper.starvation import fig9, fig9_steps


def plan_steps(cfg: PaperConfig) -> int:
    """How many progress steps :func:`reproduce` will take (calibrations, trainings, simulations)."""
    settings = len(set(cfg.densities) | {cfg.table_density})
    f11 = len(cfg.densities) if available("justitia-c") else 0
    return (settings + table1_steps(cfg) + fig7_steps(cfg) - len(cfg.densities) + f11 + fig10_steps(cfg)
            + fig9_steps(cfg) + fig12_steps(len(cfg.overhead_densities)))


class _Timer:
    """Wall and CPU seconds (this process and its finished workers) per part of the run."""

    def __init__(self) -> None:
        self.parts: dict[str, dict[str, float]] = {}

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        t0, c0 = time.perf_counter(), _cpu_s()
        out = fn()
        self.parts[name] = {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu_s() - c0}
        return out


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_all(ctx: Context) -> dict[str, Any]:
    """Every experiment on ``ctx`` (see the module docstring); JSON-able apart from Fig. 7's ``_runs``.
    ``res["parts"]``: wall and CPU seconds of each part."""
    cfg = ctx.cfg
    top = max(cfg.densities)
    timed = _Timer()
    timed("calibrate", lambda: [ctx.setting(d) for d in sorted(set(cfg.densities) | {cfg.table_density})])
    trained = timed("train predictors", lambda: train_all(ctx, ctx.setting(cfg.table_density).apps))
    f7 = timed("fig7", lambda: fig7(ctx))
    res: dict[str, Any] = {"fig7": f7, "fig8": fig8(f7, top)}
    res["fig11"] = timed("fig11", lambda: fig11(ctx, f7))
    res["fig10"] = timed("fig10", lambda: fig10(ctx, top))
    res["table1"] = timed("table1", lambda: table1(ctx, trained, cfg.table_density))
    res["fig9"] = timed("fig9", lambda: fig9(ctx))
    res["fig12"] = timed("fig12", lambda: fig12(ctx))
    noisy = {lam: row.pop("_acts") for lam, row in res["fig10"]["lambdas"].items()}
    res["causes"] = measured_causes(ctx.setting(top).apps, {p: r.acts for p, r in f7.pop("_runs")[top].items()}, noisy)
    res["parts"] = timed.parts
    return res


def config_json(cfg: PaperConfig, command: str) -> dict[str, Any]:
    d = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "input_text"}
    d["paper_setup"] = cfg.paper_setup
    d["input_text"] = cfg.input_text is not None
    d["command"] = command
    return d


def reproduce(cfg: PaperConfig, out: str | Path, *, progress: bool = True, console: Any = None,
              command: str = "justitia reproduce", plots: bool = True) -> dict[str, Any]:
    """Run everything, write ``results.json``, the PNGs and ``REPORT.md`` into ``out``; return the results."""
    from justitia.paper.report import write_report

    out = Path(out)
    t0 = time.perf_counter()
    ctx = Context(cfg)
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[bold]{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("reproduce", total=plan_steps(cfg))

            def step(desc: str) -> None:
                bar.update(task, advance=1, description=desc)

            ctx.step = step
            res = run_all(ctx)
    else:
        res = run_all(ctx)
    res = json.loads(json.dumps(res))  # string keys everywhere, as a reader of results.json sees them
    res["config"] = config_json(cfg, command)
    res["wall_s"] = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    if plots:
        from justitia.paper.plots import PLOTS

        for name, fn in PLOTS.items():
            part = res.get(name) or {}
            if part and any(part.get(k) for k in ("densities", "policies", "mice", "lambdas", "rows", "rates")):
                fn(part, out / f"{name}.png")
    res["wall_s"] = time.perf_counter() - t0
    (out / "results.json").write_text(json.dumps(res, indent=1))
    write_report(res, out)
    return res
