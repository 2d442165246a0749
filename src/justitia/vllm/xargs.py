"""The application tags a request carries, in one table: ``vllm_xargs`` fields and HTTP headers (DESIGN §1).

Every call of an application carries the same tags (the paper's agent id, §4.3, plus our weight,
cost hint and predictor features). They come from the request body's ``vllm_xargs`` or, for the
three run-wide tags, from HTTP headers, so a client tags a whole run with
``openai.OpenAI(default_headers={"X-Justitia-App-Id": "run-7"})``. When both give a tag the body's
``vllm_xargs`` wins (a per-call value overrides the client's default).

:data:`FIELDS` is the one table of names, types and limits. Its users:

* the HTTP edge (:mod:`justitia.vllm.middleware`, and a cluster ingress) calls :func:`parse_tags`
  strictly: any bad value is a :class:`BadInput` (HTTP 400 naming the field or header);
* the engine plugin calls :func:`parse_engine_xargs` leniently: a bad value is dropped and named,
  so the engine never dies on input that bypassed the HTTP edge.

This module imports neither vLLM nor starlette.
"""

from __future__ import annotations

import difflib
import json
import math
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

MAX_ID_LEN = 128
MAX_COUNT = 10**9
WEIGHT_RANGE = (1e-6, 1e6)
MAX_COST_HINT = 1e18
MAX_FINISH_TAG = 1e30

Kind = Literal["name", "number", "count", "bool"]


@dataclass(frozen=True, slots=True)
class Field:
    """One tag: its ``vllm_xargs`` name, type and limits, and its HTTP header if it has one."""

    name: str
    kind: Kind
    lo: float = 0.0
    hi: float = math.inf
    lo_open: bool = False  # True: lo < v (weight > 0), else lo <= v
    header: str | None = None
    doc: str = ""


FIELDS: tuple[Field, ...] = (
    Field("app_id", "name", header="X-Justitia-App-Id", doc="the application every call of it shares"),
    Field("app_type", "name", header="X-Justitia-App-Type", doc="the predictor's strongest feature"),
    Field("weight", "number", *WEIGHT_RANGE, lo_open=True, header="X-Justitia-Weight",
          doc="share in the fair-sharing reference (F = S + C / w)"),
    Field("app_cost_hint", "number", 0.0, MAX_COST_HINT, doc="total cost in token·iterations"),
    Field("app_done", "bool", doc="this is the application's last call"),
    Field("app_finish_tag", "number", 0.0, MAX_FINISH_TAG,
          doc="the cluster tier's global finish tag, passed to AppInfo.features['finish_tag']"),
    Field("first_stage_calls", "count", 0, MAX_COUNT, doc="predictor feature"),
    Field("hint_stages", "count", 0, MAX_COUNT, doc="predictor feature"),
    Field("hint_calls", "count", 0, MAX_COUNT, doc="predictor feature"),
)
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
COUNT_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.kind == "count")
"""Optional non-negative integer features for the demand predictor (``justitia.predict.features``)."""
HEADERS: dict[str, Field] = {f.header.lower(): f for f in FIELDS if f.header}
"""Lower-cased header name -> field."""


