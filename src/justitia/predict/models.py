"""The predictor model file and its numpy forward pass (paper §4.2).

A model file holds the trained MLP *and* the two baselines fitted on the same training split, so
``mlp``, ``typemean`` and ``linear`` estimators all serve from one file. Serving needs numpy only:
no torch import in the vLLM engine process, and a forward pass of a few microseconds.

Format (``FORMAT_VERSION`` 1)::

    JUSTITIA-PREDICTOR\\n
    <one line of JSON: the header>\\n
    <payload: float64 little-endian arrays, back to back>

The header records ``format_version``, ``feature_version`` and ``feature_names`` (checked against
:mod:`justitia.predict.features` on load), the standardisation of inputs and target, the per-type mean
table, the linear coefficients, the layout of the payload arrays and ``payload_sha256`` (checked on
load), plus how the model was trained (``meta``). A missing file raises :class:`FileNotFoundError`, any
other problem :class:`PredictorFileError`; both name the file and say how to rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from justitia.predict.features import FEATURE_NAMES, FEATURE_VERSION, N_FEATURES

MAGIC = b"JUSTITIA-PREDICTOR\n"
FORMAT_VERSION = 1
REBUILD_HINT = "run `justitia predictor train` to build a new one"


class PredictorFileError(ValueError):
    """A predictor model file exists but cannot be used (corrupt, wrong version, wrong features)."""


def relu_mlp(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """Forward pass of a ReLU MLP given as ``(W [in, out], b [out])`` layers (no ReLU after the last)."""
    h = x
    last = len(layers) - 1
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < last:
            np.maximum(h, 0.0, out=h)
    return h


@dataclass
class TypeMeanTable:
    """Per-type mean of ``log(cost)``; ``unknown`` and unseen types get the overall mean."""

    means: dict[str, float]
    overall: float

    def to_json(self) -> dict[str, Any]:
        return {"means": self.means, "overall": self.overall}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TypeMeanTable:
        return cls({str(k): float(v) for k, v in obj["means"].items()}, float(obj["overall"]))


@dataclass
class PredictorModel:
    """MLP weights with input/target standardisation, plus the fitted baselines."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float
    layers: list[tuple[np.ndarray, np.ndarray]]  # (W [in, out], b [out]); ReLU between layers
    typemean: TypeMeanTable
    linear: np.ndarray  # coefficients on [features..., 1] predicting log(cost)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Fold standardisation into the first and last layers once: forward is then 3 matmuls.
        w0, b0 = self.layers[0]
        w0s = w0 / self.x_std[:, None]
        b0s = b0 - (self.x_mean / self.x_std) @ w0
        wl, bl = self.layers[-1]
        folded = [(w0s, b0s), *self.layers[1:]]
        wl_, bl_ = folded[-1]
        folded[-1] = (wl_ * self.y_std, bl_ * self.y_std + self.y_mean)
        self._folded = [(np.ascontiguousarray(w), np.ascontiguousarray(b)) for w, b in folded]

    # ------------------------------------------------------------------ prediction
    def predict_log(self, x: np.ndarray) -> np.ndarray:
        """``log(cost)`` predicted by the MLP for feature rows ``x`` ([n, features] or [features])."""
        return relu_mlp(self._folded, x)[..., 0]

    def predict_log_linear(self, x: np.ndarray) -> np.ndarray:
        return x @ self.linear[:-1] + self.linear[-1]

    # ------------------------------------------------------------------ file format
    def _arrays(self) -> list[tuple[str, np.ndarray]]:
        arrs = [("x_mean", self.x_mean), ("x_std", self.x_std), ("linear", self.linear)]
        for i, (w, b) in enumerate(self.layers):
            arrs += [(f"w{i}", w), (f"b{i}", b)]
        return arrs

    def save(self, path: str | Path) -> Path:
        """Write the model atomically (temp file + rename) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        layout = []
        chunks = []
        offset = 0
        for name, a in self._arrays():
            b = np.ascontiguousarray(a, dtype="<f8").tobytes()
            layout.append({"name": name, "shape": list(a.shape), "offset": offset, "nbytes": len(b)})
            chunks.append(b)
            offset += len(b)
        payload = b"".join(chunks)
        header = {
            "format_version": FORMAT_VERSION,
            "feature_version": FEATURE_VERSION,
            "feature_names": list(FEATURE_NAMES),
            "y_mean": self.y_mean,
            "y_std": self.y_std,
            "n_layers": len(self.layers),
            "typemean": self.typemean.to_json(),
            "arrays": layout,
            "payload_bytes": len(payload),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "meta": self.meta,
        }
        data = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload
        fd, tmp = tempfile.mkstemp(prefix=".predictor-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> PredictorModel:
        """Read and verify a model file (magic, versions, feature names, checksum, shapes)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"predictor model not found: {path} ({REBUILD_HINT})")
        data = path.read_bytes()

        def bad(msg: str) -> PredictorFileError:
            return PredictorFileError(f"predictor model {path} is unusable: {msg}; {REBUILD_HINT}")

        if not data.startswith(MAGIC):
            raise bad("not a justitia predictor file (bad magic)")
        end = data.find(b"\n", len(MAGIC))
        if end < 0:
            raise bad("truncated header")
        try:
            header = json.loads(data[len(MAGIC):end].decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise bad(f"corrupt header ({e})") from None
        if not isinstance(header, dict):
            raise bad("corrupt header (not an object)")
        if header.get("format_version") != FORMAT_VERSION:
            raise bad(f"format version {header.get('format_version')!r}, this justitia reads version {FORMAT_VERSION}")
        if header.get("feature_version") != FEATURE_VERSION or header.get("feature_names") != list(FEATURE_NAMES):
            raise bad(f"trained on feature set version {header.get('feature_version')!r}, "
                      f"this justitia computes version {FEATURE_VERSION}")
        payload = data[end + 1:]
        if len(payload) != header.get("payload_bytes"):
            raise bad(f"payload is {len(payload)} bytes, header says {header.get('payload_bytes')!r} (truncated?)")
        if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
            raise bad("weights checksum (sha256) mismatch: the file is corrupt")
        try:
            arrays: dict[str, np.ndarray] = {}
            for a in header["arrays"]:
                raw = payload[a["offset"]:a["offset"] + a["nbytes"]]
                arrays[a["name"]] = np.frombuffer(raw, dtype="<f8").reshape(a["shape"]).astype(np.float64)
            layers = [(arrays[f"w{i}"], arrays[f"b{i}"]) for i in range(int(header["n_layers"]))]
            model = cls(
                x_mean=arrays["x_mean"], x_std=arrays["x_std"],
                y_mean=float(header["y_mean"]), y_std=float(header["y_std"]),
                layers=layers, typemean=TypeMeanTable.from_json(header["typemean"]),
                linear=arrays["linear"], meta=dict(header.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise bad(f"inconsistent contents ({type(e).__name__}: {e})") from None
        if model.x_mean.shape != (N_FEATURES,) or layers[0][0].shape[0] != N_FEATURES or layers[-1][0].shape[1] != 1:
            raise bad("layer shapes do not match the feature set")
        if not all(np.all(np.isfinite(a)) for a in arrays.values()) or not math.isfinite(model.y_std):
            raise bad("non-finite weights")
        return model
