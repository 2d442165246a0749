"""``justitia predictor train | eval`` end to end (small data, few epochs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from justitia.cli import main


def test_train_then_eval_writes_predictor_json(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("JUSTITIA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("JUSTITIA_PREDICTOR_MODEL", raising=False)
    # no --out: the default location under the cache, which `eval` then reads by default
    assert main(["predictor", "train", "--workload", "self-consistency", "--apps", "300", "--epochs", "30",
                 "--no-progress"]) == 0
    assert (tmp_path / "cache" / "predictor" / "model.pt").is_file()
    assert main(["predictor", "eval", "--out", str(tmp_path / "res")]) == 0
    res = json.loads((tmp_path / "res" / "predictor.json").read_text())
    assert set(res) == {"mlp", "typemean", "linear", "oracle"}
    for r in res.values():
        assert set(r) == {"median_rel_error", "p90_rel_error", "spearman", "ms_per_prediction"}
        assert all(isinstance(v, float) for v in r.values())
    assert res["oracle"]["median_rel_error"] == 0.0
    # on the held-out split the MLP learned something: it beats the per-type mean (one type here, so a
    # constant; measured 0.21 vs 0.35 median relative error) and ranks applications by cost
    mlp, mean = res["mlp"], res["typemean"]
    assert mlp["median_rel_error"] < 0.8 * mean["median_rel_error"]
    assert mlp["p90_rel_error"] < mean["p90_rel_error"]
    assert mlp["spearman"] > 0.6 and mean["spearman"] == 0.0


def test_trace_csv_and_errors(tmp_path: Path, capsys) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("num_prefill_tokens,num_decode_tokens\n" + "".join(f"{100 + 7 * i},{20 + i % 50}\n" for i in range(200)))
    out = tmp_path / "m.pt"
    assert main(["predictor", "train", "--trace", str(csv), "--trace-type", "chat", "--apps", "100", "--epochs", "3",
                 "--out", str(out), "--no-progress"]) == 0
    assert main(["predictor", "eval", "--model", str(out), "--out", str(tmp_path)]) == 0
    assert main(["predictor", "eval", "--model", str(tmp_path / "nope.pt"), "--out", str(tmp_path)]) == 2
    assert "predictor model not found" in capsys.readouterr().err
    assert main(["predictor", "train", "--workload", "no-such", "--out", str(out)]) == 2
    assert "unknown workload" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["predictor", "train", "--trace", str(bad), "--out", str(out)]) == 2
    assert "num_prefill_tokens" in capsys.readouterr().err
