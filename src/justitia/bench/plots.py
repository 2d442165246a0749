"""Plots of a comparison (issue 2 §5): ``act_cdf.png`` and ``slowdown.png``. matplotlib, Agg backend.

* ``act_cdf.png`` — the empirical CDF of application completion time per policy, log x.
* ``slowdown.png`` — left: CDF of each app's slowdown versus fair sharing,
  ``ACT / max(fair ACT, critical path)``: the fluid reference's ACT (clock eq. 2) floored by the app's
  own minimum duration on the engine (bound eq. 2 in :mod:`.metrics`), so 1 means "as fast as fair
  sharing could have made it". Right: CDF of each app's delay beyond its fair finish as a fraction of
  its allowance (bound eq. 3); apps right of 1 are over the bound.
"""

from __future__ import annotations

import textwrap

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from justitia.bench.metrics import PolicyMetrics
from justitia.core.policy import split_policy_name

# One fixed colour and line style per known policy so figures compare across runs.
_STYLE: dict[str, tuple[str, str]] = {
    "fcfs": ("#7f7f7f", "-"),
    "app_fcfs": ("#8c564b", "-"),
    "vtc": ("#1f77b4", "-"),
    "sjf": ("#9467bd", "--"),
    "plas": ("#ff7f0e", "-"),
    "atlas": ("#bcbd22", "-"),
    "justitia": ("#d62728", "-"),
}
_EXTRA = ["#17becf", "#e377c2", "#2ca02c", "#393b79", "#637939"]


def _style(name: str, i: int) -> dict[str, object]:
    try:
        base = split_policy_name(name)[0]
    except ValueError:  # a label that is no registered policy: its own colour
        base = name
    color, ls = _STYLE.get(base, (_EXTRA[i % len(_EXTRA)], "-"))
    if base != name:  # e.g. justitia-mlp: same colour family, dotted
        ls = ":"
    lw = 2.4 if base == "justitia" else 1.6
    return {"color": color, "linestyle": ls, "linewidth": lw}


def _ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step points of the empirical CDF, starting at 0 at the smallest value."""
    x = np.sort(values)
    y = np.arange(1, len(x) + 1) / len(x)
    return np.concatenate([x[:1], x]), np.concatenate([[0.0], y])


def _plain_log_axis(ax) -> None:  # type: ignore[no-untyped-def]
    """Log x axis labelled 0.1, 1, 10, 100 rather than 10^k."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _figure(ncols: int = 1, width: float = 7.0):  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, 4.6), squeeze=False)
    return plt, fig, axes[0]


def plot_act_cdf(metrics: Sequence[PolicyMetrics], path: str | Path, title: str = "") -> Path:
    """ECDF of ACT per policy (log x), mean ACT in the legend."""
    plt, fig, (ax,) = _figure()
    for i, m in enumerate(metrics):
        acts = m.acts()
        if acts.size == 0:
            continue
        x, y = _ecdf(np.maximum(acts, 1e-3))
        ax.step(x, y, where="post", label=f"{m.policy} (mean {m.mean_act_s:,.1f} s)", **_style(m.policy, i))
    _plain_log_axis(ax)
    ax.set_xlabel("application completion time, ACT (s, log scale)")
    ax.set_ylabel("fraction of applications")
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    ax.set_title(textwrap.fill(title or "Application completion time (CDF)", 60), fontsize=11)
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def slowdowns(m: PolicyMetrics) -> np.ndarray:
    """ACT / max(fluid fair ACT, critical path) per app (see module docstring)."""
    out = []
    for a in m.apps:
        ref = max(a.fair_act_s, a.critical_path_s, 1e-9)
        out.append(max(a.act_s, 0.0) / ref)
    return np.array(out, dtype=float)


def plot_slowdown(metrics: Sequence[PolicyMetrics], path: str | Path, title: str = "") -> Path:
    """Two panels: slowdown vs fair sharing (CDF, log x) and delay / allowed delay (CDF)."""
    plt, fig, (ax1, ax2) = _figure(ncols=2, width=12.5)
    for i, m in enumerate(metrics):
        if not m.apps:
            continue
        st = _style(m.policy, i)
        sd = slowdowns(m)
        x, y = _ecdf(np.maximum(sd, 1e-3))
        ax1.step(x, y, where="post", label=f"{m.policy} (median {np.median(sd):.2f}×)", **st)
        frac = np.array([a.delay_vs_fair_s / a.allowed_delay_s if a.allowed_delay_s > 0 else 0.0 for a in m.apps])
        x2, y2 = _ecdf(frac)
        ax2.step(x2, y2, where="post", label=f"{m.policy} ({m.apps_over_fair_bound} over)", **st)
    ax1.axvline(1.0, color="black", linewidth=0.8, alpha=0.6)
    _plain_log_axis(ax1)
    ax1.set_xlabel("slowdown = ACT / max(fair-sharing ACT, own critical path)  (log scale)")
    ax1.set_ylabel("fraction of applications")
    ax1.set_ylim(0, 1.01)
    ax1.set_title("Slowdown versus fair sharing")
    ax1.grid(True, which="major", alpha=0.35)
    ax1.legend(loc="lower right", fontsize=8)
    ax2.set_xscale("symlog", linthresh=1.0)
    lo, hi = ax2.get_xlim()
    hi = max(hi, 2.0)
    ax2.axvline(1.0, color="black", linewidth=0.8, alpha=0.6)
    ax2.axvspan(1.0, hi, color="red", alpha=0.07, lw=0)
    ax2.set_xlim(lo, hi)
    from matplotlib.ticker import FuncFormatter

    ax2.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax2.set_xlabel("(completion − fair finish) / (fair bound + critical path)   [>1: over the bound]")
    ax2.set_ylabel("fraction of applications")
    ax2.set_ylim(0, 1.01)
    ax2.set_title("Delay beyond fair finish, relative to the allowed delay")
    ax2.grid(True, which="major", alpha=0.35)
    ax2.legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
