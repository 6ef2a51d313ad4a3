"""The Antenna door: a Serve deployment of the trapline app that answers Antenna's API on a port of its own.

Why a deployment with its own server: Antenna joins `/process` to the registered URL's root (urljoin drops any
path), so the API must sit at the root of a port; Ray Serve's HTTP options (one proxy port) are cluster-wide and an
application only gets a route prefix on that port, where `/readyz` is already trapline's own. So this replica runs
a uvicorn server on `antenna.port` on the running Serve event loop, next to Serve, with the same lifecycle as the
rest of the app (deployed, health-checked, restarted and torn down with it, under `trapline serve` and under
`serve deploy` alike). It is bound into the ingress (serve/app.py), so Serve deploys it, and it finds the ingress
by name at run time: every image goes through the ingress's own `detect`, the path of `POST /v1/detect`.
One replica: a second one on the same node could not bind the port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import Any

import uvicorn
from ray import serve

from ground.errors import OverloadedError
from model_store import ImageDetections, ModelStore
from serve.answers import DetectAsk
from serve.antenna.catalog import Catalog
from serve.antenna.fetch import ImageFetcher
from serve.antenna.process import Processor
from serve.antenna.records import SourceRecorder
from serve.antenna.routes import create_door_app
from serve.antenna.secret import require_secret
from serve.api_errors import await_replica
from serve.config import ServeConfig
from serve.draining import Gate
from serve.placement import PlacementWatch, replica_app_name

logger = logging.getLogger("ray.serve.trapline")

OVERLOAD_RETRIES = 10
BIND_RETRY_S = 60.0  # a rolling update starts the new replica while the old one may still hold the port


def bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class AntennaDoor:
    """Lifecycle: `__init__` runs once per (single) replica with the app's validated config and the name of the
    deployment that handles HTTP; it starts the server as a task on Serve's user-code event loop and returns (no
    model is loaded here; with `antenna.record`, a recorder that takes its lease on the first image). `secret_digest`:
    the sha256 of `antenna.secret_env`'s secret, which every route but the probes then requires (serve/antenna/
    secret.py); None: the door is open to whoever reaches its port. `check_health`
    fails once the server has stopped, so Serve replaces the replica; `__del__` stops the server and closes the
    recorder (a last flush)."""

    def __init__(self, config: dict[str, Any], ingress_name: str, secret_digest: str | None = None) -> None:
        self.config = ServeConfig.model_validate(config)
        assert self.config.antenna is not None
        self.antenna = self.config.antenna
        app_name = replica_app_name()
        self.ingress = serve.get_deployment_handle(ingress_name, app_name=app_name)
        store = ModelStore(self.config.store, cache_dir=self.config.cache_dir)
        self.catalog = Catalog(self.config, store)
        # antenna.record: what is answered goes to the tables of `record:` too, through the online recorder
        self.recorder = None if self.antenna.record is None or self.config.record is None else SourceRecorder(
            self.antenna.record, self.config.record, store, {m.name: list(m.classify) for m in self.config.models},
            self._classifier_version)
        fetcher = ImageFetcher(self.antenna.fetch, self.antenna.fetch_guard())
        self.processor = Processor(self.catalog, self._detect, fetcher,
                                   self.recorder.record if self.recorder is not None else None,
                                   fail_request=self.antenna.push_failures == "fail_request")
        self._retry_after = {"Retry-After": str(self.config.http.retry_after_s)}
        self.gate = Gate(self.config.http.retry_after_s)  # closed by `drain` when the service stops, as the ingress's
        # At most a batch per replica in flight per detector: a push request (or a pull worker's batch) larger than
        # the online lane admits then waits here instead of being refused image by image.
        self._slots = {p.detector: asyncio.Semaphore(self.sizing()["pipelines"][p.slug]["batch_size"])
                       for p in self.antenna.pipelines}
        door_app = create_door_app(self)
        require_secret(door_app, secret_digest)  # before any route: a request without it fetches and records nothing
        self.open = secret_digest is None
        self.gate.attach(door_app)  # last: it stands before every route
        self.server = uvicorn.Server(uvicorn.Config(door_app, log_level="warning", lifespan="off",
                                                    access_log=False))
        self.placement = PlacementWatch(app_name, self.config)
        self.task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        host, port = self.antenna.host, self.antenna.port
        for attempt in range(int(BIND_RETRY_S)):
            try:
                sock = bind_socket(host, port)
                break
            except OSError as exc:
                if attempt == 0:
                    logger.warning("antenna door: %s:%d is taken (%s); retrying for %.0f s", host, port,
                                   exc.strerror, BIND_RETRY_S)
                await asyncio.sleep(1.0)
        else:
            raise RuntimeError(f"antenna door: could not bind {host}:{port} within {BIND_RETRY_S:.0f} s")
        logger.info("antenna door: Antenna's processing-service API on http://%s:%d", host, port)
        if self.open and not _loopback(host):
            logger.warning("antenna door: bound on %s without antenna.secret_env: anyone who reaches port %d can "
                           "have images fetched, detected and recorded (SECURITY.md)", host, port)
        await self.server.serve(sockets=[sock])

    async def _detect(self, model: str, version: str, data: bytes, tiling: Any = None) -> ImageDetections:
        async with self._slots[model]:
            for attempt in range(OVERLOAD_RETRIES + 1):
                try:  # `tiling`: the pipeline's (None: the detector's own), resolved by the replica as /v1/detect's
                    ask = DetectAsk(model=model, version=version, tiling=tiling)
                    answer = await await_replica(self.ingress.detect.remote(ask, data), self._retry_after)
                    return answer.record
                except OverloadedError:  # the lane is shared with /v1/detect clients: wait for a place
                    if attempt == OVERLOAD_RETRIES:
                        raise
                    await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _classifier_version(self, name: str) -> str:
        """The version a classifier serves now (the recorder asks for a route no detection of the image took)."""
        return await await_replica(self.ingress.classifier_version.remote(name), self._retry_after)

    async def ready_slugs(self) -> list[str]:
        """The pipelines whose detector (and classifier) serve their default alias now (the ingress's readiness)."""
        try:
            _, detail = await asyncio.wait_for(self.ingress.readiness.remote(), self.antenna.ready_timeout_s)
            pipelines = await asyncio.to_thread(self.catalog.pipelines)
        except Exception as exc:  # noqa: BLE001 - not ready is the answer, whatever the cause
            logger.info("antenna door: not ready: %s", exc)
            return []

        def ready(name: str | None) -> bool:
            return name is None or bool(detail.get(name, {}).get("ready"))

        return [p.slug for p in pipelines if ready(p.config.detector) and ready(p.config.classifier)]

    async def unplaced(self) -> list[str]:
        """Why Ray cannot place replicas of this app (serve/placement.py): what /readyz says when nothing is ready."""
        return list((await asyncio.to_thread(self.placement.check)).values())

    def sizing(self) -> dict[str, Any]:
        """Images the pipelines' detectors batch at once over all their replicas: what a pull worker takes."""
        out = {}
        for p in self.antenna.pipelines:
            m = self.config.model(p.detector)
            out[p.slug] = {"detector": p.detector, "batch_size": m.max_batch_size * m.max_replicas}
        return {"pipelines": out, "batch_size": max(v["batch_size"] for v in out.values())}

    async def drain(self, timeout_s: float) -> int:
        """The service stops (serve/stopping.py `drain_app`): new requests get 503 + Retry-After from now on, as at the
        main door (a push batch is retried by Antenna, a pull worker leaves its batch for redelivery); returns once the
        requests inside are answered, with how many there were."""
        return await self.gate.close(timeout_s)

    async def check_health(self) -> None:
        if self.task.done():
            raise RuntimeError(f"antenna door's server stopped: {self.task.exception() or 'exited'}")

    def __del__(self) -> None:
        """Replica shutdown: stop the server; the recorder commits what it buffered and releases its lease."""
        server = getattr(self, "server", None)
        if server is not None:
            server.should_exit = True
        recorder = getattr(self, "recorder", None)
        if recorder is not None:
            recorder.close()
