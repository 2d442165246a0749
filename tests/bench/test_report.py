"""summary.json shape, apps.csv rows, the Rich table, and the plots on hand-built runs."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console

from justitia.apps.model import AppSpec
from justitia.bench.metrics import evaluate
from justitia.bench.plots import plot_act_cdf, plot_slowdown, slowdowns
from justitia.bench.report import SUMMARY_KEYS, build_table, summary_dict, write_apps_csv, write_summary

EXPECTED_TYPES = {
    "apps": int, "mean_act_s": float, "p50_act_s": float, "p90_act_s": float, "p99_act_s": float,
    "max_act_s": float, "mean_delay_vs_fair_s": float, "max_delay_vs_fair_s": float,
    "apps_over_fair_bound": int, "fair_bound_s": float, "throughput_tok_s": float, "preemptions": int,
    "paper_bound_s": float, "apps_over_paper_bound": int,
}


@pytest.fixture
def metrics(make_run, workload):
    return [
        evaluate(make_run("fcfs", (0.5, 1.0, 0.9)), workload),
        evaluate(make_run("justitia", (0.2, 0.5, 0.4)), workload),
    ]


def test_summary_json_has_exactly_the_contract_shape(tmp_path, metrics):
    path = write_summary(tmp_path / "summary.json", "hand", metrics)
    obj = json.loads(path.read_text())
    assert set(obj) == {"workload", "policies"}
    assert obj["workload"] == "hand"
    assert list(obj["policies"]) == ["fcfs", "justitia"]
    assert set(SUMMARY_KEYS) == set(EXPECTED_TYPES)
    for entry in obj["policies"].values():
        assert set(entry) == set(EXPECTED_TYPES)
        for k, t in EXPECTED_TYPES.items():
            assert type(entry[k]) is t, (k, entry[k])
    assert obj["policies"]["fcfs"]["mean_act_s"] == pytest.approx(0.7)
    assert obj["policies"]["justitia"]["max_act_s"] == pytest.approx(0.5)


def test_duplicate_policy_is_an_error(metrics):
    with pytest.raises(ValueError, match="more than once: fcfs"):
        summary_dict("hand", [metrics[0], metrics[0]])


def test_apps_csv_one_row_per_policy_and_app(tmp_path, metrics):
    path = write_apps_csv(tmp_path / "apps.csv", metrics)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 2 * 3
    assert list(rows[0])[:10] == ["policy", "app_id", "type", "arrival_s", "completion_s", "act_s",
                                  "fair_finish_s", "delay_vs_fair_s", "cost", "estimated_cost"]
    assert {(r["policy"], r["app_id"]) for r in rows} == {(p, a) for p in ("fcfs", "justitia") for a in "abc"}
    c = next(r for r in rows if r["policy"] == "fcfs" and r["app_id"] == "c")
    assert float(c["act_s"]) == pytest.approx(0.6)
    assert float(c["fair_finish_s"]) == pytest.approx(0.4)
    assert float(c["delay_vs_fair_s"]) == pytest.approx(0.5)
    assert float(c["cost"]) == 500.0 and float(c["estimated_cost"]) == 750.0
    assert c["over_bound"] == "1"


def test_table_shows_ratio_to_fcfs(metrics):
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(build_table(metrics, "hand"))
    text = buf.getvalue()
    justitia_row = next(line for line in text.splitlines() if "justitia" in line)
    # ACTs 0.2, 0.5, 0.1 (c arrived at 0.3) -> mean 0.2667 vs fcfs 0.7 -> 0.38x
    assert "0.38×" in justitia_row
    assert "1.00×" in next(line for line in text.splitlines() if line.strip("│ ").startswith("fcfs"))


def test_slowdown_uses_fair_act_floored_by_critical_path(metrics):
    sd = slowdowns(metrics[0])
    # a: ACT 0.5 / max(fair ACT 0.2, path 0.05); b: 1.0 / max(0.45, 0.30); c: 0.6 / max(0.1, 0.05)
    assert sd.tolist() == pytest.approx([2.5, 1.0 / 0.45, 6.0])


def test_plots_are_written_as_png(tmp_path, metrics):
    for fn, name in ((plot_act_cdf, "act_cdf.png"), (plot_slowdown, "slowdown.png")):
        path = fn(metrics, tmp_path / name)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 10_000  # axes, curves and legend, not an empty canvas


def test_plot_subtitle_names_the_load_against_the_right_rate() -> None:
    """A real bench has only the measured rate: its load must not read "0.00 of the measured service rate"."""
    from justitia.bench.experiment import Comparison, plot_subtitle

    apps = [AppSpec.from_json({"app_id": f"a{i}", "arrival_s": float(i), "stages": [{"calls": [{"prompt_tokens": 10, "output_tokens": 5}]}]})
            for i in range(3)]
    real = Comparison(workload="real-mix-quick", apps=apps, capacity_tokens=2048, iteration_s=0.1, offered_load=3.04)
    assert plot_subtitle(real) == "real-mix-quick: 3 apps, load 3.04 (of the measured service rate)"
    sim = Comparison(workload="paper-mix", apps=apps, capacity_tokens=2048, iteration_s=0.1, offered_load=0.9,
                     effective_load=1.27)
    assert plot_subtitle(sim) == "paper-mix: 3 apps, load 0.90 (1.27 of the measured service rate)"
