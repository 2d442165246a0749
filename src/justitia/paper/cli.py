"""``justitia reproduce``: the paper's §5 evaluation in the simulator (:mod:`justitia.paper.run`).

Only argparse at top level (see :mod:`justitia.cli`); the simulator, torch and matplotlib load in the
handler.
"""

from __future__ import annotations

import argparse

DEFAULT_OUT = "results/paper"


def _ints(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "reproduce",
        help="run every experiment of the paper's §5 in the simulator; write REPORT.md and one PNG per figure",
        description=(
            "Fig. 7 (mean/P90 JCT × load × policy), Fig. 8 (fair-ratio CDF), Fig. 9 (elephant among mice), "
            "Fig. 10 (noisy costs), Fig. 11 (Justitia with VTC's cost), Table 1 (predictors) and Fig. 12 "
            "(scheduling time per decision), side by side with the paper's numbers: OUT/REPORT.md, "
            "OUT/results.json, OUT/fig*.png. About 8 min on 2 idle cores; --quick about 1 (measured)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes: 2 loads, 2 mice counts, 1 noise seed")
    p.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    p.add_argument("--seed", type=int, default=None, help="workload seed (default 1)")
    p.add_argument("--workload", default=None, help="override the workload (default: paper-suite if available)")
    p.add_argument("--apps", type=int, default=None, help="agents per workload (default 300)")
    p.add_argument("--mice", type=_ints, default=None, help="Fig. 9's numbers of mice, e.g. 100,300,500")
    p.add_argument("--train-per-type", type=int, default=None, help="Table 1's training agents per type")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console

    from justitia.paper import config
    from justitia.paper.report import headline
    from justitia.paper.run import reproduce

    changes = {k: v for k, v in (("seed", args.seed), ("workload", args.workload), ("n_apps", args.apps),
                                 ("mice", args.mice), ("train_per_type", args.train_per_type)) if v is not None}
    if args.apps is not None and args.apps < 2:
        raise ValueError(f"--apps must be at least 2, got {args.apps}")
    if args.train_per_type is not None and args.train_per_type < 10:
        raise ValueError(f"--train-per-type must be at least 10, got {args.train_per_type}")
    cfg = (config.quick if args.quick else config.full)(**changes)
    console = Console()
    command = "justitia " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["reproduce"] else "justitia reproduce"
    res = reproduce(cfg, args.out, progress=not args.no_progress, console=console, command=command)
    for claim, paper, ours, sentence in headline(res):
        console.print(f"{claim}: paper {paper}, ours {ours}" + (f" — {sentence}" if sentence else ""), highlight=False)
    console.print(f"wrote {args.out}/REPORT.md ({res['wall_s']:.0f} s)")
    return 0
