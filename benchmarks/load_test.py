"""Load test: many concurrent applications against ``justitia serve`` on the real model (issue 6 §5).

Loopback only, bounded in time (``--duration-s``, at most 600) and in count (``--max-requests``); it
stops by itself. ``--concurrency`` application runners (default 200) each run applications back to
back until the deadline. An application is a small MapReduce: ``--fanout`` parallel calls, then one
combine call, all with one ``vllm_xargs.app_id``; the combine call carries ``app_done: true``, except
for every 5th application, which "forgets" it and must be ended by the scheduler's idle window.

Reported: requests sent / answered / errored / lost (sent − answered − errored: must be 0), latency
p50/p99 per request and per application, tokens/s, the server's resident memory (all processes of its
process group: supervisor, API server, EngineCore, worker) at start, after warm-up and at the end, and what the
scheduler still holds afterwards (``justitia_active_apps`` once the idle window passed).

    .venv/bin/python benchmarks/load_test.py --duration-s 150 --concurrency 200
    .venv/bin/python benchmarks/load_test.py --url http://127.0.0.1:8000   # an already running server
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import os
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_DURATION_S = 600.0
PORTS = (8300, 8400)


# ---------------------------------------------------------------------- measurement helpers
def _group_members(pid: int) -> Iterator[tuple[str, int]]:
    """``(command line, resident bytes)`` of every process in ``pid``'s process group (Linux /proc)."""
    from justitia.vllm.proctree import group_members

    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    for entry in group_members(pgid):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry}/status") as f:
                kb = next((int(x.split()[1]) for x in f if x.startswith("VmRSS:")), 0)
        except (ProcessLookupError, FileNotFoundError, PermissionError, OSError):
            continue
        yield cmd, kb * 1024


def group_rss_bytes(pid: int) -> int:
    """Resident memory of every process in ``pid``'s process group."""
    return sum(rss for _cmd, rss in _group_members(pid))


def rss_by_process(pid: int) -> dict[str, int]:
    """MiB of resident memory per process of ``pid``'s group, keyed by its title (APIServer/EngineCore/Worker)."""
    out: dict[str, int] = {}
    for cmd, rss in _group_members(pid):
        if not rss:
            continue  # no VmRSS (exiting process): not a member worth naming
        name = (cmd.split()[0] if cmd.startswith("VLLM::") else "Supervisor" if "justitia.vllm.supervise" in cmd
                else "APIServer" if "api_server" in cmd else cmd[:20])
        out[name] = out.get(name, 0) + rss // (1024 * 1024)
    return out


def scrape(url: str) -> dict[str, float]:
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("justitia_", "vllm:request_success_total")):
            name, _, val = line.rpartition(" ")
            try:
                out[name] = float(val)
            except ValueError:
                pass
    return out


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    s = sorted(xs)
    i = min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))
    return s[i]


def check_loopback(url: str) -> None:
    host = urllib.parse.urlparse(url).hostname or ""
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise SystemExit(f"--url must point at this machine (loopback), got host {host!r}")


# ---------------------------------------------------------------------- the load
@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    errored: int = 0
    tokens: int = 0
    latencies: list[float] = field(default_factory=list)
    app_latencies: list[float] = field(default_factory=list)
    apps_started: int = 0
    apps_done: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    empty: int = 0


