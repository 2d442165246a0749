"""What the cluster ingress reads from a request: the application tag, from ``vllm_xargs`` or headers.

An agent framework can tag a whole run without code changes by setting default headers on its OpenAI
client: ``X-Justitia-App-Id`` (same rules as ``vllm_xargs.app_id``) and ``X-Justitia-Weight`` (same
rules as ``vllm_xargs.weight``). A field given in ``vllm_xargs`` wins over its header. The merged
``vllm_xargs`` are validated by the single server's rules (:func:`justitia.vllm.middleware.check_payload`,
the same 400s); a bad header is refused naming the header.

This is a thin adapter around the single server's validation: when that gains its own header rules,
:func:`tag_request` switches to them and keeps its signature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from justitia.vllm.middleware import BadInput, check_payload

APP_ID_HEADER = "x-justitia-app-id"
WEIGHT_HEADER = "x-justitia-weight"


@dataclass(frozen=True, slots=True)
class Tag:
    """The application a request belongs to (``app_id`` ``None``: untagged, its own application)."""

    app_id: str | None
    weight: float
    app_type: str
    cost_hint: float | None
    done: bool
    features: dict[str, Any]


def tag_request(payload: Any, headers: Mapping[str, str]) -> tuple[dict[str, Any], Tag] | BadInput:
    """``(payload with merged vllm_xargs, its Tag)`` or the :class:`BadInput` to answer with (HTTP 400)."""
    if not isinstance(payload, dict):
        return BadInput("body", "the request body must be a JSON object")
    low = {k.lower(): v for k, v in headers.items()}
    xargs = payload.get("vllm_xargs")
    merged: dict[str, Any] = dict(xargs) if isinstance(xargs, dict) else {}
    if APP_ID_HEADER in low and "app_id" not in merged:
        merged["app_id"] = low[APP_ID_HEADER]
    if WEIGHT_HEADER in low and "weight" not in merged:
        raw = low[WEIGHT_HEADER]
        try:
            w = float(raw)
        except ValueError:
            return BadInput("X-Justitia-Weight", f"X-Justitia-Weight must be a number, got {raw!r}")
        if not math.isfinite(w):
            return BadInput("X-Justitia-Weight", f"X-Justitia-Weight must be a finite number, got {raw!r}")
        merged["weight"] = w
    out = dict(payload)
    if merged or xargs is not None:
        out["vllm_xargs"] = merged if isinstance(xargs, dict) or xargs is None else xargs
    bad = check_payload(out)
    if bad is not None:
        if bad.field == "vllm_xargs.app_id" and "app_id" not in (xargs or {}) and APP_ID_HEADER in low:
            return BadInput("X-Justitia-App-Id", bad.message.replace("vllm_xargs.app_id", "X-Justitia-App-Id"))
        if bad.field == "vllm_xargs.weight" and "weight" not in (xargs or {}) and WEIGHT_HEADER in low:
            return BadInput("X-Justitia-Weight", bad.message.replace("vllm_xargs.weight", "X-Justitia-Weight"))
        return bad
    xa = out.get("vllm_xargs") or {}
    feats = {k: xa[k] for k in ("first_stage_calls", "hint_stages", "hint_calls") if k in xa}
    return out, Tag(app_id=xa.get("app_id"), weight=float(xa.get("weight", 1.0)),
                    app_type=str(xa.get("app_type", "unknown")),
                    cost_hint=float(xa["app_cost_hint"]) if "app_cost_hint" in xa else None,
                    done=bool(xa.get("app_done", False)), features=feats)
