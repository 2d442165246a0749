"""The real path: the SDK and `justitia bench` against a real `justitia serve` (real vLLM, real model).

One server for the module (~40 s to start on 2 cores); every call is tiny.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from justitia.cli import main

pytestmark = pytest.mark.e2e

PORT = 8290  # first port of the servers the bench starts here


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    pytest.importorskip("vllm")
    from justitia.runner.bench_plan import ServerSpec
    from justitia.runner.bench_servers import started_server

    with started_server(ServerSpec(kv_tokens=4096), "justitia", log=lambda *a: None) as url:
        yield url


def test_real_apps_through_the_sdk(server_url: str) -> None:
    import openai

    import justitia
    from justitia.runner import realapps
    from justitia.runner.realapps import AppPlan, Sizes

    sizes = Sizes(chat_max_tokens=8, sc_samples=3, sc_max_tokens=12)

    async def main() -> list[tuple[object, dict]]:
        client = openai.AsyncOpenAI(base_url=server_url + "/v1", api_key="x", max_retries=0)
        chat = AppPlan("chat-0", "chat", 3, 0.0, sizes)
        sc = AppPlan("sc-0", "self-consistency", 0, 0.0, sizes)

        async def one(plan: AppPlan) -> tuple[object, dict]:
            async with justitia.App(client, type=plan.app_type, cost_hint=plan.cost_hint()) as app:
                res = await realapps.APP_TYPES[plan.app_type].run(app, plan)
            return app, res

        out = await asyncio.gather(one(chat), one(sc))
        await client.close()
        return out

    (chat_app, chat_res), (sc_app, sc_res) = asyncio.run(main())
    assert chat_res["reply"].strip()  # real text came back
    assert len(sc_res["answers"]) == 3
    for app, n in ((chat_app, 1), (sc_app, 3)):
        assert len(app.calls) == n and all(c.ok for c in app.calls)
        assert all(c.prompt_tokens > 10 and 1 <= c.completion_tokens <= c.max_tokens for c in app.calls)
        assert app.act_s >= max(c.latency_s for c in app.calls) > 0  # ACT recorded, covers its calls
        assert sum(c.last for c in app.calls) == 1


def test_bench_replays_a_workload_and_writes_the_report(server_url: str, tmp_path) -> None:
    from justitia.apps.model import AppSpec, dump_jsonl, load_jsonl
    from justitia.bench.report import SUMMARY_KEYS

    specs = [
        AppSpec.from_json({"app_id": "big", "arrival_s": 0.0, "type": "sc",
                           "stages": [{"calls": [{"prompt_tokens": 40, "output_tokens": 12}] * 3}]}),
        AppSpec.from_json({"app_id": "two-stage", "arrival_s": 0.3, "type": "mapreduce",
                           "stages": [{"calls": [{"prompt_tokens": 30, "output_tokens": 6}] * 2},
                                      {"calls": [{"prompt_tokens": 20, "output_tokens": 5}]}]}),
    ]
    wl = tmp_path / "wl.jsonl"
    dump_jsonl(specs, wl)
    out = tmp_path / "out"
    assert main(["bench", "--policies", "justitia", "--workload", str(wl), "--endpoint", server_url,
                 "--kv-tokens", "4096", "--quick", "--out", str(out), "--no-plots"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["workload", "policies"] and list(summary["policies"]) == ["justitia"]
    assert tuple(summary["policies"]["justitia"]) == SUMMARY_KEYS
    s = summary["policies"]["justitia"]
    assert s["apps"] == 2 and s["mean_act_s"] > 0 and s["throughput_tok_s"] > 0
    # replay sent exactly the workload's lengths (ignore_eos): the measured spec equals it
    measured = {a.app_id: a for a in load_jsonl(out / "measured_justitia.jsonl")}
    for spec in specs:
        got = measured[spec.app_id]
        assert [[(c.prompt_tokens, c.output_tokens) for c in st.calls] for st in got.stages] == \
               [[(c.prompt_tokens, c.output_tokens) for c in st.calls] for st in spec.stages]
    rows = list(csv.DictReader((out / "calls.csv").open()))
    assert len(rows) == 6 and all(float(r["latency_s"]) > 0 for r in rows)
    b = json.loads((out / "bench.json").read_text())["policies"]["justitia"]
    assert b["capacity_tokens"] == 4096 and b["output_tokens"] == 3 * 12 + 2 * 6 + 5
    assert 0 < b["call_latency_p50_s"] <= b["call_latency_p99_s"]
    # the reference step time: busy time over the engine's own step count (5 + 12 decode steps at least)
    assert b["engine_steps"] >= 12 and 0 < b["step_s"] < b["busy_s"] and b["failed_apps"] == 0


def _small_workload(tmp_path: Path, gap_s: float, output_tokens: int) -> Path:
    """Four tiny apps ``gap_s`` apart, one or two calls of 30 prompt tokens each; the JSONL's path."""
    from justitia.apps.model import AppSpec, dump_jsonl

    specs = [AppSpec.from_json({"app_id": f"a{i}", "arrival_s": gap_s * i, "type": "sc",
                                "stages": [{"calls": [{"prompt_tokens": 30, "output_tokens": output_tokens}] * (1 + i % 2)}]})
             for i in range(4)]
    dump_jsonl(specs, tmp_path / "wl.jsonl")
    return tmp_path / "wl.jsonl"


