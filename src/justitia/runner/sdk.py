"""Client SDK: one application = many OpenAI calls that share ``vllm_xargs.app_id`` (DESIGN §1, issue 5 §1).

An application author wraps an ``openai.AsyncOpenAI`` client::

    async with justitia.App(client, type="mapreduce") as app:
        parts = await asyncio.gather(*(app.complete(prompt=p, max_tokens=64) for p in chunks))
        final = await app.complete(prompt=combine(parts), max_tokens=128, last=True)

Every call carries ``extra_body={"vllm_xargs": {"app_id", "app_type", "weight", "app_done"}}`` (plus
``app_cost_hint`` when a cost hint is given), which the Justitia scheduler plugin reads to group the
calls of one application; ``app_done`` is true only on the call made with ``last=True`` (the plugin
otherwise closes an application after an idle window). The App records per-call latency and token
usage, and the application's start (``async with`` entry, its arrival) and end (exit): its application
completion time, ACT = end − start.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class AppError(RuntimeError):
    """A call was made on an application in the wrong state (not entered, closed, after ``last``)."""


@dataclass(slots=True)
class CallRecord:
    """One call of an application. Times from the App's clock (``time.monotonic`` by default)."""

    index: int
    kind: str  # "complete" | "chat"
    start_s: float
    end_s: float = math.nan
    prompt_tokens: int = 0
    completion_tokens: int = 0
    max_tokens: int | None = None
    stage: int = 0
    last: bool = False
    error: str | None = None

    @property
    def latency_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def ok(self) -> bool:
        return self.error is None and math.isfinite(self.end_s)


def _new_app_id(app_type: str) -> str:
    return f"{uuid.uuid4().hex[:12]}-{app_type}"


