"""`justitia bench` / `justitia calibrate` argument errors: one clean line, exit code 2, nothing started."""

from __future__ import annotations

import pytest

from justitia.cli import main


@pytest.mark.parametrize("argv, message", [
    (["bench", "--policies", "fcfs,fcfs"], "more than once"),
    (["bench", "--policies", "nope"], "unknown policy 'nope'"),
    (["bench", "--endpoint", "http://127.0.0.1:1", "--policies", "fcfs,justitia"], "one policy"),
    (["bench", "--apps", "0"], "--apps must be >= 1"),
    (["bench", "--rate", "-1"], "rate"),
    (["bench", "--kv-tokens", "8"], "--kv-tokens"),
    (["bench", "--workload", "/nonexistent/wl.jsonl"], "workload file not found"),
])
def test_bench_bad_arguments(argv, message, capsys, tmp_path) -> None:
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_calibrate_needs_a_calibration_for_compare(tmp_path, monkeypatch) -> None:
    from justitia.runner.calibrate import load_calibration

    monkeypatch.setenv("JUSTITIA_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="justitia calibrate"):
        load_calibration()
