"""Justitia vs FCFS on the real vLLM engine with scarce KV memory (issue 3 "what it must show").

One fresh server per policy (real SmolLM2-135M, CPU, ``--kv-tokens`` small, ``--max-num-seqs`` small),
the same workload through the official async OpenAI client:

* one *big* application arriving first: ``--big-calls`` parallel calls of ``--big-tokens`` tokens;
* ``--small-apps`` *small* applications arriving ``--small-delay`` s later: ``--small-calls`` calls of
  ``--small-tokens`` tokens each.

Every call passes ``vllm_xargs`` (``app_id``, ``app_type``, ``app_cost_hint`` = the exact cost eq. 2 the
client declares, ``app_done`` on the last call) and ``ignore_eos`` so both policies do the same work.
Printed: completion order of applications, per-app completion time (ACT = last call done − app arrival),
mean ACT per kind, makespan and generated-token throughput, FCFS and Justitia side by side.

    .venv/bin/python benchmarks/plugin_demo.py [--kv-tokens 1024 --max-num-seqs 4 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

TEXT = ("The river bends around the old mill, where the miller keeps careful records of every sack of grain "
        "that passes through his hands, noting the weather, the price and the name of each farmer. ")


@dataclass
class AppRun:
    app_id: str
    kind: str
    arrival: float
    calls: list[tuple[str, int]]  # (prompt, max_tokens)
    hint: float = 0.0
    done: list[float] = field(default_factory=list)
    tokens: int = 0

    @property
    def act(self) -> float:
        return max(self.done) - self.arrival


def build_workload(args: argparse.Namespace, tok) -> list[AppRun]:  # type: ignore[no-untyped-def]
    from justitia.core.cost import call_cost

    apps = [AppRun("big", "big", 0.0, [(f"Document {i}. {TEXT * args.big_repeat}\nSummary:", args.big_tokens)
                                      for i in range(args.big_calls)])]
    for a in range(args.small_apps):
        apps.append(AppRun(f"small{a}", "small", args.small_delay,
                           [(f"Q{a}.{i}: {TEXT} What does the miller record?", args.small_tokens)
                            for i in range(args.small_calls)]))
    for app in apps:
        app.hint = sum(call_cost(len(tok(p)["input_ids"]), o) for p, o in app.calls)
    return apps


async def run_app(client, model: str, app: AppRun, t0: float) -> None:  # type: ignore[no-untyped-def]
    await asyncio.sleep(max(0.0, t0 + app.arrival - time.monotonic()))
    app.arrival = time.monotonic() - t0

    async def one(i: int, prompt: str, max_tokens: int) -> None:
        xargs = {"app_id": app.app_id, "app_type": app.kind, "app_cost_hint": app.hint}
        if i == len(app.calls) - 1:
            xargs["app_done"] = True
        r = await client.completions.create(
            model=model, prompt=prompt, max_tokens=max_tokens, temperature=0,
            extra_body={"vllm_xargs": xargs, "ignore_eos": True},
        )
        app.tokens += r.usage.completion_tokens
        app.done.append(time.monotonic() - t0)

    await asyncio.gather(*(one(i, p, o) for i, (p, o) in enumerate(app.calls)))


def run_policy(policy: str, args: argparse.Namespace, model_dir: Path, tok) -> dict:  # type: ignore[no-untyped-def]
    from openai import AsyncOpenAI

    from justitia.vllm.serve import Server

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    apps = build_workload(args, tok)
    plugin = policy != "vllm"  # "vllm": vLLM's own scheduler, no plugin (the throughput baseline)
    with Server(model_dir, port_range=(8100, 8200), policy=policy if plugin else "fcfs", plugin=plugin,
                kv_tokens=args.kv_tokens,
                max_num_seqs=args.max_num_seqs, log_file=out_dir / f"server-{policy}.log",
                trace_file=out_dir / f"trace-{policy}.jsonl", log=lambda m: None) as srv:
        print(f"[{policy}] server ready in {srv.ready_after_s:.1f} s at {srv.url}", flush=True)

        async def main() -> float:
            async with AsyncOpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=600) as client:
                t0 = time.monotonic()
                await asyncio.gather(*(run_app(client, srv.name, a, t0) for a in apps))
                return time.monotonic() - t0

        async def warm() -> None:  # outside the measurement: the first request pays one-time costs
            async with AsyncOpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=600) as client:
                await client.completions.create(model=srv.name, prompt="Hello", max_tokens=4)

        asyncio.run(warm())
        time.sleep(1.0)  # let the engine's stats reach /metrics
        m0 = scrape(srv.url)
        makespan = asyncio.run(main())
        time.sleep(1.0)
        m1 = scrape(srv.url)
    tokens = sum(a.tokens for a in apps)
    order = [a.app_id for a in sorted(apps, key=lambda a: max(a.done))]
    d = {k: m1.get(k, 0.0) - m0.get(k, 0.0) for k in m1}
    return {"policy": policy, "apps": apps, "makespan": makespan, "tokens": tokens,
            "throughput": tokens / makespan, "order": order,
            # engine-side, insensitive to how busy the shared CPU was: steps and preemptions for the same work
            "steps": d.get("vllm:iteration_tokens_total_count", 0.0),
            "preemptions": d.get("vllm:num_preemptions_total", 0.0)}


def scrape(url: str) -> dict[str, float]:
    """Counters from vLLM's Prometheus ``/metrics`` (summed over label sets)."""
    import urllib.request

    out: dict[str, float] = {}
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("#") or " " not in line:
                continue
            name, _, value = line.rpartition(" ")
            base = name.split("{", 1)[0]
            if base in ("vllm:iteration_tokens_total_count", "vllm:num_preemptions_total"):
                out[base] = out.get(base, 0.0) + float(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default="vllm,fcfs,justitia",
                    help="comma list; 'vllm' = vLLM's own scheduler without the plugin")
    ap.add_argument("--kv-tokens", type=int, default=1024)
    ap.add_argument("--max-num-seqs", type=int, default=4)
    ap.add_argument("--big-calls", type=int, default=12)
    ap.add_argument("--big-tokens", type=int, default=64)
    ap.add_argument("--big-repeat", type=int, default=5, help="prompt length of big calls, in TEXT repeats")
    ap.add_argument("--small-apps", type=int, default=4)
    ap.add_argument("--small-calls", type=int, default=2)
    ap.add_argument("--small-tokens", type=int, default=16)
    ap.add_argument("--small-delay", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=1, help="runs per policy (round-robin); medians are shown")
    ap.add_argument("--out", default="results/plugin_demo")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table
    from transformers import AutoTokenizer

    from justitia.vllm.model import build_default_model

    model_dir = build_default_model(log=lambda m: None)
    tok = AutoTokenizer.from_pretrained(model_dir)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    runs: dict[str, list[dict]] = {p: [] for p in policies}
    for rep in range(args.repeats):  # round-robin, so slow phases of a shared machine hit every policy
        for p in (policies if rep % 2 == 0 else policies[::-1]):
            runs[p].append(run_policy(p, args, model_dir, tok))
            r = runs[p][-1]
            print(f"[{p}] run {rep + 1}: makespan {r['makespan']:.1f} s, {r['throughput']:.1f} tok/s, "
                  f"mean ACT {statistics.mean(a.act for a in r['apps']):.1f} s", flush=True)

    def med(p: str, f) -> float:  # type: ignore[no-untyped-def]
        return statistics.median(f(r) for r in runs[p])

    def mean_act(kind: str | None):  # type: ignore[no-untyped-def]
        return lambda r: statistics.mean(a.act for a in r["apps"] if kind is None or a.kind == kind)

    console = Console()
    tab = Table(title=f"real vLLM (SmolLM2-135M, CPU), kv_tokens={args.kv_tokens}, max_num_seqs={args.max_num_seqs}: "
                      f"1 big app ({args.big_calls}×{args.big_tokens} tok) then {args.small_apps} small apps "
                      f"({args.small_calls}×{args.small_tokens} tok) +{args.small_delay:g} s; "
                      f"median of {args.repeats} run(s)")
    tab.add_column("application")
    for p in policies:
        tab.add_column(f"{p} ACT s", justify="right")
    for i, app in enumerate(runs[policies[0]][0]["apps"]):
        tab.add_row(app.app_id, *(f"{med(p, lambda r: r['apps'][i].act):.1f}" for p in policies))
    for kind in ("small", "big", None):
        tab.add_row(f"[bold]mean ACT {kind or 'all'}", *(f"[bold]{med(p, mean_act(kind)):.1f}" for p in policies))
    tab.add_row("makespan s", *(f"{med(p, lambda r: r['makespan']):.1f}" for p in policies))
    tab.add_row("tokens", *(str(runs[p][0]["tokens"]) for p in policies))
    tab.add_row("throughput tok/s", *(f"{med(p, lambda r: r['throughput']):.1f}" for p in policies))
    tab.add_row("  per run", *(" ".join(f"{r['throughput']:.1f}" for r in runs[p]) for p in policies))
    tab.add_row("engine steps (same work)", *(f"{med(p, lambda r: r['steps']):.0f}" for p in policies))
    tab.add_row("preemptions", *(f"{med(p, lambda r: r['preemptions']):.0f}" for p in policies))
    console.print(tab)
    for p in policies:
        for r in runs[p]:
            console.print(f"{p:>9} completion order: {' '.join(r['order'])}")
    base = policies[0]
    tb, ab = med(base, lambda r: r["throughput"]), med(base, mean_act(None))
    for p in policies[1:]:
        d = (med(p, lambda r: r["throughput"]) / tb - 1) * 100
        a = med(p, mean_act(None))
        st = (med(p, lambda r: r["steps"]) / med(base, lambda r: r["steps"]) - 1) * 100
        console.print(f"{p} vs {base}: throughput {d:+.1f} % (wall clock), engine steps {st:+.1f} % (same work), "
                      f"mean ACT {a:.1f} s vs {ab:.1f} s ({ab / a:.2f}× better)")


if __name__ == "__main__":
    main()
