"""Per-iteration latency models of the simulated engine (DESIGN §4; issue 2 §4).

One engine iteration (a vLLM ``step``) runs a batch of ``prefill_tokens`` prompt tokens (chunks of
prefilling requests) and ``decode_tokens`` decode tokens (one per decoding request). Its time is

    T = T_lin(prefill + decode) + κ · kv_tokens_read + π · prefill_attn + overhead      (latency eq. 1)

* ``T_lin(n)`` — the token-wise layers (QKV/O projections, MLP, norms, rope, residual adds) of all
  layers for ``n`` tokens, from the per-operator profiles of ``profiling/*_mlp.csv`` (Vidur; per-layer
  medians × layers). Summarised by the fit ``T_lin(n) = max(flat, a + b·n)`` — flat while the GPU is
  under-occupied (n ≲ 64–128), then linear — which reproduces DESIGN §4's figures; the engine uses the
  measured curve itself (:class:`ProfileCurve`, interpolated), because the real curve has tile-size
  steps between 64 and 256 tokens that the two-piece fit misses by up to 35 %.
* ``κ · kv_tokens_read`` — attention of decoding tokens is memory-bound: every decode token reads the
  K and V of its whole context (``2 · layers · kv_heads · head_dim · 2 bytes`` per token, fp16) at the
  device's memory bandwidth. ``kv_tokens_read`` = Σ over decoding requests of their context length
  (tokens attended, the new one included) + Σ over prefill chunks of the context computed before them.
* ``π · prefill_attn`` — attention of prefill chunks is compute-bound: a chunk of ``x`` new tokens after
  ``c`` computed ones costs ``2·d·(2cx + x²)`` FLOPs per layer (``2·n²·d`` for a whole prompt, causal);
  ``prefill_attn`` = Σ over chunks of ``(2cx + x²)`` (token² units) and ``π = 2·d·layers / FLOP/s``.

Decode-only iterations are therefore linear in the KV read (``decode_base_s(n) + κ·kv``), which the
engine's macro-steps integrate in closed form. :class:`LinearLatency` is the fitted form used for the
CPU engine (``justitia calibrate``): ``a + b·prefill + c·decode + d·kv_read (+ e·prefill_attn)``.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Token-wise operators of one decoder layer in the Vidur profiles (the embedding runs once, not per layer).
_LAYER_OPS = (
    "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj", "post_attention_layernorm",
    "mlp_up_proj", "mlp_act", "mlp_down_proj", "add",
)


@dataclass(frozen=True, slots=True)
class ModelDims:
    """Transformer dimensions needed by the analytic attention terms."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    dtype_bytes: int = 2

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of one token over all layers: ``2 · layers · kv_heads · head_dim · bytes``."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


LLAMA2_7B = ModelDims("llama2-7b", layers=32, hidden=4096, heads=32, kv_heads=32)
LLAMA3_8B = ModelDims("llama3-8b", layers=32, hidden=4096, heads=32, kv_heads=8)


@dataclass(frozen=True, slots=True)
class Device:
    """Achievable rates of an accelerator (the analytic attention terms)."""

    name: str
    mem_bw_bytes_s: float  # HBM bandwidth for the decode-attention KV read
    attn_flops_s: float  # achievable FLOP/s of prefill attention (about half of dense fp16 peak)


H100 = Device("h100", mem_bw_bytes_s=3.35e12, attn_flops_s=0.5 * 989e12)
A100 = Device("a100", mem_bw_bytes_s=2.0e12, attn_flops_s=0.5 * 312e12)
A100_40GB = Device("a100-40gb", mem_bw_bytes_s=1.555e12, attn_flops_s=0.5 * 312e12)
"""A100-PCIe-40GB (the paper's engine): HBM2 at 1,555 GB/s, same tensor cores as the 80 GB part."""


class LatencyModel(ABC):
    """Time of one engine iteration (latency eq. 1). Subclasses must keep it linear in the KV read."""

    #: seconds per KV token read (κ of latency eq. 1)
    kv_s_per_token: float

    @abstractmethod
    def step_s(self, prefill_tokens: int, decode_tokens: int, kv_tokens_read: int, prefill_attn: float = 0.0) -> float:
        """Seconds of one iteration with this batch composition (latency eq. 1)."""

    def decode_base_s(self, n: int) -> float:
        """Time of a decode-only iteration of ``n`` requests, without the KV-read term."""
        return self.step_s(0, n, 0, 0.0)

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """A JSON-able description (``kind`` names the class)."""

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")