async def run_load(url: str, model: str, args: argparse.Namespace, tally: Tally, progress: Any) -> None:
    from openai import AsyncOpenAI

    import httpx

    # keepalive_expiry below the server's keep-alive timeout (uvicorn/vLLM: 5 s): otherwise the client may
    # reuse a connection at the instant the server closes it, and the request fails before it is sent.
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=args.concurrency * (args.fanout + 1) + 16,
                                                 keepalive_expiry=2.0),
                             timeout=args.request_timeout_s)
    client = AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, http_client=http)
    deadline = time.monotonic() + args.duration_s
    budget = {"left": args.max_requests}

    async def call(app_id: str, prompt: str, max_tokens: int, done: bool) -> None:
        if budget["left"] <= 0:
            return
        budget["left"] -= 1
        tally.sent += 1
        xargs: dict[str, Any] = {"app_id": app_id, "app_type": "load"}
        if done:
            xargs["app_done"] = True
        t0 = time.monotonic()
        try:
            r = await client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0.7,
                                                extra_body={"vllm_xargs": xargs})
            text = r.choices[0].text
            tally.answered += 1
            tally.tokens += r.usage.completion_tokens if r.usage else 0
            tally.latencies.append(time.monotonic() - t0)
            if not text:
                tally.empty += 1  # answered; the model stopped at once (EOS)
        except Exception as e:  # noqa: BLE001 - every failure is counted and named
            tally.errored += 1
            cause = e.__cause__ or e.__context__
            key = f"{type(e).__name__}: {str(e)[:80]}" + (f" <- {type(cause).__name__}: {str(cause)[:80]}" if cause else "")
            tally.errors[key] = tally.errors.get(key, 0) + 1
        progress()

    async def runner(w: int) -> None:
        n = 0
        while time.monotonic() < deadline and budget["left"] > 0:
            app_id = f"load-{w}-{n}"
            forget = (w + n) % 5 == 4
            n += 1
            tally.apps_started += 1
            t0 = time.monotonic()
            topic = TOPICS[(w * 7 + n) % len(TOPICS)]
            await asyncio.gather(*(call(app_id, f"Summarise part {i + 1} of a report on {topic}:", args.max_tokens, False)
                                   for i in range(args.fanout)))
            await call(app_id, f"Combine the summaries of the report on {topic} into one sentence:", args.max_tokens,
                       not forget)
            tally.apps_done += 1
            tally.app_latencies.append(time.monotonic() - t0)

    try:
        await asyncio.gather(*(runner(w) for w in range(args.concurrency)))
    finally:
        await http.aclose()


