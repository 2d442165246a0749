"""What a vLLM server's Prometheus ``/metrics`` says about a benchmark run: KV capacity, engine steps,
preemptions, tokens, prefix-cache hits (counters as deltas over the run, :func:`diff`)."""

from __future__ import annotations

import math
import re
import urllib.request
from dataclasses import dataclass


@dataclass(slots=True)
class ServerStats:
    """What the server's Prometheus ``/metrics`` says (counters are deltas over the run)."""

    capacity_tokens: float = math.nan
    block_size: int = 0
    preemptions: float = 0.0
    itl_sum_s: float = 0.0
    itl_count: float = 0.0
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0
    steps: float = 0.0  # engine steps that scheduled tokens (vllm:iteration_tokens_total_count)
    prefix_hits: float = 0.0  # prompt tokens served from the prefix cache (vllm:prefix_cache_hits_total)
    prefix_queries: float = 0.0  # prompt tokens looked up in it (vllm:prefix_cache_queries_total)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEnNaIif]+)$")


def parse_metrics(text: str) -> ServerStats:
    """Pick our figures out of a Prometheus exposition of vLLM's metrics (summing over label sets)."""
    s = ServerStats()
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line.strip())
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        if name == "vllm:cache_config_info":
            lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            blocks = lab.get("num_gpu_blocks_override") if lab.get("num_gpu_blocks_override") not in (None, "", "None") \
                else lab.get("num_gpu_blocks")
            if blocks not in (None, "", "None") and lab.get("block_size"):
                s.block_size = int(lab["block_size"])
                s.capacity_tokens = float((int(blocks) - 1) * s.block_size)  # minus vLLM's null block
            continue
        sums[name] = sums.get(name, 0.0) + value
    s.preemptions = sums.get("vllm:num_preemptions_total", 0.0)
    s.itl_sum_s = sums.get("vllm:inter_token_latency_seconds_sum", 0.0)
    s.itl_count = sums.get("vllm:inter_token_latency_seconds_count", 0.0)
    s.prompt_tokens = sums.get("vllm:prompt_tokens_total", 0.0)
    s.generation_tokens = sums.get("vllm:generation_tokens_total", 0.0)
    s.steps = sums.get("vllm:iteration_tokens_total_count", 0.0)
    s.prefix_hits = sums.get("vllm:prefix_cache_hits_total", 0.0)
    s.prefix_queries = sums.get("vllm:prefix_cache_queries_total", 0.0)
    return s


def scrape(url: str, timeout: float = 10.0) -> ServerStats:
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=timeout) as r:  # noqa: S310 - local server
        return parse_metrics(r.read().decode("utf-8", "replace"))


def diff(after: ServerStats, before: ServerStats) -> ServerStats:
    return ServerStats(
        capacity_tokens=after.capacity_tokens, block_size=after.block_size,
        preemptions=after.preemptions - before.preemptions, itl_sum_s=after.itl_sum_s - before.itl_sum_s,
        itl_count=after.itl_count - before.itl_count, prompt_tokens=after.prompt_tokens - before.prompt_tokens,
        generation_tokens=after.generation_tokens - before.generation_tokens, steps=after.steps - before.steps,
        prefix_hits=after.prefix_hits - before.prefix_hits, prefix_queries=after.prefix_queries - before.prefix_queries,
    )