class BadInput(Exception):
    """A refused request: the offending field (``vllm_xargs.weight`` or a header name) and a message."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"BadInput({self.field!r}, {self.message!r}, {self.status})"

    def body(self) -> bytes:
        """OpenAI-style error JSON (the shape of vLLM's ``ErrorResponse``)."""
        err = {"message": self.message, "type": "BadRequestError", "param": self.field, "code": self.status}
        return json.dumps({"error": err}).encode()


@dataclass(slots=True)
class AppTags:
    """The parsed tags of one request (absent tags are ``None``; counts only when given)."""

    app_id: str | None = None
    app_type: str | None = None
    weight: float | None = None
    cost_hint: float | None = None
    app_done: bool = False
    finish_tag: float | None = None
    counts: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------- one value
def _short(v: Any, limit: int = 40) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _number(v: Any) -> float | None:
    """``v`` as a float if it is a number (not a bool); ``None`` otherwise. Huge ints -> inf."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        return float(v)
    except OverflowError:
        return math.inf


def check_value(f: Field, v: Any, where: str, engine: bool = False) -> Any:
    """``v`` parsed by field ``f``'s rule; raises :class:`BadInput` naming ``where``.

    ``engine=True`` also accepts ``app_done`` as 0/1/"true"/"false": vLLM types ``vllm_xargs`` values
    as ``str | int | float``, so a JSON ``true`` reaches the engine as ``1``.
    """
    if f.kind == "name":
        if not isinstance(v, str):
            raise BadInput(where, f"{where} must be a string, got {type(v).__name__} {_short(v)}")
        if not v.strip():
            raise BadInput(where, f"{where} must not be empty or blank")
        if len(v) > MAX_ID_LEN:
            raise BadInput(where, f"{where} is {len(v)} characters long; at most {MAX_ID_LEN} are allowed")
        bad = next((c for c in v if unicodedata.category(c) in ("Cc", "Cs")), None)
        if bad is not None:
            raise BadInput(where, f"{where} must not contain control characters (found U+{ord(bad):04X})")
        return v
    if f.kind == "number":
        x = _number(v)
        if x is None:
            raise BadInput(where, f"{where} must be a number, got {type(v).__name__} {_short(v)}")
        if not math.isfinite(x):
            raise BadInput(where, f"{where} must be a finite number, got {_short(v)}")
        if x <= 0 if f.lo_open else x < f.lo:
            raise BadInput(where, f"{where} must be {'> 0' if f.lo_open else f'>= {f.lo:g}'}, got {_short(v)}")
        if x < f.lo or x > f.hi:
            raise BadInput(where, f"{where} must be between {f.lo:g} and {f.hi:g}, got {_short(v)}")
        return x
    if f.kind == "count":
        if isinstance(v, bool) or not isinstance(v, int):
            raise BadInput(where, f"{where} must be an integer, got {type(v).__name__} {_short(v)}")
        if not f.lo <= v <= f.hi:
            raise BadInput(where, f"{where} must be between {f.lo:g} and {f.hi:g}, got {_short(v)}")
        return v
    if isinstance(v, bool):
        return v
    if engine and isinstance(v, int) and v in (0, 1):
        return bool(v)
    if engine and isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise BadInput(where, f"{where} must be true or false, got {type(v).__name__} {_short(v)}")


def _norm(k: str) -> str:
    return "".join(c for c in k.lower() if c.isalnum())


def did_you_mean(key: str) -> str | None:
    """The field of ours that an unknown ``vllm_xargs`` key most likely misspells, if any."""
    low = key.lower()
    for f in NAMES:
        if _norm(key) == _norm(f) or "app_" + low == f or low == f:
            return f
    close = difflib.get_close_matches(low, NAMES, n=1, cutoff=0.75)
    return close[0] if close else None


# ---------------------------------------------------------------------- whole requests
def check_xargs(xargs: Any) -> dict[str, Any]:
    """Validate a ``vllm_xargs`` object strictly (HTTP edge); return our fields, parsed.

    Raises :class:`BadInput` for a bad value or for an unknown key close to one of ours (a typo).
    """
    if xargs is None:
        return {}
    if not isinstance(xargs, dict):
        raise BadInput("vllm_xargs", f"vllm_xargs must be a JSON object, got {type(xargs).__name__} {_short(xargs)}")
    out = {f.name: check_value(f, xargs[f.name], f"vllm_xargs.{f.name}") for f in FIELDS if f.name in xargs}
    for key in xargs:
        if key in BY_NAME or not isinstance(key, str):
            continue
        guess = did_you_mean(key)
        if guess is not None:
            raise BadInput(f"vllm_xargs.{key}", f"unknown field vllm_xargs.{key}: did you mean vllm_xargs.{guess}?")
    return out


def header_tags(headers: Mapping[str, str] | Iterable[tuple[Any, Any]] | None) -> dict[str, Any]:
    """Our tags from HTTP headers (names case-insensitive; ``bytes`` pairs as ASGI gives them), parsed
    by the same rules as ``vllm_xargs``; raises :class:`BadInput` naming the header."""
    if not headers:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, Any] = {}
    for k, v in pairs:
        name = (k.decode("latin-1") if isinstance(k, bytes) else str(k)).lower()
        f = HEADERS.get(name)
        if f is None:
            continue
        raw = v.decode("latin-1") if isinstance(v, bytes) else str(v)
        where = f"header {f.header}"
        if f.kind == "number":
            try:
                value: Any = float(raw.strip())
            except ValueError:
                raise BadInput(f.header or f.name, f"{where} must be a number, got {_short(raw)}") from None
        else:
            value = raw.strip()
        try:
            out[f.name] = check_value(f, value, where)
        except BadInput as e:
            raise BadInput(f.header or f.name, e.message) from None
    return out


def merge_xargs(xargs: Any, headers: Mapping[str, str] | Iterable[tuple[Any, Any]] | None) -> dict[str, Any]:
    """The request's ``vllm_xargs`` with the header tags it does not set added (the body wins);
    validates both strictly (:class:`BadInput`). This is what the engine must receive."""
    check_xargs(xargs)
    merged = dict(xargs) if isinstance(xargs, dict) else {}
    for name, value in header_tags(headers).items():
        merged.setdefault(name, value)
    return merged


def to_tags(fields: Mapping[str, Any]) -> AppTags:
    """:class:`AppTags` from parsed fields (the output of :func:`check_xargs` / :func:`merge_xargs`)."""
    return AppTags(
        app_id=fields.get("app_id"),
        app_type=fields.get("app_type"),
        weight=fields.get("weight"),
        cost_hint=fields.get("app_cost_hint"),
        app_done=bool(fields.get("app_done", False)),
        finish_tag=fields.get("app_finish_tag"),
        counts={n: fields[n] for n in COUNT_FIELDS if n in fields},
    )


def parse_tags(xargs: Any, headers: Mapping[str, str] | Iterable[tuple[Any, Any]] | None = None) -> AppTags:
    """The application tags of a request from its ``vllm_xargs`` and HTTP headers (body wins);
    raises :class:`BadInput` (HTTP 400) naming the field or header. For HTTP front ends."""
    return to_tags(check_xargs(merge_xargs(xargs, headers)))


def parse_engine_xargs(xargs: Any) -> tuple[AppTags, list[tuple[str, str]]]:
    """Lenient parse inside the engine: ``(tags, [(field, why), ...])``; bad fields are dropped."""
    if not isinstance(xargs, dict) or not xargs:
        return AppTags(), []
    good: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for f in FIELDS:
        if f.name in xargs:
            try:
                good[f.name] = check_value(f, xargs[f.name], f.name, engine=True)
            except BadInput as e:
                problems.append((f.name, e.message))
    return to_tags(good), problems
