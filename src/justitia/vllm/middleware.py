"""Refuse bad application arguments at the HTTP edge, before they reach the engine (issue 6 §2).

Use with vLLM's OpenAI server::

    python -m vllm.entrypoints.openai.api_server ... --middleware justitia.vllm.middleware.ValidateXargs

vLLM 0.32.0 (``vllm/entrypoints/serve/middleware/register.py``) imports each ``--middleware`` path
and, for a class, calls ``app.add_middleware(cls)``; :class:`ValidateXargs` is therefore a plain ASGI
middleware taking only ``app``. It buffers the JSON body of ``POST /v1/completions`` and
``POST /v1/chat/completions``, runs :func:`check_payload` on it, and either answers HTTP 400 with an
OpenAI-style error naming the field, or replays the body to vLLM unchanged (later ``receive()``
calls, e.g. the ``http.disconnect`` vLLM watches to abort a request, pass straight through).

Rules (:func:`check_payload`; the plugin reads the same fields, issue 3 §2):

========================  =====================================================================
``vllm_xargs``            a JSON object if present
``vllm_xargs.app_id``     a string, 1–128 characters, not blank, no control characters
``vllm_xargs.app_type``   same rules as ``app_id``
``vllm_xargs.weight``     a number (not bool), finite, ``1e-6 ≤ w ≤ 1e6`` (so ``C / w`` stays finite)
``vllm_xargs.app_cost_hint``  a number (not bool), finite, ``0 ≤ c ≤ 1e18`` token·iterations
``vllm_xargs.app_done``   a JSON boolean
``vllm_xargs.first_stage_calls``, ``hint_stages``, ``hint_calls``  demand-predictor features
                          (``justitia.predict.features``): integers (not bool), ``0 ≤ n ≤ 1e9``
other ``vllm_xargs`` keys close to ours (typos: ``wieght``, ``appid``, ``done``) → "did you mean"
top-level ``app_id`` …    refused: they belong inside ``vllm_xargs`` (``extra_body`` mistake)
========================  =====================================================================

Python's ``json`` accepts the non-standard literals ``NaN``/``Infinity`` and turns ``1e999`` into
``inf``; all are refused by the finiteness check. Bodies that are not JSON objects are left to
vLLM's own validation. A request without ``app_id`` passes (it is its own application).
"""

from __future__ import annotations

import difflib
import json
import math
import unicodedata
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COUNT_FIELDS: tuple[str, ...] = ("first_stage_calls", "hint_stages", "hint_calls")
"""Optional non-negative integer features for the demand predictor (``justitia.predict.features``)."""
FIELDS: tuple[str, ...] = ("app_id", "app_type", "weight", "app_cost_hint", "app_done", *COUNT_FIELDS)
"""The ``vllm_xargs`` fields Justitia reads."""
MAX_COUNT = 10**9
MAX_ID_LEN = 128
WEIGHT_RANGE = (1e-6, 1e6)
MAX_COST_HINT = 1e18
GUARDED_PATHS: tuple[str, ...] = ("/v1/completions", "/v1/chat/completions")
MAX_BODY_BYTES = 64 * 1024 * 1024  # larger bodies are passed through unchecked (vLLM decides)


@dataclass(frozen=True, slots=True)
class BadInput:
    """A refused request: the offending field (dotted path) and a message for the client."""

    field: str
    message: str
    status: int = 400

    def body(self) -> bytes:
        """OpenAI-style error JSON (the shape of vLLM's ``ErrorResponse``)."""
        err = {"message": self.message, "type": "BadRequestError", "param": self.field, "code": self.status}
        return json.dumps({"error": err}).encode()


