"""``justitia cluster``: N vLLM replicas with the Justitia plugin behind one dispatcher, on Ray Serve.

Only argparse at top level (see :mod:`justitia.cli`); Ray loads in the handler. The Serve application
is :mod:`justitia.cluster.ray_app`.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from typing import Any

APP_NAME = "justitia"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "cluster", help="N vLLM replicas behind one application-fair dispatcher, on Ray Serve",
        description=("Start (or join with --address) a Ray instance, N vLLM replicas with the Justitia scheduler "
                     "plugin as Ray Serve deployments, and one OpenAI-compatible ingress on --port whose routing "
                     "is the Justitia dispatcher. /health answers 200 once every replica is ready."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--port", type=int, default=8000, help="the ingress's HTTP port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--address", default=None, help="join this Ray cluster (HOST:PORT) instead of starting one")
    p.add_argument("--policy", default="justitia", help="each replica's scheduler policy")
    p.add_argument("--placement", default="global", help="round-robin | least-loaded | affinity | global (global-late: simulator only)")
    p.add_argument("--spill", action="store_true", help="spill an app's calls when its fan-out exceeds its home")
    p.add_argument("--kv-tokens", type=int, default=None, help="KV cache of each replica, about N tokens")
    p.add_argument("--model", default=None, help="local Hugging Face model folder (default: the bundled one)")
    p.add_argument("--iteration-s", type=float, default=0.1,
                   help="the global reference's iteration time (its rate is Σ KV tokens / this)")
    p.add_argument("--app-idle-s", type=float, default=2.0, help="idle window that ends an application")
    p.add_argument("--replica-ports", type=int, default=None,
                   help="first loopback port of the replicas' vLLM servers (4 per replica; default --port + 40)")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    from justitia.cluster.placement import make_placement
    from justitia.policies import make_policy

    if args.replicas < 1:
        raise ValueError(f"--replicas must be >= 1, got {args.replicas}")
    if make_placement(args.placement).late:
        raise ValueError(f"--placement {args.placement} (late binding) is simulator-only for now: the Ray ingress "
                         "does not park calls yet (docs/scale-out.md); use global or affinity")
    make_policy(args.policy, 1.0, 1.0)
    if args.kv_tokens is not None and args.kv_tokens <= 0:
        raise ValueError(f"--kv-tokens must be a positive number of tokens, got {args.kv_tokens}")
    cluster = start_cluster(args)
    print(f"http://{args.host}:{args.port}/v1  ({args.replicas} replicas, placement {args.placement}; Ctrl-C stops)",
          flush=True)
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stop["now"]:
            time.sleep(1.0)
            cluster.poll_pgids()
    finally:
        cluster.shutdown()
    return 0


class RunningCluster:
    """What :func:`start_cluster` started: Ray (if local), the Serve app, the replicas' server groups."""

    def __init__(self, replicas: int, own_ray: bool) -> None:
        self.replicas = replicas
        self.own_ray = own_ray
        self.pgids: set[int] = set()
        self._last_poll = 0.0

    def poll_pgids(self) -> None:
        """Remember every replica server's process group (also after Ray restarted a replica)."""
        if time.monotonic() - self._last_poll < 5.0:
            return
        self._last_poll = time.monotonic()
        from ray import serve

        for i in range(self.replicas):
            try:
                h = serve.get_deployment_handle(f"replica-{i}", app_name=APP_NAME)
                self.pgids.add(int(h.pgid.remote().result(timeout_s=5)))
            except Exception:  # noqa: BLE001 - a restarting replica answers later
                pass

    def shutdown(self) -> None:
        import ray
        from ray import serve

        self._last_poll = 0.0
        self.poll_pgids()
        try:
            serve.shutdown()
        finally:
            if self.own_ray:
                ray.shutdown()
            for pg in self.pgids:  # servers whose actor was killed before it could stop them
                try:
                    os.killpg(pg, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


def start_cluster(args: argparse.Namespace) -> RunningCluster:
    """Start Ray (unless ``--address``), Serve on ``--port`` and the application; wait until it serves."""
    import ray
    from ray import serve

    from justitia.cluster.ray_app import build_app

    own = args.address is None
    if own:
        ray.init(include_dashboard=False, num_cpus=max(2, os.cpu_count() or 2), log_to_driver=False,
                 configure_logging=False)
    else:
        ray.init(address=args.address, log_to_driver=False, configure_logging=False)
    cluster = RunningCluster(args.replicas, own)
    try:
        serve.start(http_options={"host": args.host, "port": args.port}, detached=False)
        base = args.replica_ports if args.replica_ports is not None else args.port + 40
        kv = args.kv_tokens
        capacities = [float(kv if kv else 2048)] * args.replicas
        server_kwargs_list = []
        for i in range(args.replicas):
            server_kwargs_list.append({"model": args.model, "policy": args.policy, "kv_tokens": kv,
                                       "app_idle_s": args.app_idle_s, "port": None,
                                       "port_range": (base + 4 * i, base + 4 * i + 4)})
        app = build_app(server_kwargs_list, capacities, args.iteration_s, args.placement, args.app_idle_s,
                        spill=args.spill)
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        cluster.poll_pgids()
    except BaseException:
        cluster.shutdown()
        raise
    return cluster
