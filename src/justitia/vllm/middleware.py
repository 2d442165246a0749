"""Refuse bad application tags at the HTTP edge and carry header tags into the body (DESIGN §1, §3).

Use with vLLM's OpenAI server::

    python -m vllm.entrypoints.openai.api_server ... --middleware justitia.vllm.middleware.ValidateXargs

vLLM 0.32.0 (``vllm/entrypoints/serve/middleware/register.py``) imports each ``--middleware`` path
and, for a class, calls ``app.add_middleware(cls)``; :class:`ValidateXargs` is therefore a plain ASGI
middleware taking only ``app``. It buffers the JSON body of ``POST /v1/completions`` and
``POST /v1/chat/completions`` and either answers HTTP 400 with an OpenAI-style error naming the field
(or header), or replays the body to vLLM (later ``receive()`` calls, e.g. the ``http.disconnect``
vLLM watches to abort a request, pass straight through).

The rules are the one table of :mod:`justitia.vllm.xargs` (names, types, limits), shared with the
engine plugin and the cluster ingress. Headers: ``X-Justitia-App-Id``, ``X-Justitia-App-Type`` and
``X-Justitia-Weight`` tag every call of a client that sets them as default headers. vLLM drops
other headers before the engine, so the middleware writes the header tags into the body's
``vllm_xargs`` (only those the body does not set: **the body's ``vllm_xargs`` wins**), and the body
reaches vLLM re-encoded. Our fields at the top level of the body (an ``extra_body`` mistake) are
refused, and so are unknown ``vllm_xargs`` keys close to ours (``wieght`` -> "did you mean").

Python's ``json`` accepts the non-standard literals ``NaN``/``Infinity`` and turns ``1e999`` into
``inf``; all are refused by the finiteness check. Bodies that are not JSON objects are left to
vLLM's own validation, and so are bodies over :data:`MAX_BODY_BYTES` (passed unchecked, without
header tags). A request without ``app_id`` passes (it is its own application).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from justitia.vllm.xargs import (
    COUNT_FIELDS,
    MAX_COUNT,
    NAMES,
    BadInput,
    did_you_mean,
    merge_xargs,
)

__all__ = ["BadInput", "COUNT_FIELDS", "MAX_COUNT", "ValidateXargs", "check_body", "check_payload",
           "did_you_mean", "prepare_body"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = Iterable[tuple[Any, Any]]

GUARDED_PATHS: tuple[str, ...] = ("/v1/completions", "/v1/chat/completions")
MAX_BODY_BYTES = 64 * 1024 * 1024  # larger bodies are passed through unchecked (vLLM decides)


def payload_xargs(payload: dict[str, Any], headers: Headers | None) -> dict[str, Any]:
    """The ``vllm_xargs`` the engine must see (header tags added); raises :class:`BadInput`."""
    for name in NAMES:
        if name in payload:
            raise BadInput(name, f"{name} must be inside vllm_xargs (e.g. extra_body={{'vllm_xargs': {{'{name}': ...}}}}), "
                                 "not at the top level of the request")
    return merge_xargs(payload.get("vllm_xargs"), headers)  # the body wins


def check_payload(payload: Any, headers: Headers | None = None) -> BadInput | None:
    """Validate a decoded request body (and our headers). ``None`` means accepted (or not ours to judge)."""
    if not isinstance(payload, dict):
        return None  # not a JSON object: vLLM's own validation answers
    try:
        payload_xargs(payload, headers)
    except BadInput as e:
        return e
    return None


def prepare_body(raw: bytes, headers: Headers | None = None) -> tuple[bytes, BadInput | None]:
    """``(body for vLLM, refusal or None)``: the body unchanged unless header tags were added to its
    ``vllm_xargs``. Undecodable bodies and non-objects are passed on unchanged (vLLM answers)."""
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        return raw, None
    if not isinstance(payload, dict):
        return raw, None
    try:
        merged = payload_xargs(payload, headers)
    except BadInput as e:
        return raw, e
    if merged and merged != payload.get("vllm_xargs"):
        payload["vllm_xargs"] = merged
        return json.dumps(payload).encode(), None
    return raw, None


def check_body(raw: bytes, headers: Headers | None = None) -> BadInput | None:
    """Validate a raw JSON body; undecodable bodies are left to vLLM (``None``)."""
    return prepare_body(raw, headers)[1]


class ValidateXargs:
    """ASGI middleware: 400 for bad Justitia tags on the completion endpoints; header tags into the body
    (module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or not _guarded(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return  # the client left before sending its body: nothing to do
            if msg["type"] != "http.request":
                continue
            chunk = msg.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if not msg.get("more_body", False):
                break
        original = raw = b"".join(chunks)
        bad = None
        if size <= MAX_BODY_BYTES:
            raw, bad = prepare_body(raw, scope.get("headers"))
        if bad is not None:
            self.refused += 1
            body = bad.body()
            await send({"type": "http.response.start", "status": bad.status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        if raw is not original:  # header tags were written into the body
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
            scope["headers"].append((b"content-length", str(len(raw)).encode()))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _guarded(path: str) -> bool:
    return path.rstrip("/").endswith(GUARDED_PATHS)