def _short(v: Any, limit: int = 40) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _check_name(name: str, v: Any) -> BadInput | None:
    f = f"vllm_xargs.{name}"
    if not isinstance(v, str):
        return BadInput(f, f"{f} must be a string, got {type(v).__name__} {_short(v)}")
    if not v.strip():
        return BadInput(f, f"{f} must not be empty or blank")
    if len(v) > MAX_ID_LEN:
        return BadInput(f, f"{f} is {len(v)} characters long; at most {MAX_ID_LEN} are allowed")
    bad = next((c for c in v if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        return BadInput(f, f"{f} must not contain control characters (found U+{ord(bad):04X})")
    return None


def _number(v: Any) -> float | None:
    """``v`` as a float if it is a JSON number (not a bool); ``None`` otherwise. Huge ints → inf."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        return float(v)
    except OverflowError:
        return math.inf


def _check_number(name: str, v: Any, lo: float, hi: float, lo_open: bool) -> BadInput | None:
    f = f"vllm_xargs.{name}"
    x = _number(v)
    if x is None:
        return BadInput(f, f"{f} must be a number, got {type(v).__name__} {_short(v)}")
    if not math.isfinite(x):
        return BadInput(f, f"{f} must be a finite number, got {_short(v)}")
    if (x <= 0 if lo_open else x < lo):
        what = "> 0" if lo_open else f">= {lo:g}"
        return BadInput(f, f"{f} must be {what}, got {_short(v)}")
    if x < lo or x > hi:
        return BadInput(f, f"{f} must be between {lo:g} and {hi:g}, got {_short(v)}")
    return None


def _check_count(name: str, v: Any) -> BadInput | None:
    f = f"vllm_xargs.{name}"
    if isinstance(v, bool) or not isinstance(v, int):
        return BadInput(f, f"{f} must be an integer, got {type(v).__name__} {_short(v)}")
    if not 0 <= v <= MAX_COUNT:
        return BadInput(f, f"{f} must be between 0 and {MAX_COUNT}, got {_short(v)}")
    return None


def _norm(k: str) -> str:
    return "".join(c for c in k.lower() if c.isalnum())


def did_you_mean(key: str) -> str | None:
    """The field of ours that an unknown ``vllm_xargs`` key most likely misspells, if any."""
    low = key.lower()
    for f in FIELDS:
        if _norm(key) == _norm(f) or "app_" + low == f or low == f:
            return f
    close = difflib.get_close_matches(low, FIELDS, n=1, cutoff=0.75)
    return close[0] if close else None


def check_xargs(xargs: Any) -> BadInput | None:
    """Validate the ``vllm_xargs`` object (module table). ``None`` means accepted."""
    if xargs is None:
        return None
    if not isinstance(xargs, dict):
        return BadInput("vllm_xargs", f"vllm_xargs must be a JSON object, got {type(xargs).__name__} {_short(xargs)}")
    for name in ("app_id", "app_type"):
        if name in xargs and (bad := _check_name(name, xargs[name])):
            return bad
    if "weight" in xargs and (bad := _check_number("weight", xargs["weight"], *WEIGHT_RANGE, lo_open=True)):
        return bad
    if "app_cost_hint" in xargs and (
        bad := _check_number("app_cost_hint", xargs["app_cost_hint"], 0.0, MAX_COST_HINT, lo_open=False)
    ):
        return bad
    if "app_done" in xargs and not isinstance(xargs["app_done"], bool):
        v = xargs["app_done"]
        return BadInput("vllm_xargs.app_done", f"vllm_xargs.app_done must be true or false, got {type(v).__name__} {_short(v)}")
    for name in COUNT_FIELDS:
        if name in xargs and (bad := _check_count(name, xargs[name])):
            return bad
    for key in xargs:
        if key in FIELDS or not isinstance(key, str):
            continue
        guess = did_you_mean(key)
        if guess is not None:
            return BadInput(f"vllm_xargs.{key}", f"unknown field vllm_xargs.{key}: did you mean vllm_xargs.{guess}?")
    return None


def check_payload(payload: Any) -> BadInput | None:
    """Validate a decoded request body. ``None`` means accepted (or not ours to judge)."""
    if not isinstance(payload, dict):
        return None  # not a JSON object: vLLM's own validation answers
    for name in FIELDS:
        if name in payload:
            return BadInput(name, f"{name} must be inside vllm_xargs (e.g. extra_body={{'vllm_xargs': {{'{name}': ...}}}}), "
                                  "not at the top level of the request")
    return check_xargs(payload.get("vllm_xargs"))


def check_body(raw: bytes) -> BadInput | None:
    """Validate a raw JSON body; undecodable bodies are left to vLLM (``None``)."""
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return check_payload(payload)


class ValidateXargs:
    """ASGI middleware: 400 for bad Justitia ``vllm_xargs`` on the completion endpoints (module doc)."""

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
        raw = b"".join(chunks)
        bad = check_body(raw) if size <= MAX_BODY_BYTES else None
        if bad is not None:
            self.refused += 1
            body = bad.body()
            await send({"type": "http.response.start", "status": bad.status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
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
