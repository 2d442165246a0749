"""``justitia simulate`` end to end on the real simulator (small workloads), and its error messages."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from justitia.cli import main
from justitia.paths import shared_data_dir


def azure_code_jsonl(path: Path, n: int) -> Path:
    """A workload we did not design: the first ``n`` rows of the Azure code trace, one app per request,
    arrival times as in the trace (a JSONL file in the format of issue 2 §3)."""
    with (shared_data_dir() / "traces" / "azure_code_2023.csv").open() as f, path.open("w") as out:
        for i, row in enumerate(csv.DictReader(f)):
            if i == n:
                break
            app = {"app_id": f"code-{i}", "arrival_s": float(row["arrived_at"]), "type": "code",
                   "weight": 1.0, "stages": [{"calls": [{"prompt_tokens": int(row["num_prefill_tokens"]),
                                                         "output_tokens": int(row["num_decode_tokens"])}],
                                              "delay_s": 0.0}]}
            out.write(json.dumps(app) + "\n")
    return path


def test_simulate_paper_mix_small(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["simulate", "--workload", "paper-mix", "--apps", "24", "--load", "0.9", "--seed", "3",
               "--policies", "fcfs,vtc,justitia", "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["workload"] == "paper-mix"
    assert list(summary["policies"]) == ["fcfs", "vtc", "justitia"]
    for s in summary["policies"].values():
        assert s["apps"] == 24
        assert s["max_act_s"] >= s["p99_act_s"] >= s["p50_act_s"] > 0
        assert s["throughput_tok_s"] > 0
    # the same workload for every policy: identical fair bound and identical reference finish times
    assert len({s["fair_bound_s"] for s in summary["policies"].values()}) == 1
    rows = list(csv.DictReader((out / "apps.csv").open()))
    assert len(rows) == 3 * 24
    fair = {}
    for r in rows:
        fair.setdefault(r["app_id"], set()).add(r["fair_finish_s"])
    assert all(len(v) == 1 for v in fair.values())
    for png in ("act_cdf.png", "slowdown.png"):
        assert (out / png).stat().st_size > 10_000
    text = capsys.readouterr().out
    assert "justitia" in text and "over" in text and "bound" in text


def test_simulate_replays_a_foreign_jsonl_unchanged(tmp_path):
    wl = azure_code_jsonl(tmp_path / "azure_code.jsonl", 40)
    out = tmp_path / "code"
    rc = main(["simulate", "--workload", str(wl), "--policies", "fcfs,justitia", "--out", str(out), "--no-plots"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["workload"] == "azure_code"
    assert summary["policies"]["fcfs"]["apps"] == 40
    rows = list(csv.DictReader((out / "apps.csv").open()))
    # arrivals replayed from the file (no --load): the trace's own times
    first = {r["app_id"]: float(r["arrival_s"]) for r in rows if r["policy"] == "fcfs"}
    assert first["code-1"] == pytest.approx(0.052)


def test_unknown_workload_is_a_clean_error(tmp_path, capsys):
    rc = main(["simulate", "--workload", "no-such-mix", "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown workload 'no-such-mix'" in err and "paper-mix" in err


def test_unknown_policy_is_a_clean_error(tmp_path, capsys):
    rc = main(["simulate", "--apps", "5", "--policies", "fcfs,bogus", "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown policy 'bogus'" in err
    assert not (tmp_path / "summary.json").exists()


def test_missing_workload_file_is_a_clean_error(tmp_path, capsys):
    rc = main(["simulate", "--workload", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)])
    assert rc == 2
    assert "not found" in capsys.readouterr().err


def test_bad_numbers_are_clean_errors(tmp_path, capsys):
    assert main(["simulate", "--apps", "0", "--out", str(tmp_path)]) == 2
    assert "--apps" in capsys.readouterr().err
    assert main(["simulate", "--load", "-1", "--apps", "4", "--out", str(tmp_path)]) == 2
    assert "--load" in capsys.readouterr().err
    assert main(["simulate", "--policies", "fcfs,,vtc", "--out", str(tmp_path)]) == 2
    assert "comma-separated" in capsys.readouterr().err


def test_measured_reference_is_slower_than_nominal_and_shared(tmp_path):
    """The engine cannot beat its nominal rate (prefill compute, KV never 100 % full): the measured
    reference iteration is longer, so the fair bound grows by the same factor."""
    out = {}
    for ref in ("nominal", "measured"):
        d = tmp_path / ref
        assert main(["simulate", "--apps", "30", "--policies", "fcfs,justitia", "--reference", ref,
                     "--out", str(d), "--no-plots"]) == 0
        out[ref] = json.loads((d / "summary.json").read_text())["policies"]
    for ref in out:
        assert out[ref]["fcfs"]["fair_bound_s"] == out[ref]["justitia"]["fair_bound_s"]
    ratio = out["measured"]["fcfs"]["fair_bound_s"] / out["nominal"]["fcfs"]["fair_bound_s"]
    assert 1.0 < ratio < 3.0
    # the runs themselves do not depend on the reference for fcfs (its keys ignore the clock)
    assert out["measured"]["fcfs"]["mean_act_s"] == out["nominal"]["fcfs"]["mean_act_s"]


def test_justitia_beats_fcfs_and_vtc_and_keeps_the_bound(tmp_path):
    """The headline, small: under memory contention (150 paper-mix apps, load 1.5) Justitia with oracle
    costs has the lowest mean ACT, no app over its fair finish + bound, and a smaller worst delay than
    FCFS, while FCFS has apps over the bound (so the check can fail)."""
    out = tmp_path / "headline"
    assert main(["simulate", "--apps", "150", "--load", "1.5", "--seed", "0", "--policies", "fcfs,vtc,justitia",
                 "--out", str(out), "--no-plots"]) == 0
    s = json.loads((out / "summary.json").read_text())["policies"]
    assert s["justitia"]["mean_act_s"] < s["vtc"]["mean_act_s"] < s["fcfs"]["mean_act_s"]
    assert s["justitia"]["apps_over_fair_bound"] == 0
    assert s["fcfs"]["apps_over_fair_bound"] > 0
    assert s["justitia"]["max_delay_vs_fair_s"] < s["fcfs"]["max_delay_vs_fair_s"]