class App:
    """An application: an async context manager that tags and times every call it makes.

    Parameters: ``client`` an ``openai.AsyncOpenAI`` (anything with ``.completions.create`` and
    ``.chat.completions.create`` coroutines); ``type`` the application type (free text, e.g.
    ``"mapreduce"``); ``weight`` its share in the fair-sharing reference (> 0); ``cost_hint`` an optional
    declared total cost in token·iterations (cost eq. 2) sent as ``app_cost_hint``; ``model`` the served
    model name (default: the first model the endpoint lists); ``app_id`` to force an id (default: a
    uuid4 hex prefix plus the type, unique per App).
    """

    def __init__(
        self,
        client: Any,
        type: str = "generic",  # noqa: A002 - the public keyword is "type"
        weight: float = 1.0,
        cost_hint: float | None = None,
        *,
        model: str | None = None,
        app_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if client is None or not hasattr(client, "completions") or not hasattr(client, "chat"):
            raise TypeError(f"client must be an openai.AsyncOpenAI (or compatible) client, got {client!r}")
        if not isinstance(type, str) or not type.strip():
            raise ValueError(f"type must be a non-empty string, got {type!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"weight must be a positive finite number, got {weight!r}")
        if cost_hint is not None and (
            isinstance(cost_hint, bool) or not isinstance(cost_hint, (int, float))
            or not (math.isfinite(cost_hint) and cost_hint >= 0)
        ):
            raise ValueError(f"cost_hint must be a finite number >= 0 (token·iterations), got {cost_hint!r}")
        if app_id is not None and (not isinstance(app_id, str) or not app_id):
            raise ValueError(f"app_id must be a non-empty string, got {app_id!r}")
        if model is not None and (not isinstance(model, str) or not model):
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        self.client = client
        self.type = type
        self.weight = float(weight)
        self.cost_hint = None if cost_hint is None else float(cost_hint)
        self.model = model
        self.app_id = app_id or _new_app_id(type)
        self.clock = clock
        self.calls: list[CallRecord] = []
        self.start_s: float | None = None
        self.end_s: float | None = None
        self.error: str | None = None
        self._done_sent = False
        self._stage = 0

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> App:
        if self.start_s is not None:
            raise AppError(f"application {self.app_id} was already started; use a new App per application")
        self.start_s = self.clock()
        if self.model is None:
            self.model = await _first_model(self.client)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.end_s = self.clock()
        if exc is not None:
            self.error = f"{exc_type.__name__}: {exc}"

    @property
    def active(self) -> bool:
        return self.start_s is not None and self.end_s is None

    @property
    def act_s(self) -> float:
        """Application completion time: exit minus entry (NaN while running)."""
        if self.start_s is None or self.end_s is None:
            return math.nan
        return self.end_s - self.start_s

    def next_stage(self) -> int:
        """Mark the start of a new stage (for records only; the server sees calls, not stages)."""
        self._stage += 1
        return self._stage

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.calls)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.calls)

    # ------------------------------------------------------------------ tagging
    def xargs(self, last: bool = False) -> dict[str, Any]:
        """The ``vllm_xargs`` this application attaches to a call."""
        x: dict[str, Any] = {"app_id": self.app_id, "app_type": self.type, "weight": self.weight, "app_done": bool(last)}
        if self.cost_hint is not None:
            x["app_cost_hint"] = self.cost_hint
        return x

    def _extra_body(self, extra_body: Mapping[str, Any] | None, last: bool) -> dict[str, Any]:
        body = dict(extra_body or {})
        user_x = body.get("vllm_xargs") or {}
        if not isinstance(user_x, Mapping):
            raise ValueError(f"extra_body['vllm_xargs'] must be a mapping, got {user_x!r}")
        clash = sorted(set(user_x) & {"app_id", "app_type", "weight", "app_done", "app_cost_hint"})
        if clash:
            raise ValueError(f"extra_body['vllm_xargs'] may not set {', '.join(clash)}: the App sets them")
        body["vllm_xargs"] = {**user_x, **self.xargs(last)}
        return body

    def _check_open(self, last: bool) -> None:
        if self.start_s is None:
            raise AppError(f"application {self.app_id}: use 'async with App(...) as app' before making calls")
        if self.end_s is not None:
            raise AppError(f"application {self.app_id} has already exited; its calls are over")
        if self._done_sent:
            raise AppError(f"application {self.app_id}: a call was already sent with last=True (app_done)")
        if last:
            self._done_sent = True  # reserve it now: concurrent calls must not send a second one

    @staticmethod
    def _check_max_tokens(max_tokens: Any) -> None:
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")

    # ------------------------------------------------------------------ calls
    async def complete(
        self, prompt: str | Sequence[int], max_tokens: int | None = 16, *, last: bool = False,
        extra_body: Mapping[str, Any] | None = None, **kwargs: Any,
    ) -> Any:
        """``client.completions.create`` tagged with this application; returns the OpenAI response."""
        if isinstance(prompt, str):
            if not prompt:
                raise ValueError("prompt must be a non-empty string")
        elif not (isinstance(prompt, Sequence) and prompt and all(isinstance(t, int) for t in prompt)):
            raise ValueError(f"prompt must be a non-empty string or list of token ids, got {type(prompt).__name__}")
        self._check_max_tokens(max_tokens)
        self._check_open(last)
        body = self._extra_body(extra_body, last)
        return await self._run(
            "complete", max_tokens, last,
            lambda: self.client.completions.create(
                model=self.model, prompt=prompt, max_tokens=max_tokens, extra_body=body, **kwargs),
        )

    async def chat(
        self, messages: Sequence[Mapping[str, Any]], max_tokens: int | None = 16, *, last: bool = False,
        extra_body: Mapping[str, Any] | None = None, **kwargs: Any,
    ) -> Any:
        """``client.chat.completions.create`` tagged with this application; returns the OpenAI response."""
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
            raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} objects")
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                raise ValueError(f"messages[{i}] must be a mapping with 'role' and 'content', got {m!r}")
        self._check_max_tokens(max_tokens)
        self._check_open(last)
        body = self._extra_body(extra_body, last)
        return await self._run(
            "chat", max_tokens, last,
            lambda: self.client.chat.completions.create(
                model=self.model, messages=list(messages), max_tokens=max_tokens, extra_body=body, **kwargs),
        )

    async def _run(self, kind: str, max_tokens: int | None, last: bool, send: Callable[[], Any]) -> Any:
        rec = CallRecord(index=len(self.calls), kind=kind, start_s=self.clock(), max_tokens=max_tokens,
                         stage=self._stage, last=last)
        self.calls.append(rec)
        try:
            resp = await send()
        except BaseException as e:
            rec.end_s = self.clock()
            rec.error = f"{type(e).__name__}: {e}"
            raise
        rec.end_s = self.clock()
        usage = getattr(resp, "usage", None)
        if usage is not None:
            rec.prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            rec.completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        return resp


async def _first_model(client: Any) -> str:
    """The first model the endpoint serves (``GET /v1/models``)."""
    page = await client.models.list()
    data = getattr(page, "data", page)
    ids = [m.id for m in data]
    if not ids:
        raise AppError("the endpoint lists no models; pass model=... to App")
    return ids[0]


def text_of(resp: Any) -> str:
    """The generated text of a completion or chat response (first choice)."""
    choice = resp.choices[0]
    msg = getattr(choice, "message", None)
    if msg is not None:
        return msg.content or ""
    return choice.text or ""
