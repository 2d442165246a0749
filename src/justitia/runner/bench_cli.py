"""``justitia bench``: real applications on the real engine, policies side by side.

Only argparse at top level (see :mod:`justitia.cli`); the OpenAI client, vLLM and matplotlib load in
the handler.
"""

from __future__ import annotations

import argparse

from justitia.runner.bench_plan import DEFAULT_STEP_S  # a module without heavy imports

DEFAULT_KV_TOKENS = 2048  # 128 blocks of 16: a few applications fill it (memory scarce, DESIGN §3)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "bench",
        help="run real applications against a real vLLM server, once per policy; table, summary, plots",
        description=(
            "Play one seeded stream of real applications (chat, MapReduce summarization, self-consistency, "
            "multi-agent debate, best-of-n code) against a fresh `justitia serve` per policy, or replay a "
            "workload JSONL with synthetic prompts of its token lengths. Writes summary.json, apps.csv, "
            "act_cdf.png, slowdown.png (as `justitia simulate`), calls.csv and bench.json."
        ),
    )
    p.add_argument("--policies", default=None, help="comma-separated (default fcfs,vtc,justitia; --quick: fcfs,justitia)")
    p.add_argument("--apps", type=int, default=None, help="applications in the stream (default 40; --quick 20)")
    p.add_argument("--rate", type=float, default=None, help="Poisson arrival rate, apps/s (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the application stream (default 0)")
    p.add_argument("--sizes", choices=("quick", "full"), default=None,
                   help="length preset of the real applications (default full; --quick: quick)")
    p.add_argument("--workload", default=None, metavar="FILE.jsonl",
                   help="replay this workload file (synthetic prompts of its exact token lengths) instead of real apps")
    p.add_argument("--endpoint", default=None, metavar="URL",
                   help="use this running server (http://host:port) instead of starting one per policy; "
                        "then --policies is one label for the server's policy")
    p.add_argument("--kv-tokens", type=int, default=DEFAULT_KV_TOKENS,
                   help=f"KV cache capacity of each started server, tokens (default {DEFAULT_KV_TOKENS}: scarce)")
    p.add_argument("--model", default=None, help="model folder for started servers (default: the bundled model)")
    p.add_argument("--port", type=int, default=None, help="port of started servers (default: a free one in 8200-8299)")
    p.add_argument("--sequential", action="store_true",
                   help="run the policies one after another, every engine on the same last core (the default "
                        "unless there is a core per policy plus one for the API servers and this client; then "
                        "they run side by side, one core each)")
    p.add_argument("--no-prefix-caching", action="store_true",
                   help="start the servers without vLLM's prefix cache (the simulator does not model prompt "
                        "sharing, so sim-vs-real agreement is checked on such runs)")
    p.add_argument("--no-hint", action="store_true",
                   help="do not send app_cost_hint (the server's own estimator decides)")
    p.add_argument("--compare-sim", action="store_true",
                   help="replay the measured stream in the simulator with the calibrated latency model "
                        "(`justitia calibrate`) and report sim-vs-real agreement")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run the whole comparison N times on fresh servers, the policy order alternating, and "
                        "summarise the ratios to fcfs (mean, min, max); each repeat's outputs in OUT/repK (default 1)")
    p.add_argument("--clock", choices=("wall", "steps"), default=None,
                   help="wall: applications arrive at their wall-clock times; steps: arrivals released by the "
                        "engine's own step counter (arrival t at step t / --step-ms) and completion times "
                        "measured in engine steps, so a slow or busy host gives the same comparison; the wall-"
                        "clock times of the same runs are printed beside it (default wall; --quick: steps)")
    p.add_argument("--step-ms", type=float, default=DEFAULT_STEP_S * 1e3, metavar="MS",
                   help=f"reference step time of --clock steps, ms (default {DEFAULT_STEP_S * 1e3:g})")
    p.add_argument("--trace", action="store_true",
                   help="write each server's scheduler trace (JUSTITIA_TRACE_FILE) to OUT/trace_<policy>.jsonl")
    p.add_argument("--quick", action="store_true", help="20 short apps, fcfs vs justitia: about 3 minutes on 2 CPU cores (the main job, make run)")
    p.add_argument("--out", default=None, help="output folder (default results/bench)")
    p.add_argument("--no-plots", action="store_true", help="skip act_cdf.png / slowdown.png")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    from justitia.runner.bench_main import main_from_args

    return main_from_args(args)
