"""Reliability on the real engine: the real vLLM server, the real SmolLM2 model (issue 6 §2–§4).

One server (``justitia.vllm.serve.Server``, ports 8300-8399) with the Justitia scheduler, the
``ValidateXargs`` middleware and Prometheus multiprocess mode; the tests run in file order:

1. bad ``vllm_xargs`` get HTTP 400 naming the field before the engine; good requests get 200;
2. ``/metrics`` carries the ``justitia_*`` series after requests;
3. faults: a client that disconnects mid-stream, an application cancelled with many streaming calls
   in flight, an application that never sends ``app_done`` — every request is accounted for in the
   scheduler's trace, each application ends (idle window), ``justitia_active_apps`` returns to 0 and
   ``justitia_virtual_time`` never goes backwards;
4. every request that reached the engine left it exactly once, every application ended, and the
   scheduler holds nothing (``justitia_active_apps`` 0) before the server stops cleanly.

Marked ``e2e`` (run by ``make test`` / ``.ci/run``; skip locally with ``-m 'not e2e'``).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e
PORTS = (8300, 8400)
IDLE_S = 2.0


@pytest.fixture(scope="module")
def server(real_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from justitia.vllm.serve import Server

    d = tmp_path_factory.mktemp("reliability")
    srv = Server(real_model_dir, port_range=PORTS, policy="justitia", kv_tokens=4096, max_num_seqs=8,
                 app_idle_s=IDLE_S, trace_file=d / "trace.jsonl", log_file=d / "server.log")
    with srv:  # Server gives the process a fresh PROMETHEUS_MULTIPROC_DIR (justitia.vllm.metrics)
        yield srv
    assert not srv.alive()


def events(srv: Any) -> list[dict[str, Any]]:
    return [json.loads(x) for x in srv.trace_file.read_text().splitlines() if x.strip()]


def post(srv: Any, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(srv.url + path, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:  # type: ignore[attr-defined]
        return e.code, json.loads(e.read())


def scrape(srv: Any) -> dict[str, float]:
    """``/metrics`` samples of the justitia_* series, ``name{labels}`` → value."""
    with urllib.request.urlopen(srv.url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("justitia_"):
            name, _, val = line.rpartition(" ")
            out[name] = float(val)
    return out


def wait_for(cond: Any, timeout: float = 60.0, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


# ---------------------------------------------------------------------- 1. bad input
BAD = [
    ('{"vllm_xargs": {"app_id": "e", "weight": NaN}}', "vllm_xargs.weight"),
    ('{"vllm_xargs": {"app_id": "e", "weight": 0}}', "vllm_xargs.weight"),
    ('{"vllm_xargs": {"app_id": 42}}', "vllm_xargs.app_id"),
    ('{"vllm_xargs": {"app_id": "e", "app_cost_hint": -1}}', "vllm_xargs.app_cost_hint"),
    ('{"vllm_xargs": {"app_id": "e", "wieght": 2}}', "vllm_xargs.wieght"),
    ('{"vllm_xargs": {"app_id": "e", "app_done": "yes"}}', "vllm_xargs.app_done"),
]


@pytest.mark.parametrize(("xargs", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_input_gets_400_naming_the_field(server: Any, xargs: str, field: str) -> None:
    body = xargs[:-1] + f', "model": "{server.name}", "prompt": "hi", "max_tokens": 2}}'
    for path in ("/v1/completions", "/v1/chat/completions"):
        b = body if "completions" == path.rsplit("/", 1)[-1] else body.replace('"prompt": "hi"', '"messages": [{"role": "user", "content": "hi"}]')
        status, err = post(server, path, b.encode())
        assert status == 400, (path, err)
        assert err["error"]["param"] == field and field in err["error"]["message"]
    # refused before the engine: the scheduler never saw application "e"
    assert not [e for e in events(server) if e.get("app_id") == "e"]


def test_good_requests_pass_with_and_without_app_id(server: Any) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)
    r = client.completions.create(model=server.name, prompt="The capital of France is", max_tokens=4, temperature=0,
                                  extra_body={"vllm_xargs": {"app_id": "good", "weight": 2.0, "app_cost_hint": 5e3,
                                                             "app_type": "demo", "app_done": True}})
    assert "Paris" in r.choices[0].text
    r2 = client.completions.create(model=server.name, prompt="Hello", max_tokens=2)  # no app id: its own app
    assert r2.choices[0].text


# ---------------------------------------------------------------------- 2. metrics
def test_metrics_endpoint_shows_justitia_series(server: Any) -> None:
    m = wait_for(lambda: (s := scrape(server)) and s.get('justitia_served_cost_total{app_type="demo"}', 0) > 0 and s)
    for name in ("justitia_active_apps", "justitia_virtual_time", "justitia_preemptions_total",
                 "justitia_policy_fallbacks_total"):
        assert any(k.split("{")[0] == name for k in m), name
    assert m['justitia_app_completion_seconds_count{app_type="demo"}'] >= 1  # "good" ended by app_done
    assert m["justitia_virtual_time"] > 0 and math.isfinite(m["justitia_virtual_time"])
    assert m["justitia_policy_fallbacks_total"] == 0


# ---------------------------------------------------------------------- 3. faults
def stream_body(server: Any, app: str, max_tokens: int = 200, done: bool = False) -> dict[str, Any]:
    xargs: dict[str, Any] = {"app_id": app, "app_type": "fault"}
    if done:
        xargs["app_done"] = True
    return {"model": server.name, "prompt": "Write a long story about a lighthouse keeper.", "max_tokens": max_tokens,
            "temperature": 0, "ignore_eos": True, "stream": True, "vllm_xargs": xargs}


async def open_streams(server: Any, app: str, n: int, chunks_before_leaving: int) -> int:
    """Open ``n`` streaming calls of ``app``, read a few chunks of each, then drop every connection."""
    import httpx

    got = 0
    async with httpx.AsyncClient(timeout=120) as client:
        async def one() -> None:
            nonlocal got
            async with client.stream("POST", server.url + "/v1/completions", json=stream_body(server, app)) as r:
                assert r.status_code == 200
                seen = 0
                async for line in r.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        seen += 1
                        if seen >= chunks_before_leaving:
                            got += 1
                            return  # leaving the context closes the connection mid-stream

        await asyncio.gather(*(one() for _ in range(n)))
    return got


def request_ends(server: Any, app: str) -> list[dict[str, Any]]:
    return [e for e in events(server) if e["event"] == "request_finished" and e["app_id"] == app]


def app_end(server: Any, app: str) -> dict[str, Any] | None:
    return next((e for e in events(server) if e["event"] == "app_finished" and e["app_id"] == app), None)


def poke(server: Any) -> None:
    """One tiny request of its own (no app id): drives a scheduler step. The plugin ends idle
    applications at ``schedule()``, which vLLM calls only while it has requests."""
    status, _ = post(server, "/v1/completions",
                     json.dumps({"model": server.name, "prompt": "x", "max_tokens": 1}).encode())
    assert status == 200


def end_by_idle(server: Any, app: str) -> dict[str, Any]:
    time.sleep(IDLE_S + 0.3)
    poke(server)
    end = wait_for(lambda: app_end(server, app), timeout=30)
    assert end["why"] == "idle", end
    return end


def test_client_disconnect_mid_stream_aborts_and_releases(server: Any) -> None:
    v0 = scrape(server).get("justitia_virtual_time", 0.0)
    assert asyncio.run(open_streams(server, "gone", 1, chunks_before_leaving=3)) == 1
    ends = wait_for(lambda: request_ends(server, "gone"))
    assert len(ends) == 1 and ends[0]["status"] == "FINISHED_ABORTED" and 3 <= ends[0]["output_tokens"] < 200
    end_by_idle(server, "gone")
    assert scrape(server)["justitia_virtual_time"] >= v0


def test_app_cancelled_with_many_calls_in_flight(server: Any) -> None:
    n = 16  # more than max_num_seqs=8: some calls run, some wait, when the client gives up
    assert asyncio.run(open_streams(server, "cancelled", n, chunks_before_leaving=1)) == n
    ends = wait_for(lambda: len(request_ends(server, "cancelled")) == n and request_ends(server, "cancelled"))
    assert all(e["status"] == "FINISHED_ABORTED" and e["output_tokens"] < 200 for e in ends)
    end_by_idle(server, "cancelled")


def test_app_without_app_done_ends_after_idle_window(server: Any) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)
    for i in range(3):
        client.completions.create(model=server.name, prompt=f"Step {i}:", max_tokens=3,
                                  extra_body={"vllm_xargs": {"app_id": "forgetful"}})
    assert app_end(server, "forgetful") is None  # its requests are done, but it may send more
    assert end_by_idle(server, "forgetful")["requests"] == 3


def test_every_app_ends_and_clock_moves_forward(server: Any) -> None:
    vs = []
    for _ in range(4):
        vs.append(scrape(server)["justitia_virtual_time"])
        time.sleep(0.5)
    assert vs == sorted(vs) and all(math.isfinite(v) for v in vs)
    time.sleep(IDLE_S + 0.3)
    poke(server)  # ends every idle application; the poke itself is its own app and ends at once
    ev = events(server)
    arrived = {e["app_id"] for e in ev if e["event"] == "app_arrived"}
    assert {e["app_id"] for e in ev if e["event"] == "app_finished"} == arrived
    assert wait_for(lambda: scrape(server)["justitia_active_apps"] == 0 or None, timeout=30) is not None


# ---------------------------------------------------------------------- 4. nothing lost, nothing left
def test_every_request_and_app_accounted_for_then_clean_stop(server: Any) -> None:
    ev = events(server)
    arrived = sorted(e["req_id"] for e in ev if e["event"] == "request_arrived")
    finished = sorted(e["req_id"] for e in ev if e["event"] == "request_finished")
    assert arrived == finished and len(arrived) >= 25  # every request that reached the engine left it once
    apps_in = sorted(e["app_id"] for e in ev if e["event"] == "app_arrived")
    apps_out = sorted(e["app_id"] for e in ev if e["event"] == "app_finished")
    assert apps_in == apps_out  # every application ended once (app_done or idle window)
    assert scrape(server)["justitia_active_apps"] == 0
    server.stop()
    assert not server.alive()
    # If the scheduler got to record its shutdown (it does not when the EngineCore is signalled
    # directly), it must hold nothing.
    for e in events(server):
        if e["event"] == "shutdown":
            st = e["stats"]
            assert all(st[k] == 0 for k in ("active_apps", "idle_apps", "tracked_requests", "policy_apps",
                                            "policy_state_entries")), st
    assert re.search(r"JustitiaScheduler", server.log_file.read_text())
