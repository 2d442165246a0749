"""End to end: the real vLLM OpenAI server, the real SmolLM2 model, the official OpenAI client.

Marked ``e2e`` (``make test`` / ``.ci/run`` run it; skip locally with ``-m 'not e2e'``). Ports 8100-8199.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
PORTS = (8100, 8200)


@pytest.fixture(scope="module")
def server(real_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from justitia.vllm.serve import Server

    d = tmp_path_factory.mktemp("e2e")
    srv = Server(real_model_dir, port_range=PORTS, policy="justitia", kv_tokens=2048, max_num_seqs=4,
                 app_idle_s=30, trace_file=d / "trace.jsonl", log_file=d / "server.log")
    with srv:
        yield srv
    assert not srv.alive()


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_two_applications_complete_and_scheduler_sees_app_ids(server) -> None:  # type: ignore[no-untyped-def]
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)

    def call(app: str, i: int, last: bool) -> str:
        xargs: dict[str, object] = {"app_id": app, "app_type": "demo"}
        if last:
            xargs["app_done"] = True
        r = client.completions.create(
            model=server.name, prompt=f"Question {i}: the capital of France is", max_tokens=8, temperature=0,
            extra_body={"vllm_xargs": xargs},
        )
        return r.choices[0].text

    jobs = [("e2e-A", i, i == 2) for i in range(3)] + [("e2e-B", i, False) for i in range(2)]
    with ThreadPoolExecutor(len(jobs)) as ex:
        texts = list(ex.map(lambda j: call(*j), jobs))
    assert all(t.strip() for t in texts), texts
    assert any("Paris" in t for t in texts), texts  # real text from the real model

    chat = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120).chat.completions.create(
        model=server.name, messages=[{"role": "user", "content": "Say hello."}], max_tokens=6,
        extra_body={"vllm_xargs": {"app_id": "e2e-B", "app_done": True}},
    )
    assert chat.choices[0].message.content.strip()

    ev = _events(server.trace_file)
    assert ev[0]["event"] == "start" and ev[0]["policy"].startswith("justitia")
    assert ev[0]["capacity_tokens"] == 2048
    arrived = [e["app_id"] for e in ev if e["event"] == "request_arrived"]
    assert sorted(arrived) == ["e2e-A"] * 3 + ["e2e-B"] * 3
    apps = {e["app_id"]: e for e in ev if e["event"] == "app_arrived"}
    assert set(apps) == {"e2e-A", "e2e-B"} and apps["e2e-A"]["app_type"] == "demo"
    finished = {e["app_id"]: e["why"] for e in ev if e["event"] == "app_finished"}
    assert finished == {"e2e-A": "app_done", "e2e-B": "app_done"}  # ended by app_done, not the 30 s idle window
    done = [e for e in ev if e["event"] == "request_finished"]
    assert len(done) == 6 and all(e["output_tokens"] > 0 for e in done)


def test_bad_xargs_refused_with_400_engine_survives(server) -> None:  # type: ignore[no-untyped-def]
    import openai
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    with pytest.raises(openai.BadRequestError, match="weight"):
        client.completions.create(model=server.name, prompt="hi", max_tokens=2,
                                  extra_body={"vllm_xargs": {"app_id": "bad", "weight": -1}})
    r = client.completions.create(model=server.name, prompt="Hello", max_tokens=2)  # no app_id: own app
    assert r.choices[0].text
    assert server.alive()


def test_cli_serve_prints_url_and_stops_on_ctrl_c(real_model_dir: Path, tmp_path: Path) -> None:
    from justitia.vllm.serve import pick_port

    port = pick_port("127.0.0.1", 8150, 8200)
    log = tmp_path / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "justitia.cli", "serve", "--model", str(real_model_dir), "--port", str(port),
         "--policy", "fcfs", "--kv-tokens", "1024", "--max-num-seqs", "2", "--log-file", str(log),
         "--timeout", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]  # printed once /health answers
        assert line.startswith(f"http://127.0.0.1:{port}/v1"), (line, log.read_text()[-3000:])
        from openai import OpenAI

        r = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=60).completions.create(
            model=real_model_dir.name, prompt="The capital of France is", max_tokens=4, temperature=0,
            extra_body={"vllm_xargs": {"app_id": "a1"}})
        assert "Paris" in r.choices[0].text
        from justitia.vllm.proctree import descendants, is_alive

        tree = descendants(proc.pid)  # supervisor, API server, EngineCore, Worker, resource tracker
        assert sum(open(f"/proc/{p}/cmdline").read().startswith("VLLM::") for p in tree) == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read()  # type: ignore[union-attr]
        assert "stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # nothing of the server is left (the handler waited for it): no process of its tree, the port free
    from justitia.vllm.serve import port_is_free

    assert [p for p in tree if is_alive(p)] == []
    assert port_is_free("127.0.0.1", port)
    assert "JustitiaScheduler" in log.read_text()
