"""``justitia serve``: vLLM's OpenAI server with the Justitia scheduler (see :mod:`justitia.vllm.serve`)."""

from __future__ import annotations

import argparse


def _serve(args: argparse.Namespace) -> int:
    import sys
    import time

    from rich.console import Console

    from justitia.vllm.serve import Server, ServerError

    console = Console(stderr=True)
    srv = Server(
        args.model, host=args.host, port=args.port, policy=args.policy, estimator=args.estimator,
        kv_tokens=args.kv_tokens, max_num_seqs=args.max_num_seqs, block_size=args.block_size,
        served_model_name=args.served_model_name, app_idle_s=args.app_idle_s, trace_file=args.trace_file,
        extra_args=args.extra or (), log_file=args.log_file, log=lambda m: console.print(m),
    )
    try:
        srv.start()
        console.print(f"starting vLLM ({srv.name}, policy {args.policy}) — log: {srv.log_file}")
        with console.status("waiting for /health ...") as status:
            ready = srv.wait_ready(args.timeout, on_wait=lambda t: status.update(f"waiting for /health ... {t:.0f} s"))
        console.print(f"[bold green]ready[/] in {ready:.1f} s")
        print(f"{srv.url}/v1  (model {srv.name!r}; Ctrl-C stops)", flush=True)
        while srv.alive():
            time.sleep(0.5)
        console.print(f"[red]server exited with code {srv.proc.returncode if srv.proc else '?'}; log: {srv.log_file}")
        return 1
    except ServerError as e:
        console.print(f"[red]{e}")
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP (justitia.lifecycle): a requested stop, exit 0
        console.print(f"stopping ({e or 'interrupted'}) ...")
        srv.stop()
        console.print("stopped")
        return 0
    finally:
        srv.stop()
        sys.stdout.flush()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="start vLLM's OpenAI server with the Justitia scheduler on the bundled (or any local) model",
        description="Start `python -m vllm.entrypoints.openai.api_server` with --scheduler-cls "
        "justitia.vllm.scheduler.JustitiaScheduler, offline, eager, bf16. Clients pass their application "
        "with extra_body={'vllm_xargs': {'app_id': ...}}.",
    )
    p.add_argument("--model", default=None, help="local Hugging Face model folder (default: the bundled SmolLM2, "
                   "built on first use)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--policy", default="justitia", help="justitia | fcfs | vtc | sjf | plas | atlas | app_fcfs | "
                   "justitia-mlp ... (default: justitia)")
    p.add_argument("--estimator", default=None, help="cost estimator for policies that need one (default: oracle)")
    p.add_argument("--kv-tokens", type=int, default=None, help="cap the KV cache at about N tokens "
                   "(--num-gpu-blocks-override) to make memory scarce")
    p.add_argument("--max-num-seqs", type=int, default=None, help="max concurrently running requests")
    p.add_argument("--block-size", type=int, default=32, help="KV block size in tokens (default 32)")
    p.add_argument("--served-model-name", default=None, help="model name clients use (default: folder name)")
    p.add_argument("--app-idle-s", type=float, default=None, help="idle window that ends an application (default 2)")
    p.add_argument("--trace-file", default=None, help="JSONL file where the scheduler records app/request events")
    p.add_argument("--log-file", default=None, help="server log (default: a temp file)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for /health")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=None,
                   help="everything after --extra is passed to vLLM's api_server unchanged")
    p.set_defaults(func=_serve)
