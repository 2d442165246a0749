"""The report of a side-by-side comparison: ``summary.json``, ``apps.csv`` and a Rich table (issue 2 §5).

``summary.json`` has exactly this shape (other tools read it)::

    {"workload": str, "policies": {"<name>": {"apps": int, "mean_act_s": f, "p50_act_s": f,
     "p90_act_s": f, "p99_act_s": f, "max_act_s": f, "mean_delay_vs_fair_s": f,
     "max_delay_vs_fair_s": f, "apps_over_fair_bound": int, "fair_bound_s": f,
     "throughput_tok_s": f, "preemptions": int, "paper_bound_s": f, "apps_over_paper_bound": int
     [, "fair_ratio_le1_share": f, "fair_ratio_max": f]}}}

The two ``fair_ratio_*`` keys (the paper's finish-time fair ratio, JCT ÷ the same app's JCT under
``vtc``) are present for every policy exactly when ``vtc`` is among the policies; ``apps.csv``'s
``fair_ratio`` column is then filled (else empty).

``apps.csv`` has one row per policy × application; its first columns are :data:`APPS_CSV_COLUMNS`'s
leading ten (policy … estimated_cost), followed by the bound's ingredients (see :mod:`.metrics`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from justitia.bench.metrics import PolicyMetrics, apply_fair_ratios

SUMMARY_KEYS: tuple[str, ...] = (
    "apps", "mean_act_s", "p50_act_s", "p90_act_s", "p99_act_s", "max_act_s", "mean_delay_vs_fair_s",
    "max_delay_vs_fair_s", "apps_over_fair_bound", "fair_bound_s", "throughput_tok_s", "preemptions",
    "paper_bound_s", "apps_over_paper_bound",
)
FAIR_RATIO_KEYS: tuple[str, ...] = ("fair_ratio_le1_share", "fair_ratio_max")
"""Appended to every policy's summary when ``vtc`` ran."""

APPS_CSV_COLUMNS: tuple[str, ...] = (
    "policy", "app_id", "type", "arrival_s", "completion_s", "act_s", "fair_finish_s", "delay_vs_fair_s",
    "cost", "estimated_cost", "critical_path_s", "allowed_delay_s", "over_bound", "fair_ratio",
)


def _check_unique(metrics: Sequence[PolicyMetrics]) -> None:
    names = [m.policy for m in metrics]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"policy listed more than once: {', '.join(dup)}")


def summary_dict(workload: str, metrics: Sequence[PolicyMetrics]) -> dict[str, Any]:
    """The ``summary.json`` object, policies in the order given."""
    _check_unique(metrics)
    apply_fair_ratios(metrics)
    return {"workload": str(workload), "policies": {m.policy: m.summary() for m in metrics}}


def write_summary(path: str | Path, workload: str, metrics: Sequence[PolicyMetrics]) -> Path:
    path = Path(path)
    path.write_text(json.dumps(summary_dict(workload, metrics), indent=2) + "\n")
    return path


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return repr(float(x))  # shortest exact round-trip form


def write_apps_csv(path: str | Path, metrics: Sequence[PolicyMetrics]) -> Path:
    """One row per policy × application, in the policies' order, apps by arrival then id."""
    _check_unique(metrics)
    apply_fair_ratios(metrics)
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(APPS_CSV_COLUMNS)
        for m in metrics:
            for a in sorted(m.apps, key=lambda a: (a.arrival_s, a.app_id)):
                w.writerow([
                    m.policy, a.app_id, a.app_type, _fmt(a.arrival_s), _fmt(a.completion_s), _fmt(a.act_s),
                    _fmt(a.fair_finish_s), _fmt(a.delay_vs_fair_s), _fmt(a.cost), _fmt(a.estimated_cost),
                    _fmt(a.critical_path_s), _fmt(a.allowed_delay_s), int(a.over_bound), _fmt(a.fair_ratio),
                ])
    return path


def baseline_of(metrics: Sequence[PolicyMetrics], preferred: str = "fcfs") -> PolicyMetrics | None:
    """The policy the table's ratio column compares against: ``fcfs`` if run, else none."""
    for m in metrics:
        if m.policy == preferred:
            return m
    return None


def _secs(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


TABLE_LEGEND = (
    "Times in s. mean ÷fcfs: mean ACT / fcfs's. delay: completion − fair-sharing finish.\n"
    "over bound: apps later than fair finish + C_max/M × iteration + own critical path.\n"
    "≤vtc / worst ÷vtc (when vtc ran): share of apps whose ACT ≤ their ACT under vtc, and the worst ACT ratio."
)


def build_table(metrics: Sequence[PolicyMetrics], title: str = "", baseline: str = "fcfs") -> Any:
    """A :class:`rich.table.Table` with one row per policy."""
    from rich.table import Table

    base = baseline_of(metrics, baseline)
    fair = apply_fair_ratios(metrics)
    from rich import box

    table = Table(
        title=title or None, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, padding=(0, 0, 0, 2),
    )
    table.add_column("policy", style="bold", no_wrap=True)
    heads = ["mean\nACT", "p50\nACT", "p99\nACT", f"mean\n÷{baseline}", "max\ndelay", "over\nbound", "tok/s", "preempt"]
    if fair:  # the paper's columns replace p99, max delay and tok/s (80 columns)
        heads = ["mean\nACT", "p50\nACT", "p90\nACT", f"mean\n÷{baseline}", "≤vtc", "worst\n÷vtc", "over\nbound",
                 "pre-\nempt"]
    for head in heads:
        table.add_column(head, justify="right", no_wrap=True)
    best = min((m.mean_act_s for m in metrics), default=0.0)
    for m in metrics:
        s = m.summary()
        ratio = ""
        if base is not None and base.mean_act_s > 0:
            ratio = f"{m.mean_act_s / base.mean_act_s:.2f}×"
        mean = _secs(s["mean_act_s"])
        if metrics and m.mean_act_s == best:
            mean = f"[green]{mean}[/green]"
        over = str(s["apps_over_fair_bound"])
        if s["apps_over_fair_bound"]:
            over = f"[red]{over}[/red]"
        cells = [m.policy, mean, _secs(s["p50_act_s"]), _secs(s["p99_act_s"]), ratio,
                 _secs(s["max_delay_vs_fair_s"]), over, f"{s['throughput_tok_s']:,.0f}", f"{s['preemptions']:,}"]
        if fair:
            cells = [m.policy, mean, _secs(s["p50_act_s"]), _secs(s["p90_act_s"]), ratio, f"{s['fair_ratio_le1_share']:.0%}",
                     f"{s['fair_ratio_max']:.2f}", over, f"{s['preemptions']:,}"]
        table.add_row(*cells)
    return table


def print_table(metrics: Sequence[PolicyMetrics], title: str = "", console: Any = None) -> None:
    from rich.console import Console

    console = console or Console()
    console.print(build_table(metrics, title))
    console.print(TABLE_LEGEND, style="dim", highlight=False)
