"""The plugin's decisions and policy calls are those of the plugin before its hot path was trimmed.

A seeded random workload (arrivals every step, mixed prompt and output lengths, ``app_done`` tags,
aborts, a KV cache small enough to preempt) drives two real vLLM schedulers side by side: this
tree's :class:`JustitiaScheduler` and the one of git revision :data:`REF` (the whole ``justitia``
package at that revision, imported as ``justitia_ref``). Both read one step-driven clock, so every
``now`` is the same. Per step they must schedule the same requests in the same order, keep ``running``
in the same order, and make the same calls into the policy (``app_arrived``, ``request_arrived``,
``served`` with the same token counts and cost eq. 1 amounts, ``request_finished``, ``app_finished``,
``set_capacity``, ``tick``) in the same order.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from vllm.v1.request import RequestStatus
from vllm_helpers import config_dir, create_scheduler, fake_output, load_ref_package, make_request

from justitia.core.policy import AppInfo, Req

REF = "055b96e902fbbc7253fbabc2f62f3ef8a44e6df4"
"""main before the per-step trimming (SafePolicy forwarding, inline checks, the service loop)."""
ROOT = Path(__file__).resolve().parents[2]
EVENTS = ("app_arrived", "request_arrived", "served", "request_finished", "app_finished", "set_capacity", "tick")


class StepClock:
    """``time.monotonic`` for the scheduler modules: set by the driver, the same for both schedulers."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def time(self) -> float:  # the wall clock (the plugin maps vLLM's arrival_time onto its own clock)
        return 1.7e9 + self.t


def _plain(x: Any) -> Any:
    if isinstance(x, Req) or type(x).__name__ == "Req":
        return ("req", x.req_id, x.app_id, x.seq, x.prompt_tokens, x.call_index)
    if isinstance(x, AppInfo) or type(x).__name__ == "AppInfo":
        return ("app", x.app_id, x.weight, x.app_type, x.cost_hint)
    if isinstance(x, float):
        return round(x, 9)
    return x


def _record(sched: Any, log: list[Any]) -> None:
    inner = sched.justitia_policy.inner
    for name in EVENTS:
        fn = getattr(inner, name)

        def wrapper(*args: Any, _fn: Any = fn, _name: str = name) -> Any:
            log.append((_name, *map(_plain, args)))
            return _fn(*args)

        setattr(inner, name, wrapper)


@pytest.fixture(scope="module")
def ref_module() -> Any:
    try:
        subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{REF}^{{commit}}"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"git history with {REF[:7]} is not available")
    return load_ref_package(REF, ROOT)


def _workload(seed: int) -> list[list[tuple[str, int, int, dict[str, Any]]]]:
    """Per step, the requests arriving: ``(id, prompt, max_tokens, tags)``."""
    rng = random.Random(seed)
    steps: list[list[tuple[str, int, int, dict[str, Any]]]] = []
    n = 0
    for _ in range(60):
        batch = []
        for _ in range(rng.choice((0, 0, 1, 2, 4))):
            app = rng.randrange(12)
            tags: dict[str, Any] = {"app_id": f"a{app}", "app_cost_hint": float(rng.randrange(200, 20000))}
            if rng.random() < 0.15:
                tags["app_done"] = True
            if rng.random() < 0.1:
                tags = {}  # its own single-request application
            batch.append((f"q{n}", rng.randrange(4, 120), rng.randrange(1, 40), tags))
            n += 1
        steps.append(batch)
    return steps


@pytest.mark.parametrize("policy,seed", [("justitia", 0), ("justitia", 1), ("fcfs", 2), ("vtc", 3)])
def test_same_decisions_and_policy_calls_as_before(ref_module: Any, tmp_path: Path, monkeypatch: Any,
                                                   policy: str, seed: int) -> None:
    from justitia.vllm import scheduler as tree_module

    monkeypatch.setenv("JUSTITIA_POLICY", policy)
    monkeypatch.setenv("JUSTITIA_APP_IDLE_S", "0.2")
    monkeypatch.delenv("JUSTITIA_ESTIMATOR", raising=False)
    monkeypatch.delenv("JUSTITIA_TRACE_FILE", raising=False)
    clock = StepClock()
    model = config_dir(tmp_path)
    runs: dict[str, dict[str, list[Any]]] = {}
    scheds: dict[str, Any] = {}
    for name, mod in (("ref", ref_module), ("tree", tree_module)):
        monkeypatch.setattr(mod, "time", clock)
        s = create_scheduler(model, mod.JustitiaScheduler, num_blocks=40, block_size=16, max_num_seqs=8,
                             max_num_batched_tokens=256)
        runs[name] = {"calls": [], "steps": []}
        _record(s, runs[name]["calls"])
        scheds[name] = s
    rng = random.Random(seed + 100)
    arrivals = _workload(seed)
    for i in range(1000):
        if i >= len(arrivals) and not any(s.requests for s in scheds.values()):
            break  # both drained
        batch = arrivals[i] if i < len(arrivals) else []
        aborts = [f"q{rng.randrange(200)}" for _ in range(rng.random() < 0.1)]
        for name, s in scheds.items():
            clock.t = 1000.0 + 0.05 * i
            for rid, prompt, out, tags in batch:
                s.add_request(make_request(rid, prompt_len=prompt, max_tokens=out, **tags))
            live = [r for r in aborts if r in s.requests]
            if live:
                s.finish_requests(live, RequestStatus.FINISHED_ABORTED)
            so = s.schedule()
            clock.t += 0.03 + 0.01 * (i % 7)  # the model run: iteration times move, set_capacity is pushed
            s.update_from_output(so, fake_output(so))
            runs[name]["steps"].append((list(so.num_scheduled_tokens), [r.req_id for r in so.scheduled_new_reqs],
                                        [r.request_id for r in s.running], sorted(so.preempted_req_ids or ())))
    ref, tree = runs["ref"], runs["tree"]
    assert any(st[3] for st in tree["steps"]), "the workload must preempt"
    assert sum(c[0] == "served" for c in tree["calls"]) > 50
    assert sum(c[0] == "app_finished" for c in tree["calls"]) >= 5
    for i, (a, b) in enumerate(zip(ref["steps"], tree["steps"])):
        assert a == b, f"step {i}: scheduled/running differ"
    assert len(ref["calls"]) == len(tree["calls"])
    for i, (a, b) in enumerate(zip(ref["calls"], tree["calls"])):
        assert a == b, f"policy call {i} differs"
    assert not scheds["tree"].requests and scheds["tree"].justitia_stats() == scheds["ref"].justitia_stats()
