"""GPU-free builders in vLLM's own test style (vLLM tests/v1/core/utils.py; DESIGN §3).

Used by the plugin's unit tests and by ``benchmarks/plugin_overhead.py`` (found through pytest's
``pythonpath``; the benchmark puts this folder on ``sys.path``).

A scheduler is built from a folder holding only a ``config.json`` (``skip_tokenizer_init``), with a
``KVCacheConfig`` of one ``FullAttentionSpec`` group, and is driven by fake ``ModelRunnerOutput`` s:
every scheduled request gets one sampled token per step. The model runner is the only fake part;
the real engine path is covered by ``tests/vllm/test_e2e.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
from vllm.sampling_params import SamplingParams
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.request import Request
from vllm.v1.structured_output import StructuredOutputManager

EOS = 2
TINY_LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
    "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 4,
    "num_hidden_layers": 2, "vocab_size": 1000, "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": EOS, "torch_dtype": "float32",
}


def config_dir(tmp: Path) -> Path:
    d = tmp / "tiny-llama"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(TINY_LLAMA))
    return d


def create_scheduler(model_dir: Path, cls: type = Scheduler, num_blocks: int = 1000, block_size: int = 16,
                     max_num_seqs: int = 16, max_num_batched_tokens: int = 2048, scheduling_policy: str = "fcfs") -> Any:
    sched_cfg = SchedulerConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                                max_model_len=max_num_batched_tokens, enable_chunked_prefill=True,
                                is_encoder_decoder=False, policy=scheduling_policy)
    model_cfg = ModelConfig(model=str(model_dir), dtype="float32", seed=0, skip_tokenizer_init=True)
    cache_cfg = CacheConfig(block_size=block_size, cache_dtype="auto", enable_prefix_caching=False)
    vllm_cfg = VllmConfig(scheduler_config=sched_cfg, model_config=model_cfg, cache_config=cache_cfg)
    kv_cfg = KVCacheConfig(
        num_blocks=num_blocks, kv_cache_tensors=[],
        kv_cache_groups=[KVCacheGroupSpec(["layer"], FullAttentionSpec(block_size=block_size, num_kv_heads=1,
                                                                        head_size=1, dtype=torch.float32))],
    )
    cache_cfg.num_gpu_blocks = num_blocks
    return cls(vllm_config=vllm_cfg, kv_cache_config=kv_cfg, log_stats=False, block_size=block_size,
               structured_output_manager=StructuredOutputManager(vllm_cfg))


def make_request(rid: str, prompt_len: int = 16, max_tokens: int = 8, priority: int = 0, **xargs: Any) -> Request:
    sp = SamplingParams(max_tokens=max_tokens, ignore_eos=True, extra_args=dict(xargs) if xargs else None)
    return Request(request_id=rid, prompt_token_ids=[7] * prompt_len, sampling_params=sp, pooling_params=None,
                   priority=priority)


def fake_output(sched_out: Any) -> ModelRunnerOutput:
    """One sampled token for every request that finishes its prefill (or decodes) this step."""
    ids = list(sched_out.num_scheduled_tokens)
    return ModelRunnerOutput(req_ids=ids, req_id_to_index={r: i for i, r in enumerate(ids)},
                             sampled_token_ids=[[5] for _ in ids])


def step(sched: Any) -> tuple[Any, Any]:
    out = sched.schedule()
    sched.update_from_output(out, fake_output(out))
    return out, out.num_scheduled_tokens


def create_justitia_scheduler(model_dir: Path, monkeypatch: Any, policy: str = "justitia", idle_s: float = 100.0,
                              **kw: Any) -> Any:
    """A GPU-free :class:`justitia.vllm.scheduler.JustitiaScheduler` running ``policy``.

    ``monkeypatch`` (pytest's) sets the plugin's environment for the test only: the policy, the app
    idle window ``idle_s``, and no estimator override or trace file from the caller's shell.
    """
    from justitia.vllm.scheduler import JustitiaScheduler

    monkeypatch.setenv("JUSTITIA_POLICY", policy)
    monkeypatch.setenv("JUSTITIA_APP_IDLE_S", str(idle_s))
    monkeypatch.delenv("JUSTITIA_ESTIMATOR", raising=False)
    monkeypatch.delenv("JUSTITIA_TRACE_FILE", raising=False)
    return create_scheduler(model_dir, JustitiaScheduler, **kw)


def load_ref_package(rev: str, repo: Path | None = None) -> Any:
    """The ``justitia.vllm.scheduler`` module of the whole ``justitia`` package at git revision ``rev``,
    imported beside the working tree as ``justitia_ref`` (its ``justitia.`` imports and registry paths
    renamed; its Prometheus series in a private registry), for before/after runs in one process.
    Raises ``RuntimeError`` naming the problem if git cannot produce that revision."""
    import importlib
    import re
    import subprocess
    import sys
    import tempfile

    repo = repo or Path(__file__).resolve().parents[2]
    if "justitia_ref" in sys.modules:
        raise RuntimeError("a justitia_ref package is already imported in this process")
    try:
        tar = subprocess.run(["git", "-C", str(repo), "archive", rev, "src/justitia"], check=True,
                             capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"git cannot archive src/justitia at {rev!r} in {repo}: {e}") from None
    root = Path(tempfile.mkdtemp())
    subprocess.run(["tar", "-x", "-C", str(root)], input=tar, check=True)
    pkg = root / "justitia_ref"
    (root / "src" / "justitia").rename(pkg)
    rename = re.compile(r"(?<![\w/.-])justitia(?=[.\s]|$)", re.M)  # justitia.x, "justitia.x:Y", import justitia
    for f in pkg.rglob("*.py"):
        f.write_text(rename.sub("justitia_ref", f.read_text()))
    sys.path.insert(0, str(root))
    metrics = importlib.import_module("justitia_ref.vllm.metrics")
    from prometheus_client import CollectorRegistry

    metrics._RECORDER = metrics.Recorder(registry=CollectorRegistry())  # its series beside this tree's
    return importlib.import_module("justitia_ref.vllm.scheduler")
