"""Tagging a whole run by HTTP headers: the middleware validates them like vllm_xargs and writes them
into the body's vllm_xargs (vLLM drops headers before the engine); the body wins when both are given."""

from __future__ import annotations

import json
from typing import Any

import pytest

from justitia.vllm.middleware import ValidateXargs, check_body, prepare_body
from justitia.vllm.xargs import BadInput, parse_tags


def test_headers_fill_what_the_body_does_not_set_body_wins() -> None:
    tags = parse_tags({"app_id": "from-body"}, {"X-Justitia-App-Id": "from-header", "x-justitia-weight": "2.5",
                                               "X-Justitia-App-Type": "agent", "Authorization": "x"})
    assert tags.app_id == "from-body" and tags.weight == 2.5 and tags.app_type == "agent"
    assert parse_tags(None, [(b"x-justitia-app-id", b"run-7")]).app_id == "run-7"  # ASGI byte pairs
    assert parse_tags({"app_finish_tag": 3.0}).finish_tag == 3.0


@pytest.mark.parametrize(("headers", "field"), [
    ({"X-Justitia-Weight": "heavy"}, "X-Justitia-Weight"),
    ({"X-Justitia-Weight": "0"}, "X-Justitia-Weight"),
    ({"X-Justitia-Weight": "nan"}, "X-Justitia-Weight"),
    ({"X-Justitia-Weight": "1e9"}, "X-Justitia-Weight"),
    ({"X-Justitia-App-Id": "   "}, "X-Justitia-App-Id"),
    ({"X-Justitia-App-Id": "x" * 129}, "X-Justitia-App-Id"),
    ({"X-Justitia-App-Type": ""}, "X-Justitia-App-Type"),
])
def test_bad_headers_are_refused_naming_the_header(headers: dict[str, str], field: str) -> None:
    bad = check_body(b'{"prompt": "hi"}', list(headers.items()))
    assert bad is not None and bad.status == 400 and bad.field == field and field in bad.message
    with pytest.raises(BadInput, match=field):
        parse_tags({}, headers)


def test_body_value_wins_even_over_a_bad_header_only_if_the_header_is_valid() -> None:
    # every header we read is validated, whether or not the body overrides it (a client bug shows)
    assert check_body(b'{"vllm_xargs": {"weight": 2}}', [(b"x-justitia-weight", b"-1")]) is not None
    assert check_body(b'{"vllm_xargs": {"app_finish_tag": -1}}') is not None


def test_prepare_body_injects_header_tags_and_leaves_other_bodies_alone() -> None:
    raw = json.dumps({"prompt": "hi", "vllm_xargs": {"app_done": True}}).encode()
    out, bad = prepare_body(raw, [(b"x-justitia-app-id", b"run-7"), (b"x-justitia-weight", b"3")])
    assert bad is None and json.loads(out) == {"prompt": "hi", "vllm_xargs": {"app_done": True, "app_id": "run-7",
                                                                              "weight": 3.0}}
    assert prepare_body(raw)[0] is raw  # no header: the body is passed on untouched
    assert prepare_body(b"[1]", [(b"x-justitia-app-id", b"a")])[0] == b"[1]"  # not ours to judge


def test_middleware_writes_header_tags_into_the_body_vllm_sees() -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    seen: list[Any] = []

    async def endpoint(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append((body, request.headers.get("content-length")))
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/v1/chat/completions", endpoint, methods=["POST"])])
    app.add_middleware(ValidateXargs)
    client = TestClient(app, headers={"X-Justitia-App-Id": "run-7", "X-Justitia-Weight": "2"})
    r = client.post("/v1/chat/completions", json={"messages": [], "vllm_xargs": {"weight": 5}})
    assert r.status_code == 200
    body, length = seen[-1]
    assert body["vllm_xargs"] == {"weight": 5, "app_id": "run-7"}  # the body's weight wins
    assert int(length) == len(json.dumps(body).encode())  # content-length matches the new body
    r = client.post("/v1/chat/completions", json={"messages": []}, headers={"X-Justitia-Weight": "zero"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "X-Justitia-Weight"
