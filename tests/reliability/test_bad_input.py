"""Bad application arguments are refused with HTTP 400 naming the field (issue 6 §2).

Run as a script to print the table (input -> status -> message) for the report:
    .venv/bin/python tests/reliability/test_bad_input.py
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from justitia.vllm.middleware import BadInput, ValidateXargs, check_body, check_payload, did_you_mean

NAN = float("nan")
CASES: list[tuple[str, str, int, str | None]] = [
    # (label, raw JSON body, expected status, field named in the error)
    ("no vllm_xargs", '{"prompt": "hi"}', 200, None),
    ("no app_id", '{"prompt": "hi", "vllm_xargs": {"session_id": "s"}}', 200, None),
    ("good app", '{"prompt": "hi", "vllm_xargs": {"app_id": "a1", "app_type": "mapreduce", "weight": 2, '
                 '"app_cost_hint": 1.5e6, "app_done": true}}', 200, None),
    ("weight 0", '{"vllm_xargs": {"app_id": "a", "weight": 0}}', 400, "vllm_xargs.weight"),
    ("weight -1", '{"vllm_xargs": {"app_id": "a", "weight": -1}}', 400, "vllm_xargs.weight"),
    ("weight NaN literal", '{"vllm_xargs": {"app_id": "a", "weight": NaN}}', 400, "vllm_xargs.weight"),
    ("weight Infinity literal", '{"vllm_xargs": {"weight": Infinity}}', 400, "vllm_xargs.weight"),
    ("weight 1e999", '{"vllm_xargs": {"weight": 1e999}}', 400, "vllm_xargs.weight"),
    ("weight huge int", '{"vllm_xargs": {"weight": ' + "9" * 400 + "}}", 400, "vllm_xargs.weight"),
    ("weight \"2\"", '{"vllm_xargs": {"weight": "2"}}', 400, "vllm_xargs.weight"),
    ("weight true", '{"vllm_xargs": {"weight": true}}', 400, "vllm_xargs.weight"),
    ("weight 1e-9", '{"vllm_xargs": {"weight": 1e-9}}', 400, "vllm_xargs.weight"),
    ("app_id 123", '{"vllm_xargs": {"app_id": 123}}', 400, "vllm_xargs.app_id"),
    ("app_id \"\"", '{"vllm_xargs": {"app_id": ""}}', 400, "vllm_xargs.app_id"),
    ("app_id blank", '{"vllm_xargs": {"app_id": "   "}}', 400, "vllm_xargs.app_id"),
    ("app_id 129 chars", '{"vllm_xargs": {"app_id": "' + "x" * 129 + '"}}', 400, "vllm_xargs.app_id"),
    ("app_id with \\n", '{"vllm_xargs": {"app_id": "a\\nb"}}', 400, "vllm_xargs.app_id"),
    ("app_id list", '{"vllm_xargs": {"app_id": ["a"]}}', 400, "vllm_xargs.app_id"),
    ("app_type 7", '{"vllm_xargs": {"app_id": "a", "app_type": 7}}', 400, "vllm_xargs.app_type"),
    ("app_cost_hint -5", '{"vllm_xargs": {"app_cost_hint": -5}}', 400, "vllm_xargs.app_cost_hint"),
    ("app_cost_hint NaN", '{"vllm_xargs": {"app_cost_hint": NaN}}', 400, "vllm_xargs.app_cost_hint"),
    ("app_cost_hint \"big\"", '{"vllm_xargs": {"app_cost_hint": "big"}}', 400, "vllm_xargs.app_cost_hint"),
    ("app_cost_hint 0", '{"vllm_xargs": {"app_cost_hint": 0}}', 200, None),
    ("app_done \"yes\"", '{"vllm_xargs": {"app_done": "yes"}}', 400, "vllm_xargs.app_done"),
    ("app_done 1", '{"vllm_xargs": {"app_done": 1}}', 400, "vllm_xargs.app_done"),
    ("typo wieght", '{"vllm_xargs": {"app_id": "a", "wieght": 2}}', 400, "vllm_xargs.wieght"),
    ("typo appid", '{"vllm_xargs": {"appid": "a"}}', 400, "vllm_xargs.appid"),
    ("typo App-Type", '{"vllm_xargs": {"App-Type": "x"}}', 400, "vllm_xargs.App-Type"),
    ("typo done", '{"vllm_xargs": {"done": true}}', 400, "vllm_xargs.done"),
    ("typo cost_hint", '{"vllm_xargs": {"cost_hint": 5}}', 400, "vllm_xargs.cost_hint"),
    ("vllm_xargs a list", '{"vllm_xargs": ["app_id"]}', 400, "vllm_xargs"),
    ("app_id at top level", '{"prompt": "hi", "app_id": "a"}', 400, "app_id"),
    ("not JSON (left to vLLM)", "{not json", 200, None),
    ("JSON array (left to vLLM)", "[1, 2]", 200, None),
]


def outcome(raw: str) -> tuple[int, BadInput | None]:
    bad = check_body(raw.encode())
    return (200 if bad is None else bad.status), bad


@pytest.mark.parametrize(("label", "raw", "status", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_table(label: str, raw: str, status: int, field: str | None) -> None:
    got, bad = outcome(raw)
    assert got == status, f"{label}: {bad}"
    if field is not None:
        assert bad is not None and bad.field == field
        assert field in bad.message  # the message names the field
        err = json.loads(bad.body())["error"]
        assert err["param"] == field and err["code"] == 400 and err["type"] == "BadRequestError"


def test_typo_suggestions_name_our_field_and_leave_others_alone() -> None:
    assert did_you_mean("wieght") == "weight"
    assert did_you_mean("app_cost") == "app_cost_hint"
    assert did_you_mean("APP_DONE") == "app_done"
    for other in ("session_id", "priority", "kv_transfer_params", "temperature", "x"):
        assert did_you_mean(other) is None, other
    bad = check_payload({"vllm_xargs": {"wieght": 2}})
    assert bad is not None and "did you mean vllm_xargs.weight" in bad.message


def test_middleware_refuses_before_the_app_and_replays_good_bodies() -> None:
    starlette = pytest.importorskip("starlette")  # noqa: F841 - installed with vLLM
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    seen: list[Any] = []

    async def endpoint(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append(body)
        return JSONResponse({"ok": True, "echo": body})

    app = Starlette(routes=[Route("/v1/completions", endpoint, methods=["POST"]),
                            Route("/v1/chat/completions", endpoint, methods=["POST"]),
                            Route("/other", endpoint, methods=["POST"])])
    app.add_middleware(ValidateXargs)  # exactly what vLLM's --middleware does with a class
    client = TestClient(app)
    r = client.post("/v1/chat/completions", content=b'{"vllm_xargs": {"app_id": "a", "weight": NaN}}')
    assert r.status_code == 400 and r.json()["error"]["param"] == "vllm_xargs.weight"
    assert seen == []  # never reached the endpoint
    good = {"prompt": "x" * 100_000, "vllm_xargs": {"app_id": "a", "weight": 2}}
    r = client.post("/v1/completions", json=good)
    assert r.status_code == 200 and r.json()["echo"] == good and seen == [good]
    # Other paths are not inspected.
    r = client.post("/other", json={"vllm_xargs": {"weight": -1}})
    assert r.status_code == 200


def print_table() -> None:
    print(f"| {'input':<26} | status | message |")
    print(f"|{'-' * 28}|--------|---------|")
    for label, raw, _, _ in CASES:
        status, bad = outcome(raw)
        print(f"| {label:<26} | {status:^6} | {bad.message if bad else '(passed to vLLM)'} |")


if __name__ == "__main__":
    print_table()
