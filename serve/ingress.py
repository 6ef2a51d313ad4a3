"""The ingress deployment: dispatches HTTP requests to the model deployments and runs the admin actions.

The routes themselves (parsing and encoding) are in serve/routes.py; this class holds the
handles, the store and the tokens. The token checks are serve/auth.py's, the mapping of Ray/Serve and
store failures to typed API errors serve/api_errors.py's, the merge of replicas' status serve/model_status.py's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.exceptions import DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle

from ground.errors import (
    CropGeometryChangedError,
    InvalidParameterError,
    NotFoundError,
    NotReadyError,
    TraplineError,
)
from model_store import ImageDetections, ModelRef, ModelStore
from model_store.core.clip_sampling import Sampling
from model_store.core.clips import ClipDetections
from model_store.core.refs import DEFAULT_ALIAS, check_segment
from model_store.core.video import looks_like_clip
from serve import classifier_deployment_name, detector_deployment_name
from serve.answers import ClipAsk, CropGeometry, DetectAnswer, DetectAsk, PreloadedVersion, ReplicaStatus
from serve.api_errors import await_replica, store_call
from serve.audit import AuditLog, AuditMiddleware
from serve.auth import Tokens, bearer_ok, token_digest
from serve.clip_protocol import clip_response
from serve.compose import Composer, CropRequest
from serve.config import ServeConfig
from serve.draining import Gate
from serve.model_status import merged_status
from serve.people import PeopleView, people_location
from serve.people_routes import attach_people
from serve.placement import PlacementWatch, replica_app_name
from serve.protocol import (
    AliasMoveResponse,
    ModelsResponse,
    ModelStatusOut,
    ReloadResponse,
    core_error,
    detect_response,
    unwrap_error,
)
from serve.recording.identify import Sighting, online_identifiers
from serve.recording.recorder import Recorder, Upload
from serve.recording.routes import attach_recording
from serve.recording.uploads import UploadRecord
from serve.roles import Person, Role
from serve.routes import create_api

# Importable from here too, where the app builder and the tests have always found them.
__all__ = ["ADMIN_TIMEOUT_S", "CLASSIFIER_VERSION_TTL_S", "CONTROL_TIMEOUT_S", "Feature", "IngressCore",
           "TraplineIngress", "bearer_ok", "token_digest"]

logger = logging.getLogger("ray.serve.trapline")

# A feature the house composes over the online door: it adds its routers (and start-up tasks) to the ingress's app.
# The online door's own routes (detect, models, admin, recording) are always there; the control plane over the
# archive door (batch/jobs/) and the views over its tables (batch/views/) are two such features, passed in by
# trapline/service.py, which stands above both doors.
Feature = Callable[[FastAPI, "IngressCore"], None]

CLASSIFIER_VERSION_TTL_S = 2.0  # as often as replicas re-read their aliases (alias_poll_interval_s)
CONTROL_TIMEOUT_S = 5.0  # status broadcasts (GET /v1/models, /readyz)
ADMIN_TIMEOUT_S = 600.0  # a promote waits for every replica to load and warm the version


class IngressCore:
    """HTTP front door of the trapline app (wrapped as the `TraplineIngress` deployment class below).

    Lifecycle: `__init__` runs once per ingress replica with the validated config (as a dict),
    one handle per model deployment and the sha256 digests of the admin / API tokens (read
    from the environment by `build_app`, so the tokens never travel in the app config). Serve
    then calls `__serve_build_asgi_app__` to get the FastAPI app (serve/routes.py), whose
    routes call the async methods below. Nothing here loads a model. With classifiers, `classifiers`
    holds one handle per classifier deployment: detect sends the detector's crops to them and
    attaches the answers (serve/compose.py); the admin and status routes cover them like detectors.
    `features` add their routers to the app after the online door's own (`Feature` above).
    """

    def __init__(self, config: dict[str, Any], detectors: dict[str, DeploymentHandle],
                 admin_token_sha256: str | None = None, api_token_sha256: str | None = None,
                 classifiers: dict[str, DeploymentHandle] | None = None, features: Sequence[Feature] = (),
                 antenna: DeploymentHandle | None = None) -> None:
        """Seven parameters: Serve passes the `.bind(...)` arguments of `serve/app.py` to the replica's constructor, so
        they are plain picklable values, one per piece the deployment graph binds (config, handles, digests)."""
        self.config = ServeConfig.model_validate(config)
        self.antenna = antenna  # the Antenna door (serve/antenna/), bound here so that Serve deploys it
        self.handles = detectors
        self.classifier_handles = dict(classifiers or {})
        self.composer = Composer({m.name: m.classify for m in self.config.models}, self.classifier_handles, self.call)
        self.store = ModelStore(self.config.store, cache_dir=self.config.cache_dir)
        self.people_location = people_location(self.config.people.location, self.store.root)
        self.tokens = Tokens(admin_token_sha256, api_token_sha256, self.config.admin_token_env,
                             PeopleView(self.people_location, self.config.people.refresh_s))
        self.audit = AuditLog(self.people_location)
        self._retry_after = {"Retry-After": str(self.config.http.retry_after_s)}
        self.gate = Gate(self.config.http.retry_after_s)  # closed by `drain` when the service stops
        self.recorder = Recorder(self.config.record, self.store) if self.config.record else None
        self.identifiers = online_identifiers(self.config)  # detector -> re-identification (loaded lazily)
        self._classifier_versions: dict[str, tuple[float, str]] = {}
        self.features = tuple(features)
        self.placement: PlacementWatch | None = None  # made on the first not-ready /readyz
        if not admin_token_sha256:
            logger.info("admin routes are disabled: $%s was not set when the app was built",
                        self.config.admin_token_env)

    def __serve_build_asgi_app__(self) -> FastAPI:
        api = create_api(self)
        attach_recording(api)
        attach_people(api)
        for attach in self.features:  # /v1/jobs, the console, the views (batch/, via trapline/service.py)
            attach(api, self)
        api.add_middleware(AuditMiddleware, audit=self.audit)  # every operator's and admin's action
        self.gate.attach(api)  # last: it stands before every route above
        return api

    async def drain(self, timeout_s: float) -> int:
        """The service stops (serve/stopping.py broadcasts this to every replica that handles HTTP): new requests get
        503 + Retry-After from now on; returns once the requests inside are answered, with how many there were."""
        return await self.gate.close(timeout_s)

    def __del__(self) -> None:
        """Replica shutdown: the recorder commits what it buffered and releases its lease."""
        recorder = getattr(self, "recorder", None)
        if recorder is not None:
            recorder.close()
        tokens = getattr(self, "tokens", None)
        if tokens is not None and tokens.people is not None:
            tokens.people.close()

    # -- auth ------------------------------------------------------------------------------------
    def authorize(self, authorization: str | None, role: Role) -> Person:
        """The person the request's token names, if their role is at least `role` (serve/auth.py)."""
        return self.tokens.authorize(authorization, role)

    def check_api_token(self, authorization: str | None) -> None:
        self.tokens.check_api(authorization)

    def check_admin_token(self, authorization: str | None) -> None:
        self.tokens.check_admin(authorization)

    def link_key(self) -> bytes:
        """The key that signs the console's report links (serve/auth.py `Tokens.link_key`)."""
        return self.tokens.link_key()

    # -- dispatch --------------------------------------------------------------------------------
    def handle(self, model: str | None) -> tuple[str, DeploymentHandle]:
        name = model or self.config.default_model
        if name in self.classifier_handles:
            raise NotFoundError(f"{name!r} is a classifier: send images to a detector (served: "
                                     f"{sorted(self.handles)}), which has it classify its detections", model=name)
        if name not in self.handles:
            raise NotFoundError(f"model {name!r} is not served here (served: {sorted(self.handles)})", model=name)
        return name, self.handles[name]

    def deployment(self, model: str) -> tuple[str, DeploymentHandle]:
        """A detector's or a classifier's handle (the admin and status routes act on both kinds)."""
        if model in self.classifier_handles:
            return model, self.classifier_handles[model]
        if model not in self.handles:
            served = sorted([*self.handles, *self.classifier_handles])
            raise NotFoundError(f"model {model!r} is not served here (served: {served})", model=model)
        return model, self.handles[model]

    def ref(self, model: str, version: str | None, alias: str | None) -> str | None:
        if version and alias:
            raise InvalidParameterError("give version or alias, not both")
        try:
            if version:
                return str(ModelRef(model, version=version))
            if alias:
                return str(ModelRef(model, alias=alias))
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from None
        return None

    async def call(self, awaitable) -> Any:
        """Await a handle call; replica errors come back as typed API errors, overload as 503."""
        return await await_replica(awaitable, self._retry_after)

    def refuse_early(self, model: str | None) -> None:
        """Called before the body is read; with a separate ingress the model's replica decides (nothing here)."""

    async def detect(self, ask: DetectAsk, data: bytes) -> DetectAnswer:
        """Detect, then classify the routed detections (unless `ask.classify` is false or `ask.render`) and add snips.

        The answer's `.record` is the image's typed `ImageDetections`, classifications attached; the router
        builds the HTTP body from it, and whatever else wants the request's result (a recorder) reads it there.
        """
        name, handle = self.handle(ask.model)
        ref = self.ref(name, ask.version, ask.alias)
        for attempt in range(2):
            request = None if ask.render else await self.composer.crop_request(name, ask.classify, ask.crops,
                                                                               self.config.http.max_crops)
            answer: DetectAnswer = await self.call(self.detect_on(name, handle, data, ref, ask, request))
            try:
                answer = await self.composer.finish(name, answer, request)
                break
            except CropGeometryChangedError as exc:  # a classifier swap changed how crops are cut: once more
                if attempt:
                    raise
                self.composer.learn(exc.extra["classifier"], CropGeometry(
                    version=exc.extra.get("version"), padding=exc.extra["padding"], square=exc.extra["square"]))
        identifier = self.identifiers.get(name)
        if identifier is not None and not ask.render and answer.record.detections:
            t0 = time.perf_counter()
            answer.sightings = await asyncio.to_thread(identifier.identify_upload, data, answer.record)  # CPU work
            answer.record.timing_ms["identify"] = round((time.perf_counter() - t0) * 1000, 3)
        return answer

    async def detect_clip(self, ask: ClipAsk, data: bytes) -> ClipDetections:
        """A short clip through the model's replica: its sampled frames' detections and its tracks."""
        name, handle = self.handle(ask.model)
        return await self.call(self.clip_on(name, handle, data, self.ref(name, ask.version, ask.alias), ask))

    def clip_on(self, name: str, handle: DeploymentHandle, data: bytes, ref: str | None,
                ask: ClipAsk) -> Awaitable[ClipDetections]:
        """The replica's clip call (OneHopCore runs it in process)."""
        return handle.detect_clip.remote(data, ref, ask.filters, ask.sampling, tiling=ask.tiling)

    async def record(self, recorder: Recorder, upload: Upload) -> tuple[UploadRecord, bool]:
        """`POST /v1/images`: the recorder keeps the upload and journals what this service's detect answers."""
        name, _ = self.handle(upload.model)
        served = self.config.model(name)
        ref = str(ModelRef(name, alias=served.aliases[0] if served else DEFAULT_ALIAS))

        sightings: list[Sighting] = []

        async def detect(data: bytes) -> tuple[ImageDetections | ClipDetections, dict[str, Any]]:
            if looks_like_clip(data):  # a clip is recorded as one row, like the archive's clips
                http = self.config.http
                sampling = Sampling.parse(http.clip_sampling, http.clip_max_frames).model_dump()
                clip = await self.detect_clip(ClipAsk(model=name, sampling=sampling), data)
                return clip, clip_response(clip).model_dump(mode="json", exclude_none=True)
            answer = await self.detect(DetectAsk(model=name), data)
            sightings.extend(answer.sightings)
            body = detect_response(answer, dict(answer.record.timing_ms)).model_dump(mode="json", exclude_none=True)
            return answer.record, body

        recorded = await recorder.record(upload, ref, detect, self.composer.classifiers_of(name),
                                         self.classifier_version)
        if sightings:  # journalled: the upload's animals join the gallery, so the next upload can match them
            await asyncio.to_thread(self.identifiers[name].join, sightings)
        return recorded

    async def classifier_version(self, name: str) -> str:
        """The version a classifier deployment serves now (asked at most every few seconds)."""
        now = time.monotonic()
        cached = self._classifier_versions.get(name)
        if cached is None or now - cached[0] > CLASSIFIER_VERSION_TTL_S:
            answer = await self.call(self.classifier_handles[name].geometry.remote())
            cached = self._classifier_versions[name] = (now, str(answer.version))
        return cached[1]

    def detect_on(self, name: str, handle: DeploymentHandle, data: bytes, ref: str | None, ask: DetectAsk,
                  request: CropRequest | None) -> Awaitable[DetectAnswer]:
        """The detector call (OneHopCore runs it in process)."""
        return handle.detect.remote(data, ref, ask.filters, ask.render, request, tiling=ask.tiling)

    async def _broadcast(self, name: str, method: str, *args: Any, timeout_s: float) -> list[Any]:
        """Call `method` on every running replica of a model; exceptions come back in the list."""
        try:
            return await self.deployment(name)[1].broadcast(method, *args).results_async(timeout_s=timeout_s,
                                                                                    return_exceptions=True)
        except TimeoutError:
            raise NotReadyError(f"replicas of {name!r} did not answer {method} within {timeout_s:.0f} s",
                                headers=self._retry_after) from None
        except DeploymentUnavailableError:
            return []  # no running replica at this instant (starting, or between two configs)

    async def model_status(self, name: str) -> ModelStatusOut:
        """One model as seen by all its replicas (aliases agree once a swap is done)."""
        results = await self._broadcast(name, "status", timeout_s=CONTROL_TIMEOUT_S)
        replicas: list[ReplicaStatus] = [r for r in results if isinstance(r, ReplicaStatus)]
        kind = "classifier" if name in self.classifier_handles else "detector"
        deployment = classifier_deployment_name(name) if kind == "classifier" else detector_deployment_name(name)
        classify = [r.model_dump(mode="json") for r in self.composer.classifiers_of(name)] \
            if kind == "detector" else None
        return merged_status(name, kind, deployment, classify, replicas)

    async def models(self) -> ModelsResponse:
        statuses = await asyncio.gather(*(self.model_status(n) for n in [*self.handles, *self.classifier_handles]))
        admin_routes = "enabled" if self.tokens.admin_enabled else "disabled"
        return ModelsResponse(models=list(statuses), admin_routes=admin_routes)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when every model has a replica serving its default alias."""
        detail = {}
        for name in [*self.handles, *self.classifier_handles]:
            try:
                status = await self.model_status(name)
            except TraplineError as exc:
                detail[name] = {"ready": False, "reason": exc.message}
                continue
            reason = None if status.ready else "no replica has loaded the default alias yet"
            detail[name] = {"ready": status.ready, "aliases": status.aliases, "reason": reason}
        ready = all(d["ready"] for d in detail.values())
        unplaced = {} if ready else await self.unplaced()
        for name, d in detail.items():  # a replica that cannot be placed is the reason, with its fix
            why = unplaced.get(classifier_deployment_name(name) if name in self.classifier_handles
                               else detector_deployment_name(name))
            if why and not d["ready"]:
                d["reason"] = why
        return ready, detail

    async def unplaced(self) -> dict[str, str]:
        """Deployment -> why Ray cannot place its replicas (serve/placement.py), for this replica's app."""
        if self.placement is None:
            self.placement = PlacementWatch(replica_app_name(), self.config)
        return await asyncio.to_thread(self.placement.check)

    # -- admin -----------------------------------------------------------------------------------
    async def _preload_everywhere(self, name: str, version: str) -> list[PreloadedVersion]:
        results = await self._broadcast(name, "preload", version, timeout_s=ADMIN_TIMEOUT_S)
        for res in results:
            if isinstance(res, BaseException):
                cause = unwrap_error(res)
                fallback = NotReadyError(f"a replica failed to load {name}:{version}: {cause}")
                raise (core_error(cause) or fallback) from None
        if not results:
            raise NotReadyError(f"{name!r} has no running replica to load {name}:{version}", headers=self._retry_after)
        return results

    async def _refresh_everywhere(self, name: str) -> list[ReplicaStatus]:
        results = await self._broadcast(name, "refresh", timeout_s=ADMIN_TIMEOUT_S)
        return [r for r in results if isinstance(r, ReplicaStatus)]

    async def promote(self, model: str, version: str, alias: str) -> AliasMoveResponse:
        """Load + verify + warm on every replica first, then move the alias; a broken version is refused."""
        name, _ = self.deployment(model)
        self._segments(version=version, alias=alias)
        await store_call(self.store.resolve, ModelRef(name, version=version))
        await self._preload_everywhere(name, version)
        record = await store_call(self.store.promote, ModelRef(name, version=version), alias)
        replicas = await self._refresh_everywhere(name)
        previous = record.history[-1] if record.history else None
        logger.info("admin: %s@%s -> %s (was %s)", name, alias, record.version, previous)
        return AliasMoveResponse(model=name, alias=alias, version=record.version, previous=previous,
                                 serving=[r.aliases for r in replicas])

    async def rollback(self, model: str, alias: str) -> AliasMoveResponse:
        """Return the alias to its previous version (loaded and warmed first on every replica)."""
        name, _ = self.deployment(model)
        self._segments(alias=alias)
        records = await store_call(self.store.aliases, name)
        current = records.get(alias)
        if current is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        if not current.history:
            raise InvalidParameterError(
                f"{name}@{alias} has no earlier version to roll back to (it is {current.version})")
        await self._preload_everywhere(name, current.history[-1])
        record = await store_call(self.store.rollback, name, alias)
        replicas = await self._refresh_everywhere(name)
        logger.info("admin: %s@%s rolled back to %s (was %s)", name, alias, record.version, current.version)
        return AliasMoveResponse(model=name, alias=alias, version=record.version, previous=current.version,
                                 serving=[r.aliases for r in replicas])

    async def reload(self, model: str) -> ReloadResponse:
        """Re-read aliases on every replica now, retrying versions that failed before."""
        name, _ = self.deployment(model)
        results = await self._broadcast(name, "refresh", True, timeout_s=ADMIN_TIMEOUT_S)
        return ReloadResponse(model=name, replicas=[r.model_dump(mode="json") if isinstance(r, ReplicaStatus)
                                                    else {"error": str(unwrap_error(r))} for r in results])

    @staticmethod
    def _segments(**values: str) -> None:
        try:
            for kind, value in values.items():
                check_segment(kind, value)
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from None


# The deployment class. The undecorated core stays importable so serve/one_hop.py can extend it:
# Serve's ingress wrapper is meant to be applied once, to the final class.
TraplineIngress = serve.ingress()(IngressCore)
