"""What the cluster ingress reads from a request: the application tag, from ``vllm_xargs`` or headers.

An agent framework can tag a whole run without code changes by setting default headers on its OpenAI
client (``X-Justitia-App-Id``, ``X-Justitia-Weight``, ``X-Justitia-App-Type``). The rules are the single
server's, from one table (:mod:`justitia.vllm.xargs`): a field given in ``vllm_xargs`` wins over its
header, and a bad value is refused (HTTP 400) naming the field or header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from justitia.vllm.middleware import BadInput, payload_xargs
from justitia.vllm.xargs import check_xargs, to_tags


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
    try:
        merged = payload_xargs(payload, headers)
        tags = to_tags(check_xargs(merged))
    except BadInput as e:
        return e
    out = dict(payload)
    if merged or "vllm_xargs" in payload:
        out["vllm_xargs"] = merged
    return out, Tag(app_id=tags.app_id, weight=tags.weight if tags.weight is not None else 1.0,
                    app_type=tags.app_type or "unknown", cost_hint=tags.cost_hint, done=tags.app_done,
                    features=dict(tags.counts))
