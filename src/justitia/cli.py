"""``justitia`` command line: ``simulate | serve | model | bench | calibrate | predictor | reproduce``.

Each subcommand lives with its subsystem as a module exposing ``register(subparsers)``; those modules
import only argparse-level things at top level, so ``justitia --help`` stays fast and a missing
optional extra (vLLM, torch) only affects the subcommand that needs it. Every command runs under
:func:`justitia.lifecycle.run_stopping_servers`: SIGTERM, SIGINT and SIGHUP stop the servers it
started and it exits with 128 + the signal's number (``serve``: 0, a requested stop is its normal end).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from justitia import __version__
from justitia.lifecycle import run_stopping_servers

# subsystem modules that define subcommands, in help order
_COMMAND_MODULES = (
    "justitia.bench.simulate_cli",
    "justitia.runner.bench_cli",
    "justitia.vllm.serve_cli",
    "justitia.cluster.cli",
    "justitia.vllm.model_cli",
    "justitia.runner.calibrate_cli",
    "justitia.predict.cli",
    "justitia.paper.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="justitia",
        description="Fair and efficient scheduling of LLM applications (arXiv 2510.17015).",
    )
    parser.add_argument("--version", action="version", version=f"justitia {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _COMMAND_MODULES:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith(mod.rsplit(".", 1)[0]):
                continue  # subsystem not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:  # SIGTERM/SIGINT/SIGHUP stop every server this command started
        return run_stopping_servers(lambda: int(args.func(args) or 0), f"justitia {args.command}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as e:
        print(f"justitia {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