# ---------------------------------------------------------------------------------------------- GPU model
@dataclass(frozen=True, slots=True)
class TokenwiseFit:
    """``T_lin(n) = max(flat_s, a_s + b_s·n)``: the token-wise layers of all layers for ``n`` tokens."""

    flat_s: float
    a_s: float
    b_s: float
    source: str = ""

    def __call__(self, n: int) -> float:
        if n <= 0:
            return 0.0
        lin = self.a_s + self.b_s * n
        return lin if lin > self.flat_s else self.flat_s

    @property
    def knee_tokens(self) -> float:
        """Batch size where the linear part takes over from the flat part."""
        return (self.flat_s - self.a_s) / self.b_s if self.b_s > 0 else math.inf


class ProfileCurve:
    """``T_lin(n)`` straight from a profile: linear interpolation between the measured batch sizes (the
    real curve has steps between 64 and 256 tokens that no two-piece fit follows), the first point below
    them, and the fit's slope beyond the last one."""

    __slots__ = ("ns", "ts", "slope", "source")

    def __init__(self, points: Sequence[tuple[int, float]], slope_s: float, source: str = "") -> None:
        by_n: dict[int, list[float]] = {}
        for n, t in points:
            by_n.setdefault(int(n), []).append(float(t))  # repeated batch sizes: their mean
        if len(by_n) < 2:
            raise ValueError(f"profile {source!r} needs at least 2 distinct batch sizes")
        self.ns = sorted(by_n)
        self.ts = [sum(by_n[n]) / len(by_n[n]) for n in self.ns]
        self.slope = float(slope_s)
        self.source = source

    def __call__(self, n: int) -> float:
        if n <= 0:
            return 0.0
        ns, ts = self.ns, self.ts
        if n <= ns[0]:
            return ts[0]
        if n >= ns[-1]:
            return ts[-1] + self.slope * (n - ns[-1])
        i = bisect.bisect_right(ns, n)
        n0, n1 = ns[i - 1], ns[i]
        return ts[i - 1] + (ts[i] - ts[i - 1]) * (n - n0) / (n1 - n0)

    def to_json(self) -> dict[str, Any]:
        return {"points": [[n, t] for n, t in zip(self.ns, self.ts)], "slope_s": self.slope, "source": self.source}


