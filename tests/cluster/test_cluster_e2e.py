"""End to end: ``justitia cluster`` (Ray Serve, 2 real vLLM replicas with the plugin, the dispatcher ingress).

Marked ``e2e``. One cluster serves both tests (starting it is most of the time): 20 applications of
parallel calls tagged by header, every call answered and every application on one replica; then a
replica's vLLM server is killed mid-run: no application is lost, the dispatcher keeps no state, and Ray
brings the replica back into placement.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e
pytest.importorskip("ray.serve")


def _get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def _post(url: str, body: dict[str, Any], headers: dict[str, str], timeout: float = 300) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), dict(e.headers)


@pytest.fixture(scope="module")
def cluster(real_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from justitia.vllm.serve import pick_port

    port = pick_port("127.0.0.1", 18860, 18870)
    base = pick_port("127.0.0.1", 18880, 18884)
    log = tmp_path_factory.mktemp("cluster") / "cluster.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "justitia.cli", "cluster", "--replicas", "2", "--port", str(port),
             "--kv-tokens", "2048", "--placement", "global", "--model", str(real_model_dir),
             "--replica-ports", str(base), "--app-idle-s", "1"],
            stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 420
        while _get(url + "/health")[0] != 200:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "cluster not healthy in 420 s:\n" + log.read_text()[-3000:]
            time.sleep(2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _app(url: str, app_id: str, calls: int, tokens: int = 12) -> list[tuple[int, dict, dict]]:
    """One application: ``calls`` parallel calls tagged by header, then a last call with app_done."""
    hdr = {"X-Justitia-App-Id": app_id, "X-Justitia-Weight": "1"}
    body = {"model": "SmolLM2-135M-Instruct", "prompt": f"{app_id}: the capital of France is", "max_tokens": tokens,
            "temperature": 0}
    with ThreadPoolExecutor(calls) as ex:
        out = list(ex.map(lambda _i: _post(url + "/v1/completions", body, hdr), range(calls)))
    done = dict(body, vllm_xargs={"app_done": True})
    out.append(_post(url + "/v1/completions", done, hdr))
    return out


def _state(url: str) -> dict[str, Any]:
    for _ in range(10):
        status, body = _get(url + "/justitia/cluster", timeout=30)
        if status == 200:
            return json.loads(body)
        time.sleep(1)
    raise AssertionError(f"/justitia/cluster did not answer (last status {status})")


def test_twenty_apps_all_answered_each_on_one_replica(cluster: str) -> None:
    names = [f"e2e-{i}" for i in range(20)]
    with ThreadPoolExecutor(8) as ex:
        results = dict(zip(names, ex.map(lambda a: _app(cluster, a, 3), names)))
    for app_id, calls in results.items():
        assert [s for s, _, _ in calls] == [200] * 4, (app_id, calls)
        assert all(b["choices"][0]["text"] for _, b, _ in calls)
        assert len({h["x-justitia-replica"] for _, _, h in calls}) == 1, (app_id, calls)
    st = _state(cluster)
    assert {a: len(r) for a, r in st["served_by"].items() if a in results} == dict.fromkeys(results, 1)
    assert {r for a, rs in st["served_by"].items() for r in rs} == {0, 1}  # placement used both replicas
    assert st["stats"] == dict.fromkeys(st["stats"], 0)  # every app ended with app_done: nothing left
    status, body, _ = _post(cluster + "/v1/completions", {"model": "m", "prompt": "x"}, {"X-Justitia-Weight": "-2"})
    assert status == 400 and body["error"]["param"] == "X-Justitia-Weight"
    metrics = _get(cluster + "/metrics")[1].decode()
    assert 'replica="0"' in metrics and 'replica="1"' in metrics and "justitia_" in metrics


def test_replica_killed_mid_run_loses_no_app_and_rejoins(cluster: str) -> None:
    victim_pg = _state(cluster)["pgids"][0]
    assert victim_pg
    names = [f"fault-{i}" for i in range(8)]
    with ThreadPoolExecutor(8) as ex:
        futs = {a: ex.submit(_app, cluster, a, 2, 64) for a in names}
        time.sleep(1.0)
        os.killpg(victim_pg, signal.SIGKILL)  # replica 0's vLLM server and its engine, mid-run
        results = {a: f.result() for a, f in futs.items()}
    for app_id, calls in results.items():
        for status, body, _ in calls:  # each call answered, or refused naming its application
            assert status == 200 or (status == 503 and app_id in body["error"]["message"]), (app_id, status, body)
    answered = sum(s == 200 for calls in results.values() for s, _, _ in calls)
    assert answered >= len(names)  # the surviving replica took over
    st = _state(cluster)
    assert st["failures"] and all(f["replica"] == 0 for f in st["failures"])
    urllib.request.urlopen(urllib.request.Request(cluster + "/justitia/end_idle", method="POST"), timeout=10)
    st = _state(cluster)
    assert st["stats"] == dict.fromkeys(st["stats"], 0)  # the global clock and placement hold no app
    deadline = time.monotonic() + 400  # Ray restarts the replica; the ingress puts it back
    while not (_state(cluster)["replicas"][0]["up"] and _get(cluster + "/health")[0] == 200):
        assert time.monotonic() < deadline, _state(cluster)
        time.sleep(3)
    assert _state(cluster)["pgids"][0] not in (None, victim_pg)
    calls = _app(cluster, "after-restart", 1)
    assert [s for s, _, _ in calls] == [200, 200]