TOPICS = ["lighthouses", "bees", "glaciers", "trains", "tea", "volcanoes", "libraries", "rivers", "chess", "bridges"]


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration-s", type=float, default=600.0, help="how long new applications start (max 600)")
    ap.add_argument("--concurrency", type=int, default=200, help="applications in flight at once")
    ap.add_argument("--fanout", type=int, default=2, help="parallel calls per application before the combine call")
    ap.add_argument("--max-tokens", type=int, default=12, help="max_tokens of every call")
    ap.add_argument("--max-requests", type=int, default=200_000, help="hard cap on requests sent")
    ap.add_argument("--request-timeout-s", type=float, default=600.0)
    ap.add_argument("--url", default=None, help="use a running server on this machine instead of starting one")
    ap.add_argument("--policy", default="justitia")
    ap.add_argument("--no-plugin", action="store_true", help="vLLM's own scheduler (contrast run)")
    ap.add_argument("--kv-tokens", type=int, default=None, help="cap the KV cache (tokens) of the started server")
    ap.add_argument("--max-num-seqs", type=int, default=64)
    ap.add_argument("--app-idle-s", type=float, default=5.0)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if not (0 < args.duration_s <= MAX_DURATION_S):
        ap.error(f"--duration-s must be in (0, {MAX_DURATION_S:.0f}]")
    if args.concurrency < 1 or args.fanout < 1 or args.max_tokens < 1 or args.max_requests < 1:
        ap.error("--concurrency, --fanout, --max-tokens and --max-requests must be >= 1")

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    srv = None
    if args.url:
        check_loopback(args.url)
        url, model, pid = args.url.rstrip("/"), None, None
    else:
        from justitia.vllm.serve import Server

        srv = Server(port_range=PORTS, policy=args.policy, kv_tokens=args.kv_tokens, max_num_seqs=args.max_num_seqs,
                     app_idle_s=args.app_idle_s, plugin=not args.no_plugin, log=lambda m: console.print(m))
        console.print("starting vLLM's own scheduler ..." if args.no_plugin else f"starting justitia serve (policy {args.policy}) ...")
        srv.start()
        ready = srv.wait_ready()
        console.print(f"ready after {ready:.1f} s at {srv.url}")
        url, model, pid = srv.url, srv.name, srv.proc.pid  # type: ignore[union-attr]
    try:
        if model is None:
            with urllib.request.urlopen(url + "/v1/models", timeout=30) as r:
                model = json.loads(r.read())["data"][0]["id"]
        rss: list[tuple[float, int]] = []
        t_start = time.monotonic()
        by_proc_start = rss_by_process(pid) if pid is not None else {}
        if pid is not None:
            rss.append((0.0, group_rss_bytes(pid)))
        tally = Tally()
        with Progress(TextColumn("[bold]load"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                      TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=console) as prog:
            task = prog.add_task("load", total=args.duration_s, stats="")

            def progress() -> None:
                el = time.monotonic() - t_start
                prog.update(task, completed=min(el, args.duration_s),
                            stats=f"sent {tally.sent} ok {tally.answered} err {tally.errored}")

            async def sampler() -> None:
                while True:
                    await asyncio.sleep(10)
                    if pid is not None:
                        rss.append((time.monotonic() - t_start, group_rss_bytes(pid)))
                    progress()

            async def main_async() -> None:
                s = asyncio.create_task(sampler())
                try:
                    await run_load(url, model, args, tally, progress)  # type: ignore[arg-type]
                finally:
                    s.cancel()

            asyncio.run(main_async())
        wall = time.monotonic() - t_start
        if pid is not None:
            rss.append((wall, group_rss_bytes(pid)))
        # let the idle window pass, drive one scheduler step, and read what the scheduler still holds
        time.sleep(args.app_idle_s + 0.5)
        try:
            req = urllib.request.Request(url + "/v1/completions", headers={"content-type": "application/json"},
                                         data=json.dumps({"model": model, "prompt": "x", "max_tokens": 1}).encode())
            urllib.request.urlopen(req, timeout=120).read()
        except OSError as e:
            console.print(f"[red]final probe failed: {e}")
        time.sleep(1.0)
        metrics = scrape(url)
        lost = tally.sent - tally.answered - tally.errored
        # requests the engine finished, by reason (includes the final probe): tells whether an errored
        # request reached the engine at all
        finished = {k.split('finished_reason="')[1].split('"')[0]: v for k, v in metrics.items()
                    if k.startswith("vllm:request_success_total") and v}
        warm = next((b for t, b in rss if t >= 30), rss[-1][1] if rss else 0)
        fig = {
            "policy": "vllm (no plugin)" if args.no_plugin else args.policy, "duration_s": round(wall, 1), "concurrency": args.concurrency,
            "fanout": args.fanout, "max_tokens": args.max_tokens,
            "requests_sent": tally.sent, "answered": tally.answered, "errored": tally.errored, "lost": lost,
            "apps_started": tally.apps_started, "apps_done": tally.apps_done,
            "latency_p50_s": round(pct(tally.latencies, 50), 3), "latency_p99_s": round(pct(tally.latencies, 99), 3),
            "app_latency_p50_s": round(pct(tally.app_latencies, 50), 3),
            "app_latency_p99_s": round(pct(tally.app_latencies, 99), 3),
            "requests_per_s": round(tally.answered / wall, 2), "tokens_per_s": round(tally.tokens / wall, 1),
            "rss_start_mib": round(rss[0][1] / 2**20) if rss else None,
            "rss_after_warmup_mib": round(warm / 2**20) if rss else None,
            "rss_end_mib": round(rss[-1][1] / 2**20) if rss else None,
            "rss_by_process_start_mib": by_proc_start,
            "rss_by_process_end_mib": rss_by_process(pid) if pid is not None else {},
            "rss_samples_mib": " ".join(f"{t:.0f}s:{b / 2**20:.0f}" for t, b in rss),
            "active_apps_after_idle": metrics.get("justitia_active_apps"),
            "policy_fallbacks": metrics.get("justitia_policy_fallbacks_total"),
            "preemptions": metrics.get("justitia_preemptions_total"),
            "empty_answers": tally.empty,
            "engine_finished_by_reason": finished,
            "errors": tally.errors,
        }
        print(json.dumps(fig, indent=2))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(fig, f, indent=2)
        return 0 if lost == 0 and tally.errored == 0 else 1
    finally:
        if srv is not None:
            srv.stop()


if __name__ == "__main__":
    from justitia.lifecycle import run_stopping_servers

    sys.exit(run_stopping_servers(main, "load_test"))  # SIGTERM/SIGINT/SIGHUP stop the started server
