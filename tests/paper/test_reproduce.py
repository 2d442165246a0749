"""``justitia reproduce`` on a tiny configuration, and the pieces its figures rest on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from justitia.cli import main
from justitia.paper import config
from justitia.paper.experiments import PolicyRun, fair_ratios, fair_summary
from justitia.paper.overhead import DecisionTimer
from justitia.paper.starvation import elephant_and_mice


def _reproduce_tiny(out, workload: str) -> None:
    rc = main(["reproduce", "--quick", "--workload", workload, "--apps", "16", "--mice", "3,6",
               "--train-per-type", "10", "--out", str(out), "--no-progress"])
    assert rc == 0
    report = (out / "REPORT.md").read_text()
    assert "| claim | paper | ours | where they differ |" in report
    for claim in ("Justitia ÷ VTC", "Justitia ÷ Parrot", "no later than under VTC", "worst finish-time fair ratio",
                  "Fig. 9", "Fig. 10", "Fig. 11", "ms per prediction", "Fig. 12"):
        assert claim in report
    res = json.loads((out / "results.json").read_text())
    assert set(res["fig7"]["densities"]) == {"1", "3"}
    for row in res["fig7"]["densities"].values():
        for v in row.values():
            assert v["p90_s"] >= 0 and v["mean_s"] > 0
    assert set(res["fig9"]["mice"]) == {"3", "6"}
    assert res["table1"]["rows"]["oracle"]["mean_rel_error"] == 0.0
    assert res["fig10"]["lambdas"]["1"]["vs_oracle"] == 1.0
    assert {"vtc", "cost_order", "late", "noise"} <= set(res["causes"])
    for name in ("fig7", "fig8", "fig9", "fig10", "table1", "fig12"):
        assert (out / f"{name}.png").stat().st_size > 1000


def test_reproduce_tiny(tmp_path, capsys):
    """The stand-in workload (paper-mix on H100 types): every figure, the report and its headline."""
    out = tmp_path / "paper"
    _reproduce_tiny(out, "paper-mix")
    assert "REPORT.md" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert not res["config"]["paper_setup"] and res["table1"]["tfidf_missing"]


@pytest.mark.slow
def test_reproduce_tiny_paper_suite(tmp_path):
    """The paper's own suite: the TF-IDF predictor joins Table 1 (~4 min on the shared 2-core host)."""
    out = tmp_path / "paper"
    _reproduce_tiny(out, "paper-suite")
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["paper_setup"]
    assert {"tfidf", "ours", "typemean", "linear", "oracle"} <= set(res["table1"]["rows"])
    assert "TF-IDF" in (out / "REPORT.md").read_text()


def test_fair_ratio_by_hand():
    ref = PolicyRun("vtc", 0, 0, {"a": 10.0, "b": 20.0, "c": 5.0}, 0)
    run = PolicyRun("justitia", 0, 0, {"a": 5.0, "b": 20.0, "c": 10.0}, 0)
    r = fair_ratios(run, ref)
    assert r.tolist() == [0.5, 1.0, 2.0]
    s = fair_summary(r)
    assert s["le1_share"] == 2 / 3 and s["max"] == 2.0


def test_elephant_then_mice():
    cfg = config.PaperConfig()
    apps = elephant_and_mice(cfg, 20)
    assert apps[0].app_id == "elephant" and apps[0].arrival_s == 0.0
    assert [a.arrival_s for a in apps[1:]] == [float(i) for i in range(1, 21)]
    assert {a.type for a in apps[1:]} <= set(cfg.mouse_types)
    assert apps[0].cost > max(a.cost for a in apps[1:])


def test_decision_timer_keeps_the_run_identical():
    from justitia.policies import make_policy
    from justitia.sim.config import preset
    from justitia.sim.engine import simulate

    apps = config.make_apps(config.PaperConfig(n_apps=30), 2)
    eng = preset("h100-llama2-7b")
    plain = simulate(apps, make_policy("justitia", eng.kv_capacity, 0.03), eng)
    timer = DecisionTimer()
    timed = simulate(apps, timer.wrap(make_policy("justitia", eng.kv_capacity, 0.03)), eng)
    assert [r.completion_s for r in plain.apps] == [r.completion_s for r in timed.apps]
    s = timer.summary()
    assert s["decisions"] == len(timer.per_decision) > len(apps)
    assert 0 < s["mean_ms"] <= s["max_ms"] and 0 < s["p99_ms"] <= s["max_ms"]
    assert np.all(np.asarray(timer.per_decision) >= 0)
