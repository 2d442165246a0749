"""The ingress's pure helpers: usage from an answer, per-replica metrics labels."""

from __future__ import annotations

from justitia.cluster.openai_io import label_replica, prompt_tokens_guess, usage
from justitia.runner.server_stats import parse_metrics


def test_usage_and_prompt_guess() -> None:
    assert usage(b'{"usage": {"prompt_tokens": 12, "completion_tokens": 3}}') == (12, 3)
    assert usage(b"not json") is None
    assert prompt_tokens_guess({"prompt": "x" * 40}) == 10
    assert prompt_tokens_guess({"messages": [{"role": "user", "content": "y" * 80}]}) == 20


def test_replica_pages_concatenate_into_cluster_totals() -> None:
    page = ('# HELP vllm:num_preemptions_total n\n# TYPE vllm:num_preemptions_total counter\n'
            'vllm:num_preemptions_total{model_name="m a"} 2.0\njustitia_apps_active 3\n'
            'vllm:cache_config_info{block_size="32",num_gpu_blocks="65"} 1.0\n')
    both = label_replica(page, 0) + label_replica(page, 1)
    assert 'vllm:num_preemptions_total{replica="1",model_name="m a"} 2.0' in both
    assert 'justitia_apps_active{replica="0"} 3' in both
    assert both.count("# HELP") == 1
    stats = parse_metrics(both)
    assert stats.preemptions == 4.0 and stats.capacity_tokens == 64 * 32