def load_profile(path: str | Path, layers: int, tensor_parallel: int = 1, stat: str = "median") -> list[tuple[int, float]]:
    """``(num_tokens, seconds)`` of the token-wise layers of one iteration (per-layer sum × ``layers``)
    from a Vidur ``mlp.csv`` profile (columns ``time_stats.<op>.<stat>`` in ms)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"profile not found: {path}")
    out: list[tuple[int, float]] = []
    with path.open() as f:
        reader = csv.DictReader(f)
        cols = [f"time_stats.{op}.{stat}" for op in _LAYER_OPS]
        missing = [c for c in cols + ["num_tokens", "num_tensor_parallel_workers"] if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a Vidur mlp profile, missing columns {missing}")
        for row in reader:
            if int(row["num_tensor_parallel_workers"]) != tensor_parallel:
                continue
            ms = sum(float(row[c]) for c in cols)
            out.append((int(row["num_tokens"]), ms * layers / 1000.0))
    if not out:
        raise ValueError(f"{path}: no rows with num_tensor_parallel_workers={tensor_parallel}")
    out.sort()
    return out


def fit_tokenwise(points: Sequence[tuple[int, float]], flat_max_tokens: int = 64, linear_min_tokens: int = 256,
                  source: str = "") -> TokenwiseFit:
    """Fit ``max(flat, a + b·n)``: ``flat`` = mean time for ``n ≤ flat_max_tokens``; ``a, b`` = least
    squares over ``n ≥ linear_min_tokens`` (past the knee, where the GEMMs are compute-bound)."""
    flat = [t for n, t in points if n <= flat_max_tokens]
    lin = [(n, t) for n, t in points if n >= linear_min_tokens]
    if not flat or len(lin) < 2:
        raise ValueError(f"profile {source!r} has too few points to fit (flat={len(flat)}, linear={len(lin)})")
    a, b = _lstsq([[1.0, float(n)] for n, _ in lin], [t for _, t in lin])
    return TokenwiseFit(flat_s=sum(flat) / len(flat), a_s=a, b_s=b, source=source)


class GPULatency(LatencyModel):
    """Calibrated GPU model (latency eq. 1): fitted token-wise layers + analytic attention."""

    def __init__(self, tokenwise: TokenwiseFit, model: ModelDims, device: Device, overhead_s: float = 0.0,
                 curve: ProfileCurve | None = None) -> None:
        self.tokenwise = tokenwise
        self.curve = curve
        self._tl = curve if curve is not None else tokenwise
        self.model = model
        self.device = device
        self.overhead_s = float(overhead_s)
        self.kv_s_per_token = model.kv_bytes_per_token / device.mem_bw_bytes_s
        self.attn_s_per_unit = 2.0 * model.hidden * model.layers / device.attn_flops_s

    def step_s(self, prefill_tokens: int, decode_tokens: int, kv_tokens_read: int, prefill_attn: float = 0.0) -> float:
        return (self._tl(prefill_tokens + decode_tokens) + self.overhead_s
                + self.kv_s_per_token * kv_tokens_read + self.attn_s_per_unit * prefill_attn)

    def decode_base_s(self, n: int) -> float:
        return self._tl(n) + self.overhead_s

    def to_json(self) -> dict[str, Any]:
        out = {"kind": "gpu", "tokenwise": asdict(self.tokenwise), "model": asdict(self.model),
               "device": asdict(self.device), "overhead_s": self.overhead_s}
        if self.curve is not None:
            out["curve"] = self.curve.to_json()
        return out

    def __repr__(self) -> str:
        t = self.tokenwise
        how = "profile curve" if self.curve is not None else "fit"
        return (f"GPULatency({self.device.name}/{self.model.name}: T_lin={how}, fit max({t.flat_s*1e3:.2f} ms, "
                f"{t.a_s*1e3:.2f} ms + {t.b_s*1e6:.2f} µs/token), κ={self.kv_s_per_token*1e9:.1f} ns/KV token)")


# ---------------------------------------------------------------------------------------------- linear model
@dataclass(frozen=True, slots=True)
class StepSample:
    """One measured iteration: its batch composition and wall time (input of :meth:`LinearLatency.fit`)."""

    prefill_tokens: int
    decode_tokens: int
    kv_tokens_read: int
    seconds: float
    prefill_attn: float = 0.0


class LinearLatency(LatencyModel):
    """``T = a + b·prefill_tokens + c·decode_tokens + d·kv_tokens_read + e·prefill_attn`` (seconds).

    The form ``justitia calibrate`` fits on the real (CPU) engine; ``e`` (the quadratic prefill-attention
    term) is optional and 0 unless fitted with ``fit_attn=True``.
    """

    def __init__(self, a: float, b: float, c: float, d: float, e: float = 0.0) -> None:
        for name, v in (("a", a), ("b", b), ("c", c), ("d", d), ("e", e)):
            if not math.isfinite(v):
                raise ValueError(f"LinearLatency coefficient {name} must be finite, got {v!r}")
        self.a, self.b, self.c, self.d, self.e = float(a), float(b), float(c), float(d), float(e)
        self.kv_s_per_token = self.d

    def step_s(self, prefill_tokens: int, decode_tokens: int, kv_tokens_read: int, prefill_attn: float = 0.0) -> float:
        return self.a + self.b * prefill_tokens + self.c * decode_tokens + self.d * kv_tokens_read + self.e * prefill_attn

    def decode_base_s(self, n: int) -> float:
        return self.a + self.c * n

    @classmethod
    def fit(cls, samples: Iterable[StepSample | Sequence[float]], fit_attn: bool = False) -> LinearLatency:
        """Least-squares fit on measured iterations (``StepSample`` or
        ``(prefill, decode, kv_read, seconds[, prefill_attn])`` tuples)."""
        rows: list[list[float]] = []
        ys: list[float] = []
        for s in samples:
            if not isinstance(s, StepSample):
                if len(s) not in (4, 5):
                    raise ValueError(f"a sample must be (prefill, decode, kv_read, seconds[, prefill_attn]), got {s!r}")
                s = StepSample(int(s[0]), int(s[1]), int(s[2]), float(s[3]), float(s[4]) if len(s) == 5 else 0.0)
            if not (math.isfinite(s.seconds) and s.seconds >= 0):
                raise ValueError(f"sample time must be a finite number >= 0, got {s.seconds!r}")
            row = [1.0, float(s.prefill_tokens), float(s.decode_tokens), float(s.kv_tokens_read)]
            if fit_attn:
                row.append(float(s.prefill_attn))
            rows.append(row)
            ys.append(s.seconds)
        need = 5 if fit_attn else 4
        if len(rows) < need:
            raise ValueError(f"need at least {need} samples to fit LinearLatency, got {len(rows)}")
        coef = _lstsq(rows, ys)
        return cls(*coef)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "linear", "a": self.a, "b": self.b, "c": self.c, "d": self.d, "e": self.e}

    def __repr__(self) -> str:
        return (f"LinearLatency(a={self.a*1e3:.3f} ms, b={self.b*1e6:.3f} µs/prefill tok, c={self.c*1e6:.3f} µs/decode tok, "
                f"d={self.d*1e9:.3f} ns/KV tok, e={self.e:.3g})")


def latency_from_json(obj: Mapping[str, Any]) -> LatencyModel:
    """Inverse of :meth:`LatencyModel.to_json`."""
    kind = obj.get("kind")
    try:
        if kind == "linear":
            return LinearLatency(obj["a"], obj["b"], obj["c"], obj["d"], obj.get("e", 0.0))
        if kind == "gpu":
            c = obj.get("curve")
            curve = ProfileCurve([(int(n), float(t)) for n, t in c["points"]], c["slope_s"], c.get("source", "")) if c else None
            return GPULatency(TokenwiseFit(**obj["tokenwise"]), ModelDims(**obj["model"]), Device(**obj["device"]),
                              obj.get("overhead_s", 0.0), curve)
    except (KeyError, TypeError) as e:
        raise ValueError(f"malformed {kind} latency model: {e}") from None
    raise ValueError(f"unknown latency model kind {kind!r} (expected 'linear' or 'gpu')")


def load_latency(path: str | Path) -> LatencyModel:
    """Read a latency model saved with :meth:`LatencyModel.save`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"latency model file not found: {path}")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: a latency model must be a JSON object")
    return latency_from_json(obj)


