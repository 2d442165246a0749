"""Small random workloads and a small engine for the simulator tests."""

from __future__ import annotations

import random

from justitia.apps.model import AppSpec, Call, Stage
from justitia.sim.config import EngineConfig
from justitia.sim.latency import LinearLatency

# a small engine with a simple latency model: 10 ms + 10 µs/prefill token + 100 µs/decode token + 1 µs/KV token
SMALL_LAT = LinearLatency(a=0.010, b=1e-5, c=1e-4, d=1e-6)


def small_config(capacity: int = 4096, **kw: object) -> EngineConfig:
    base: dict[str, object] = dict(latency=SMALL_LAT, capacity_tokens=capacity, block_size=16,
                                   max_num_batched_tokens=512, max_num_seqs=16, check_invariants=True)
    base.update(kw)
    return EngineConfig(**base)  # type: ignore[arg-type]


def random_apps(seed: int, n: int = 30, rate: float = 4.0, max_prompt: int = 600, max_out: int = 200,
                max_stages: int = 3, max_calls: int = 4, delay: float = 0.3) -> list[AppSpec]:
    rng = random.Random(seed)
    t = 0.0
    apps = []
    for i in range(n):
        t += rng.expovariate(rate)
        stages = []
        for s in range(rng.randint(1, max_stages)):
            calls = tuple(Call(rng.randint(1, max_prompt), rng.randint(1, max_out)) for _ in range(rng.randint(1, max_calls)))
            stages.append(Stage(calls, 0.0 if s == 0 else round(rng.uniform(0.0, delay), 3)))
        apps.append(AppSpec(f"app{i}", round(t, 4), rng.choice(["chat", "mapreduce", "debate"]), tuple(stages),
                            weight=rng.choice([1.0, 1.0, 2.0])))
    return apps