def test_bench_starts_a_fresh_server_per_policy_and_compares_them(tmp_path) -> None:
    """The main job's path: servers started by the bench (one per policy), warmed up, streams run one
    after another on the pinned engine core, one reference for both, servers stopped afterwards."""
    pytest.importorskip("vllm")
    from justitia.vllm.serve import port_is_free

    wl, out = _small_workload(tmp_path, gap_s=0.2, output_tokens=6), tmp_path / "out"
    assert main(["bench", "--policies", "fcfs,justitia", "--workload", str(wl), "--kv-tokens", "1024",
                 "--port", str(PORT), "--quick", "--clock", "wall", "--out", str(out), "--no-plots"]) == 0
    b = json.loads((out / "bench.json").read_text())
    assert list(b["policies"]) == ["fcfs", "justitia"] and b["failed_apps"] == {}
    for f in b["policies"].values():
        assert f["apps"] == 4 and f["output_tokens"] == 6 * 6 and f["capacity_tokens"] == 1024
        assert f["engine_steps"] >= 6 and f["step_s"] > 0
    assert b["iteration_s"] > 0
    assert (out / "server_fcfs.log").exists() and (out / "server_justitia.log").exists()
    assert port_is_free("127.0.0.1", PORT) and port_is_free("127.0.0.1", PORT + 1)  # both servers stopped


def test_step_clocked_bench_releases_arrivals_by_engine_steps(tmp_path) -> None:
    """`bench --clock steps`: each app is released at engine step arrival / step time, its completion is
    stamped in steps, the verdict is in steps converted at the pooled step time and the wall-clock figures
    of the same runs are reported beside it."""
    pytest.importorskip("vllm")
    from justitia.apps.model import load_jsonl

    wl, out = _small_workload(tmp_path, gap_s=0.4, output_tokens=8), tmp_path / "out"
    assert main(["bench", "--policies", "fcfs,justitia", "--workload", str(wl), "--kv-tokens", "1024",
                 "--clock", "steps", "--step-ms", "100", "--out", str(out), "--no-plots"]) == 0
    b = json.loads((out / "bench.json").read_text())
    assert b["clock"] == "steps" and b["ref_step_s"] == 0.1 and b["failed_apps"] == {}
    it_s = b["iteration_s"]
    for pol, f in b["policies"].items():
        assert f["apps"] == 4 and f["output_tokens"] == 6 * 8
        assert f["engine_steps"] >= 8 and f["mean_act_steps"] >= 8  # a call decodes 8 tokens: >= 8 steps
        assert f["mean_act_s"] == pytest.approx(f["mean_act_steps"] * it_s)
        assert f["wall_mean_act_s"] > 0
        arrivals = {a.app_id: a.arrival_s / it_s for a in load_jsonl(out / f"measured_{pol}.jsonl")}
        for i in range(4):  # released at step 4i (0.4 s / 100 ms), or at the next counter read after it
            assert 4 * i - 1e-6 <= arrivals[f"a{i}"] <= 4 * i + 2, (pol, arrivals)
    assert not list(out.glob(".engine_steps_*"))  # the step files are removed
