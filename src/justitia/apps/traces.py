"""Loaders for the real request traces in ``../shared/data/traces`` (DESIGN §4, data README).

* ``azure_conv_2023.csv`` — 19,366 requests of one hour of an Azure LLM inference service
  (conversation): ``arrived_at`` (s), ``num_prefill_tokens``, ``num_decode_tokens``.
* ``azure_code_2023.csv`` — 8,819 code-completion requests (bursty), same columns.
* ``arxiv_summarization_lengths.csv`` — 28,257 arXiv papers: ``num_prefill_tokens`` (paper) and
  ``num_decode_tokens`` (abstract), Llama-2 tokenizer. The source (Vidur's processed trace) kept only
  papers whose paper + abstract fit 4,096 tokens, so these are the *short* papers of the dataset.
* ``mooncake_conversation_2025.csv`` — 12,031 requests of one hour of Kimi's conversation service
  (Mooncake, FAST'25): ``timestamp_ms``, ``input_length``, ``output_length``. The Justitia paper takes
  its agents' submission times from the Mooncake traces.

Each loader returns read-only numpy arrays and caches them (the files are read once per process).
Files are read with :mod:`csv` (no pandas); a missing file or column is an error naming it.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from justitia.paths import shared_data_dir

AZURE_CONV = "azure_conv_2023.csv"
AZURE_CODE = "azure_code_2023.csv"
ARXIV = "arxiv_summarization_lengths.csv"
MOONCAKE = "mooncake_conversation_2025.csv"


@dataclass(frozen=True)
class RequestTrace:
    """A trace of single requests: arrival times (s, from 0) and token lengths, all of equal length."""

    name: str
    arrived_at: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray

    def __len__(self) -> int:
        return int(self.prompt_tokens.shape[0])

    @property
    def duration_s(self) -> float:
        """Time from the first to the last arrival."""
        return float(self.arrived_at[-1] - self.arrived_at[0]) if len(self) else 0.0


@dataclass(frozen=True)
class LengthTrace:
    """Token lengths without timestamps (arXiv summarization: paper and abstract lengths)."""

    name: str
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray

    def __len__(self) -> int:
        return int(self.prompt_tokens.shape[0])


def trace_path(filename: str) -> Path:
    """Path of a trace file under the shared data folder; a clear error if it is absent."""
    path = shared_data_dir() / "traces" / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"trace file not found: {path} (expected the shared data folder's traces/{filename}; "
            "set JUSTITIA_DATA to the folder holding traces/)"
        )
    return path


def _read_columns(path: Path, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: empty trace file (no header)") from None
        header = [h.strip() for h in header]
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; header is {header}")
        idx = [header.index(c) for c in columns]
        rows: list[list[float]] = []
        for n, row in enumerate(reader, 2):
            if not row:
                continue
            try:
                rows.append([float(row[i]) for i in idx])
            except (ValueError, IndexError):
                raise ValueError(f"{path}:{n}: malformed row {row!r}") from None
    if not rows:
        raise ValueError(f"{path}: trace has a header but no rows")
    data = np.asarray(rows, dtype=np.float64)
    out = {}
    for j, c in enumerate(columns):
        col = data[:, j].copy()
        col.setflags(write=False)
        out[c] = col
    return out


def _lengths(col: np.ndarray, path: Path, name: str) -> np.ndarray:
    if not np.all(np.isfinite(col)) or np.any(col < 0) or np.any(col != np.round(col)):
        raise ValueError(f"{path}: column {name!r} must hold non-negative integers")
    out = col.astype(np.int64)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=None)

def _request_trace(filename: str, columns: tuple[str, str, str], per_second: float = 1.0) -> RequestTrace:
    """Read the (arrival time, prompt tokens, output tokens) ``columns`` of ``filename``: rows in arrival
    order, times in seconds from the first arrival (``per_second``: the file's time units per second),
    read-only arrays."""
    path = trace_path(filename)
    time_col, prompt_col, output_col = columns
    cols = _read_columns(path, columns)
    t = cols[time_col]
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{path}: column {time_col!r} has non-finite values")
    order = np.argsort(t, kind="stable")
    t = t[order] - t[order][0]
    if per_second != 1.0:
        t = t / per_second
    p = _lengths(cols[prompt_col], path, prompt_col)[order]
    o = _lengths(cols[output_col], path, output_col)[order]
    for a in (t, p, o):
        a.setflags(write=False)
    return RequestTrace(filename.removesuffix(".csv"), t, p, o)

def load_request_trace(filename: str = AZURE_CONV) -> RequestTrace:
    """Load an Azure-style trace (``arrived_at``, ``num_prefill_tokens``, ``num_decode_tokens``).

    Rows are returned in arrival order; arrival times are shifted so the first is 0.
    """
    return _request_trace(filename, ("arrived_at", "num_prefill_tokens", "num_decode_tokens"))


def azure_conv() -> RequestTrace:
    """The Azure 2023 conversation trace (19,366 requests, one hour)."""
    return load_request_trace(AZURE_CONV)


def azure_code() -> RequestTrace:
    """The Azure 2023 code-completion trace (8,819 requests, bursty)."""
    return load_request_trace(AZURE_CODE)


@functools.lru_cache(maxsize=None)
def arxiv_lengths() -> LengthTrace:
    """arXiv summarization lengths: paper tokens (``prompt_tokens``) and abstract tokens (``output_tokens``)."""
    path = trace_path(ARXIV)
    cols = _read_columns(path, ("num_prefill_tokens", "num_decode_tokens"))
    p = _lengths(cols["num_prefill_tokens"], path, "num_prefill_tokens")
    o = _lengths(cols["num_decode_tokens"], path, "num_decode_tokens")
    return LengthTrace(ARXIV.removesuffix(".csv"), p, o)


@functools.lru_cache(maxsize=None)
def mooncake() -> RequestTrace:
    """The Mooncake conversation trace (12,031 requests, one hour), as a :class:`RequestTrace`."""
    return _request_trace(MOONCAKE, ("timestamp_ms", "input_length", "output_length"), per_second=1000.0)
