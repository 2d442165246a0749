"""``justitia simulate``: the side-by-side simulation of several policies on one workload (issue 2 §5).

Only argparse at top level (see :mod:`justitia.cli`); the simulator, numpy and matplotlib load in
the handler.
"""

from __future__ import annotations

import argparse

from justitia.bench.defaults import DEFAULT_APPS, DEFAULT_LOAD, DEFAULT_POLICIES, DEFAULT_WORKLOAD
from justitia.cluster.placement import placement_names


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "simulate",
        help="simulate policies side by side on a workload; print a table, write summary/plots",
        description=(
            "Serve one workload under each policy on the simulated engine (same seeded workload for "
            "every policy), compare application completion times against the fair-sharing reference, "
            "print a table and write OUT/summary.json, OUT/apps.csv, OUT/act_cdf.png, OUT/slowdown.png."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--workload", default=DEFAULT_WORKLOAD,
                   help="a named workload (paper-mix, chat, mapreduce, ...) or a workload file FILE.jsonl")
    p.add_argument("--policies", default=DEFAULT_POLICIES,
                   help="comma-separated policies; an estimator may be suffixed, e.g. justitia-mlp")
    p.add_argument("--apps", type=int, default=None,
                   help=f"number of applications (default {DEFAULT_APPS} for a named workload; "
                        "for a file: the first N by arrival, default all)")
    p.add_argument("--load", type=float, default=None,
                   help=f"offered load vs the engine's KV memory-time (default {DEFAULT_LOAD} for a named "
                        "workload; a file keeps its own arrival times unless --load is given)")
    p.add_argument("--density", type=float, default=None,
                   help="the paper's arrivals: agents submitted at Mooncake-trace times squeezed into an 18, 9 or "
                        "6-minute window per 300 agents = density 1, 2, 3 (default 300 agents; paper-suite's "
                        "default is density 1 unless --load is given)")
    p.add_argument("--seed", type=int, default=0, help="workload seed")
    p.add_argument("--out", default=None, help="output folder (default results/<workload>)")
    p.add_argument("--gpu", default="h100", choices=("h100", "a100", "a100-40gb"),
                   help="engine preset: h100 / a100 (Llama-2-7B, 80 GB), a100-40gb (the paper's: LLaMA-7B on "
                        "an A100-PCIe-40GB, M = 45.9k tokens)")
    p.add_argument("--estimator", default="oracle",
                   help="cost estimator for policies that need one (justitia, sjf) unless suffixed")
    p.add_argument("--reference", default="measured", choices=("measured", "nominal"),
                   help="service rate of the fair-sharing reference and the policies' clocks: the engine's "
                        "measured saturated rate, or M / nominal decode iteration")
    p.add_argument("--preempt-for-admission", action="store_true",
                   help="engine preempts larger-key running requests to admit the smallest-key waiting one "
                        "(EngineConfig.preempt_for_admission; default: vLLM 0.32's behaviour, never)")
    p.add_argument("--no-plots", action="store_true", help="skip act_cdf.png / slowdown.png")
    p.add_argument("--replicas", type=int, default=None,
                   help="simulate a cluster of N engines behind the Justitia dispatcher (justitia.cluster); "
                        "--load is then relative to the whole cluster, --apps defaults to 400 x N")
    p.add_argument("--placement", default="global",
                   help=f"with --replicas: {' | '.join(placement_names())} (comma-separated: each)")
    p.add_argument("--spill", action="store_true",
                   help="with --replicas: an app whose fan-out exceeds its replica spills calls to others")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    if args.replicas is not None:
        from justitia.cluster.sim_experiment import main_from_args as cluster_main

        return cluster_main(args)
    from justitia.bench.experiment import main_from_args

    return main_from_args(args)