# ---------------------------------------------------------------------------------------------- presets
_PROFILES = {
    "h100-llama2-7b": ("h100_llama2_7b_mlp.csv", LLAMA2_7B, H100),
    "a100-llama2-7b": ("a100_llama2_7b_mlp.csv", LLAMA2_7B, A100),
    "a100-llama3-8b": ("a100_llama3_8b_mlp.csv", LLAMA3_8B, A100),
    # LLaMA-7B has Llama-2-7B's shapes (32 layers, 4096 hidden, 11008 FFN): same token-wise profile
    "a100-40gb-llama-7b": ("a100_llama2_7b_mlp.csv", LLAMA2_7B, A100_40GB),
}
_CACHE: dict[tuple[str, str], GPULatency] = {}


def gpu_latency(name: str, tokenwise: str = "profile") -> GPULatency:
    """Calibrated model for a named profile (``h100-llama2-7b``, ``a100-llama2-7b``, ``a100-llama3-8b``).

    ``tokenwise="profile"`` (default) uses the measured curve (:class:`ProfileCurve`); ``"fit"`` the
    two-piece fit ``max(flat, a + b·n)`` (DESIGN §4's figures). Both are stored in the model.
    """
    if name not in _PROFILES:
        raise ValueError(f"unknown latency profile {name!r}; choose one of: {', '.join(sorted(_PROFILES))}")
    if tokenwise not in ("profile", "fit"):
        raise ValueError(f"tokenwise must be 'profile' or 'fit', got {tokenwise!r}")
    if (name, tokenwise) not in _CACHE:
        from justitia.paths import shared_data_dir

        fname, dims, dev = _PROFILES[name]
        pts = load_profile(shared_data_dir() / "profiling" / fname, layers=dims.layers)
        fit = fit_tokenwise(pts, source=fname)
        curve = ProfileCurve(pts, fit.b_s, source=fname) if tokenwise == "profile" else None
        _CACHE[(name, tokenwise)] = GPULatency(fit, dims, dev, curve=curve)
    return _CACHE[(name, tokenwise)]


def _lstsq(rows: list[list[float]], ys: list[float]) -> list[float]:
    """Ordinary least squares (numpy lstsq)."""
    import numpy as np

    x = np.asarray(rows, dtype=float)
    y = np.asarray(ys, dtype=float)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return [float(c) for c in coef]
