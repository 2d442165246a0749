"""Configuration of the simulated engine and its named presets (issue 2 §4, DESIGN §4)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from justitia.sim.latency import LatencyModel, gpu_latency

# KV capacity of the named presets (tokens). DESIGN §4: Llama-2-7B on an 80 GB GPU ≈ 122.8k tokens
# (512 KiB/token in fp16 after weights and activations); Llama-3-8B (GQA, 128 KiB/token) ≈ 483k.
_PRESET_CAPACITY = {
    "h100-llama2-7b": 122_800,
    "a100-llama2-7b": 122_800,
    "a100-llama3-8b": 483_000,
}


def _a100_40gb_llama_7b_capacity() -> int:
    """KV tokens of LLaMA-7B on one A100-PCIe-40GB under vLLM's defaults: ``gpu_memory_utilization``
    0.9 of 40 GiB = 36 GiB, minus the fp16 weights (6.74 B parameters × 2 B = 12.55 GiB), minus ~1 GiB
    of activations and workspace at the profiling run (2,048 batched tokens), leaves ~22.4 GiB of KV
    cache at 512 KiB per token (2 · 32 layers · 4096 · 2 B) ≈ 45.9k tokens."""
    gib = 1 << 30
    free = 0.9 * 40 * gib - 6.74e9 * 2 - 1.0 * gib
    return int(free // (2 * 32 * 4096 * 2))


_PRESET_CAPACITY["a100-40gb-llama-7b"] = _a100_40gb_llama_7b_capacity()
_PRESET_OVERRIDES: dict[str, dict[str, object]] = {
    # vLLM v0 (the paper's) without chunked prefill batches at most max_model_len = 2,048 tokens a step
    "a100-40gb-llama-7b": {"max_num_batched_tokens": 2048},
}


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """A simulated vLLM v1 engine.

    ``capacity_tokens`` is the KV capacity ``M`` (rounded down to whole blocks of ``block_size``).
    ``max_num_batched_tokens`` is the per-iteration token budget (chunked prefill), ``max_num_seqs`` the
    cap on running requests. ``reserve_full_isl`` mirrors vLLM 0.32's ``scheduler_reserve_full_isl``
    (admit a waiting request only if its whole sequence fits in the free blocks).
    ``macro_steps`` lets the engine advance many decode iterations in closed form (same results as
    single steps, up to float rounding); ``served_every`` is how often (in iterations) running requests'
    service is reported to policies that listen to it, besides at finish and preemption.
    ``exact_dynamic_keys``: for policies whose keys move with service (``dynamic_keys``: VTC, SJF, PLAS,
    ATLAS), report service before every decision that reads keys, so admission and preemption see
    iteration-exact keys (faithful, but no macro-steps while any waiting request could be admitted:
    several times slower). ``False`` treats them like static policies — service reported every
    ``served_every`` iterations, keys re-read when the policy's version changes — which is as fast as
    FCFS; their keys then lag the service (and, for time-dependent keys such as Autellix's
    anti-starvation, the clock) by at most ``served_every`` iterations.
    ``preempt_for_admission`` (default ``False``: vLLM 0.32 never preempts to admit): when the waiting
    request with the smallest key does not fit in the free blocks, preempt (recompute) running requests
    with a *strictly larger* key, largest first, until it fits — but only if the eligible ones together
    free enough (otherwise nobody is preempted); never one with a smaller key. Anti-thrash rule: a
    request admitted at iteration ``G`` can be preempted *for admission* only from iteration
    ``G + admission_preempt_min_iters`` on (memory-shortage preemption is unchanged), so every admission
    makes at least that much progress before it can be displaced again. Only memory triggers it (not the
    ``max_num_seqs`` cap).
    ``check_invariants`` re-verifies the block accounting every step (slow; for tests).
    """

    latency: LatencyModel
    capacity_tokens: int
    block_size: int = 16
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256
    reserve_full_isl: bool = True
    macro_steps: bool = True
    served_every: int = 64
    exact_dynamic_keys: bool = True
    preempt_for_admission: bool = False
    admission_preempt_min_iters: int = 32
    check_invariants: bool = False
    name: str = "custom"

    def __post_init__(self) -> None:
        if not isinstance(self.latency, LatencyModel):
            raise ValueError(f"latency must be a LatencyModel, got {type(self.latency).__name__}")
        for field in ("capacity_tokens", "block_size", "max_num_batched_tokens", "max_num_seqs", "served_every"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"EngineConfig.{field} must be a positive integer, got {v!r}")
        m = self.admission_preempt_min_iters
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise ValueError(f"EngineConfig.admission_preempt_min_iters must be an integer >= 0, got {m!r}")
        if self.capacity_tokens < self.block_size:
            raise ValueError(f"capacity_tokens ({self.capacity_tokens}) must hold at least one block of {self.block_size}")
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= max_num_seqs "
                             f"({self.max_num_seqs}), as in vLLM")

    @property
    def num_blocks(self) -> int:
        return self.capacity_tokens // self.block_size

    @property
    def kv_capacity(self) -> int:
        """KV capacity in tokens as the engine sees it (whole blocks)."""
        return self.num_blocks * self.block_size

    def replace(self, **changes: object) -> EngineConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def preset(name: str, **overrides: object) -> EngineConfig:
    """A named GPU engine: ``h100-llama2-7b``, ``a100-llama2-7b``, ``a100-llama3-8b``,
    ``a100-40gb-llama-7b`` (the paper's: LLaMA-7B on one A100-PCIe-40GB)."""
    if name not in _PRESET_CAPACITY:
        raise ValueError(f"unknown engine preset {name!r}; choose one of: {', '.join(preset_names())}")
    cfg = EngineConfig(latency=gpu_latency(name), capacity_tokens=_PRESET_CAPACITY[name], name=name,
                       **_PRESET_OVERRIDES.get(name, {}))  # type: ignore[arg-type]
    return cfg.replace(**overrides) if overrides else cfg


def preset_names() -> list[str]:
    return sorted(_PRESET_CAPACITY)


def nominal_iteration_s(config: EngineConfig) -> float:
    """Service-rate basis of the fair-sharing reference: the time of one decode-only iteration of a
    *saturated* engine — ``max_num_seqs`` decoding requests whose contexts fill the whole KV capacity
    ``M`` (so every iteration reads ``M`` KV tokens). The reference then serves ``M`` token·iterations per
    ``nominal_iteration_s`` (clock eq. 1). For h100-llama2-7b: T_lin(256) + M·κ ≈ 9.2 + 19.2 ≈ 28.4 ms.
    """
    n = min(config.max_num_seqs, config.max_num_batched_tokens)
    t = config.latency.decode_base_s(n) + config.latency.kv_s_per_token * config.kv_capacity
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"latency model gives a non-positive iteration time ({t!r}) for a saturated batch")
    return t
