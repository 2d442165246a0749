"""SDK tagging logic against a fake OpenAI-compatible server (the real path: test_e2e.py)."""

from __future__ import annotations

import asyncio
import math

import openai
import pytest

import justitia
from justitia.runner.sdk import App, AppError


def client(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)


def xargs(body: dict) -> dict:
    return body["vllm_xargs"]


def test_app_exported_lazily() -> None:
    assert justitia.App is App


def test_every_call_tagged_and_app_done_only_on_last(fake_openai) -> None:
    async def main() -> App:
        async with App(client(fake_openai.url), type="mapreduce", weight=2.0, cost_hint=1234.0) as app:
            await asyncio.gather(*(app.complete(prompt=f"chunk {i}", max_tokens=5) for i in range(4)))
            await app.chat([{"role": "user", "content": "combine"}], max_tokens=3, last=True)
        return app

    app = asyncio.run(main())
    assert len(fake_openai.bodies) == 5
    for b in fake_openai.bodies:
        x = xargs(b)
        assert x["app_id"] == app.app_id and x["app_type"] == "mapreduce"
        assert x["weight"] == 2.0 and x["app_cost_hint"] == 1234.0
        assert b["model"] == "fake-model"  # discovered from /v1/models
    done = [xargs(b)["app_done"] for b in fake_openai.bodies]
    assert done.count(True) == 1 and done[-1] is True and all(d is False for d in done[:-1])
    # records: per-call latency and usage, and the app's ACT
    assert len(app.calls) == 5 and all(c.ok and c.latency_s >= 0 for c in app.calls)
    assert app.completion_tokens == 4 * 5 + 3
    assert app.calls[-1].last and app.calls[-1].kind == "chat"
    assert app.act_s >= max(c.end_s for c in app.calls) - app.start_s
    assert not app.active


def test_no_cost_hint_means_no_hint_field(fake_openai) -> None:
    async def main() -> None:
        async with App(client(fake_openai.url), type="chat", model="m") as app:
            await app.complete("hi", max_tokens=2)

    asyncio.run(main())
    assert "app_cost_hint" not in xargs(fake_openai.bodies[0])
    assert fake_openai.bodies[0]["model"] == "m"


def test_user_extra_body_is_kept_but_cannot_override_tags(fake_openai) -> None:
    async def main() -> None:
        async with App(client(fake_openai.url), type="t", model="m") as app:
            await app.complete("hi", max_tokens=2, extra_body={"ignore_eos": True, "vllm_xargs": {"mine": 1}})
            with pytest.raises(ValueError, match="app_id"):
                await app.complete("hi", max_tokens=2, extra_body={"vllm_xargs": {"app_id": "other"}})

    asyncio.run(main())
    b = fake_openai.bodies[0]
    assert b["ignore_eos"] is True and xargs(b)["mine"] == 1 and xargs(b)["app_type"] == "t"
    assert len(fake_openai.bodies) == 1  # the rejected call never left


def test_ids_unique_and_carry_type() -> None:
    class C:
        completions = chat = object()

    ids = {App(C(), type="debate").app_id for _ in range(2000)}
    assert len(ids) == 2000 and all(i.endswith("-debate") for i in ids)


@pytest.mark.parametrize("kwargs, match", [
    ({"type": ""}, "type"),
    ({"weight": 0}, "weight"),
    ({"weight": -1.0}, "weight"),
    ({"weight": math.inf}, "weight"),
    ({"weight": True}, "weight"),
    ({"cost_hint": -5}, "cost_hint"),
    ({"cost_hint": math.nan}, "cost_hint"),
    ({"app_id": ""}, "app_id"),
])
def test_bad_arguments_named(kwargs, match) -> None:
    class C:
        completions = chat = object()

    with pytest.raises(ValueError, match=match):
        App(C(), **kwargs)


def test_bad_client() -> None:
    with pytest.raises(TypeError, match="client"):
        App(None)


def test_lifecycle_errors(fake_openai) -> None:
    async def main() -> None:
        app = App(client(fake_openai.url), type="x", model="m")
        with pytest.raises(AppError, match="async with"):
            await app.complete("hi")
        async with app:
            with pytest.raises(ValueError, match="max_tokens"):
                await app.complete("hi", max_tokens=0)
            with pytest.raises(ValueError, match="prompt"):
                await app.complete("")
            with pytest.raises(ValueError, match="messages"):
                await app.chat("not a list")
            with pytest.raises(ValueError, match=r"messages\[0\]"):
                await app.chat([{"content": "no role"}])
            await app.complete("a", max_tokens=1, last=True)
            with pytest.raises(AppError, match="last=True"):
                await app.complete("b", max_tokens=1)
        with pytest.raises(AppError, match="exited"):
            await app.complete("c", max_tokens=1)
        with pytest.raises(AppError, match="already started"):
            async with app:
                pass

    asyncio.run(main())
    assert len(fake_openai.bodies) == 1


def test_server_error_recorded_and_raised(fake_openai) -> None:
    fake_openai.fail_next = 1

    async def main() -> App:
        app = App(client(fake_openai.url), type="x", model="m")
        with pytest.raises(openai.InternalServerError):
            async with app:
                await app.complete("hi", max_tokens=1)
        return app

    app = asyncio.run(main())
    assert app.calls[0].error is not None and not app.calls[0].ok
    assert app.error is not None and "InternalServerError" in app.error
    assert math.isfinite(app.act_s)
