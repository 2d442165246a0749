from __future__ import annotations

import numpy as np
import pytest

from justitia.apps import traces


def test_azure_conv_rows_and_columns() -> None:
    tr = traces.azure_conv()
    assert len(tr) == 19_366
    assert tr.arrived_at[0] == 0.0
    assert np.all(np.diff(tr.arrived_at) >= 0)
    assert 3400 < tr.duration_s < 3700  # one hour
    assert tr.prompt_tokens.dtype == np.int64 and tr.prompt_tokens.min() >= 1
    assert tr.output_tokens.min() >= 1
    # first row of the file: 0.0,374,44
    assert (int(tr.prompt_tokens[0]), int(tr.output_tokens[0])) == (374, 44)


def test_azure_code_and_arxiv_rows() -> None:
    assert len(traces.azure_code()) == 8_819
    arx = traces.arxiv_lengths()
    assert len(arx) == 28_257
    assert (int(arx.prompt_tokens[0]), int(arx.output_tokens[0])) == (3772, 54)
    assert int((arx.prompt_tokens + arx.output_tokens).max()) <= 4096


def test_loaders_cache_and_read_only() -> None:
    a, b = traces.azure_conv(), traces.azure_conv()
    assert a is b
    with pytest.raises(ValueError):
        a.prompt_tokens[0] = 5


def test_missing_trace_file_is_a_clear_error(tmp_path, monkeypatch) -> None:
    (tmp_path / "traces").mkdir()
    monkeypatch.setenv("JUSTITIA_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="azure_conv_2023.csv"):
        traces.trace_path(traces.AZURE_CONV)


def test_bad_trace_files_name_the_problem(tmp_path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("arrived_at,num_prefill_tokens\n0,5\n")
    with pytest.raises(ValueError, match="missing column"):
        traces._read_columns(p, ("arrived_at", "num_prefill_tokens", "num_decode_tokens"))
    p.write_text("a,b\n1,x\n")
    with pytest.raises(ValueError, match=r"t.csv:2: malformed row"):
        traces._read_columns(p, ("a", "b"))
    p.write_text("a,b\n")
    with pytest.raises(ValueError, match="no rows"):
        traces._read_columns(p, ("a", "b"))
