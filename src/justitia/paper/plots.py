"""One PNG per figure of ``justitia reproduce`` (the paper's Fig. 7–12 and Table 1). matplotlib, Agg.

Every function takes the JSON-able result of its experiment (:mod:`.experiments`, :mod:`.starvation`,
:mod:`.predictors`, :mod:`.overhead`) and a path, and returns the path written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from justitia.bench.plots import _ecdf, _figure, _style


def _save(plt: Any, fig: Any, path: Path, title: str) -> Path:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_fig7(res: Mapping[str, Any], path: Path) -> Path:
    """Grouped bars: mean (left) and P90 (right) JCT per density, one bar per policy."""
    dens = list(res["densities"])
    pols = list(next(iter(res["densities"].values()))) if dens else []
    plt, fig, axes = _figure(2, width=12.0)
    w = 0.8 / max(len(pols), 1)
    for ax, key, lab in ((axes[0], "mean_s", "mean JCT (s)"), (axes[1], "p90_s", "P90 JCT (s)")):
        for i, p in enumerate(pols):
            ys = [res["densities"][d][p][key] for d in dens]
            ax.bar(np.arange(len(dens)) + i * w, ys, w, label=p, color=_style(p, i)["color"],
                   hatch="//" if "-" in p else None)
        ax.set_xticks(np.arange(len(dens)) + w * (len(pols) - 1) / 2, [f"{d}×" for d in dens])
        ax.set_ylabel(lab)
        ax.set_xlabel("load (arrival density)")
    axes[0].legend(fontsize=7)
    return _save(plt, fig, path, "Fig. 7 — job completion time per policy and load")


def plot_fig8(res: Mapping[str, Any], path: Path) -> Path:
    """CDF of the finish-time fair ratio (JCT ÷ JCT under VTC) per policy."""
    plt, fig, axes = _figure(1)
    ax = axes[0]
    for i, (p, v) in enumerate(res["policies"].items()):
        x, y = _ecdf(np.asarray(v["ratios"]))
        ax.step(x, y, where="post", label=f"{p} (≤1: {v['le1_share']:.0%}, max {v['max']:.2f})", **_style(p, i))
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("finish-time fair ratio (JCT ÷ JCT under VTC)")
    ax.set_ylabel("share of agents")
    ax.legend(fontsize=7)
    return _save(plt, fig, path, f"Fig. 8 — fair-ratio CDF at {res['density']}×")


def plot_fig9(res: Mapping[str, Any], path: Path) -> Path:
    """Elephant JCT vs number of mice, SRJF against Justitia."""
    plt, fig, axes = _figure(1)
    ax = axes[0]
    ns = [int(n) for n in res["mice"]]
    for i, p in enumerate(p for p in next(iter(res["mice"].values())) if p != "mice_load"):
        ax.plot(ns, [res["mice"][str(n)][p]["elephant_s"] for n in ns], marker="o", label=p, **_style(p, i))
    if "elephant_alone_s" in res:
        ax.axhline(res["elephant_alone_s"], color="black", linewidth=0.8, linestyle="--", label="elephant alone")
    ax.set_xlabel("number of mice (one per second)")
    ax.set_ylabel("elephant JCT (s)")
    ax.legend(fontsize=8)
    return _save(plt, fig, path, f"Fig. 9 — one {res['elephant_type']} elephant among mice")


def plot_fig10(res: Mapping[str, Any], path: Path) -> Path:
    plt, fig, axes = _figure(1)
    lams = list(res["lambdas"])
    axes[0].plot([float(x) for x in lams], [res["lambdas"][x]["vs_oracle"] for x in lams], marker="o",
                 **_style(res["policy"], 0))
    axes[0].set_xlabel("λ (cost × random factor in [1/λ, λ])")
    axes[0].set_ylabel("mean JCT ÷ mean JCT at λ = 1")
    return _save(plt, fig, path, f"Fig. 10 — robustness to cost errors at {res['density']}×")


def plot_fig11(res: Mapping[str, Any], path: Path) -> Path:
    plt, fig, axes = _figure(1)
    dens = list(res["densities"])
    w = 0.4
    for i, p in enumerate((res.get("base", "justitia"), res.get("ablated", "justitia-c"))):
        axes[0].bar(np.arange(len(dens)) + i * w, [res["densities"][d][p] for d in dens], w, label=p,
                    color=_style(p, i)["color"], hatch="//" if i else None)
    axes[0].set_xticks(np.arange(len(dens)) + w / 2, [f"{d}×" for d in dens])
    axes[0].set_ylabel("mean JCT (s)")
    axes[0].legend(fontsize=8)
    return _save(plt, fig, path, "Fig. 11 — Justitia with VTC's cost (p + 2d)")


def plot_table1(res: Mapping[str, Any], path: Path) -> Path:
    plt, fig, axes = _figure(2, width=11.0)
    names = list(res["rows"])
    for ax, key, lab in ((axes[0], "mean_rel_error", "relative error (mean; dot = median)"),
                         (axes[1], "mean_jct_s", "mean JCT with justitia (s)")):
        ax.bar(names, [res["rows"][n][key] for n in names], color=[_style(n, i)["color"] for i, n in enumerate(names)])
        if key == "mean_rel_error":
            ax.plot(names, [res["rows"][n]["median_rel_error"] for n in names], "ko")
        ax.set_ylabel(lab)
    return _save(plt, fig, path, f"Table 1 — predictors on {res['held_out_apps']} held-out agents")


def plot_fig12(res: Mapping[str, Any], path: Path) -> Path:
    plt, fig, axes = _figure(1)
    rates = res["rates"]
    for i, p in enumerate(res["policies"]):
        xs = [r["agents_per_min"] for r in rates if p in r]
        axes[0].plot(xs, [r[p]["mean_ms"] for r in rates if p in r], marker="o", label=f"{p} mean", **_style(p, i))
        axes[0].plot(xs, [r[p]["p99_ms"] for r in rates if p in r], marker="x", alpha=0.5, label=f"{p} p99",
                     color=_style(p, i)["color"], linestyle="--")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("arrival rate (agents per minute)")
    axes[0].set_ylabel("policy time per scheduling decision (ms)")
    axes[0].legend(fontsize=7)
    return _save(plt, fig, path, "Fig. 12 — scheduling overhead vs arrival rate")


PLOTS = {"fig7": plot_fig7, "fig8": plot_fig8, "fig9": plot_fig9, "fig10": plot_fig10, "fig11": plot_fig11,
         "table1": plot_table1, "fig12": plot_fig12}
