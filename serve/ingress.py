"""The ingress deployment: dispatches HTTP requests to the model deployments and runs the admin actions.

The routes themselves (parsing and encoding) are in serve/router.py; this class holds the
handles, the store and the tokens, and turns Ray/Serve failures into typed API errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle

from model_store import CropOptions, ImageDetections, ModelRef, ModelStore
from model_store.core.refs import DEFAULT_ALIAS, check_segment
from serve import classifier_deployment_name, detector_deployment_name
from serve.answers import CropGeometry, DetectAnswer, PreloadedVersion, RefusedVersionOut, ReplicaStatus
from serve.compose import Composer, CropRequest
from serve.config import ServeConfig
from serve.protocol import (
    AliasMoveResponse,
    LoadedVersionOut,
    ModelsResponse,
    ModelStatusOut,
    ReloadResponse,
    core_error,
    detect_response,
    load_error_kind,
    unwrap_error,
)
from serve.recording.identify import Sighting, online_identifiers
from serve.recording.recorder import Recorder, Upload
from serve.recording.routes import attach_recording
from serve.recording.uploads import UploadRecord
from serve.router import create_api
from serve.telemetry import merge_stats
from trapline.errors import (
    CropGeometryChangedError,
    ForbiddenError,
    InvalidParameterError,
    NotFoundError,
    NotReadyError,
    OverloadedError,
    TraplineError,
    UnauthorizedError,
    VersionRefusedError,
)

logger = logging.getLogger("ray.serve.trapline")

# A feature the house composes over the online door: it adds its routers (and start-up tasks) to the ingress's app.
# The online door's own routes (detect, models, admin, recording) are always there; the control plane over the
# archive door (batch/jobs/) is one such feature, passed in by trapline/service.py, which stands above both doors.
Feature = Callable[[FastAPI, "IngressCore"], None]

CLASSIFIER_VERSION_TTL_S = 2.0  # as often as replicas re-read their aliases (alias_poll_interval_s)
CONTROL_TIMEOUT_S = 5.0  # status broadcasts (GET /v1/models, /readyz)
ADMIN_TIMEOUT_S = 600.0  # a promote waits for every replica to load and warm the version


def token_digest(token: str | None) -> str | None:
    """sha256 hex of a token: the ingress keeps and compares digests, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def bearer_ok(authorization: str | None, digest: str | None) -> bool:
    """Constant-time check of an `Authorization: Bearer <token>` header against a token digest."""
    if not digest or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    return hmac.compare_digest(token_digest(token.strip()), digest)


class IngressCore:
    """HTTP front door of the trapline app (wrapped as the `TraplineIngress` deployment class below).

    Lifecycle: `__init__` runs once per ingress replica with the validated config (as a dict),
    one handle per model deployment and the sha256 digests of the admin / API tokens (read
    from the environment by `build_app`, so the tokens never travel in the app config). Serve
    then calls `__serve_build_asgi_app__` to get the FastAPI app (serve/router.py), whose
    routes call the async methods below. Nothing here loads a model. With classifiers, `classifiers`
    holds one handle per classifier deployment: detect sends the detector's crops to them and
    attaches the answers (serve/compose.py); the admin and status routes cover them like detectors.
    `features` add their routers to the app after the online door's own (`Feature` above).
    """

    def __init__(self, config: dict[str, Any], detectors: dict[str, DeploymentHandle],
                 admin_token_sha256: str | None = None, api_token_sha256: str | None = None,
                 classifiers: dict[str, DeploymentHandle] | None = None, features: Sequence[Feature] = ()) -> None:
        self.config = ServeConfig.model_validate(config)
        self.handles = detectors
        self.classifier_handles = dict(classifiers or {})
        self.composer = Composer({m.name: m.classify for m in self.config.models}, self.classifier_handles, self.call)
        self.store = ModelStore(self.config.store, cache_dir=self.config.cache_dir)
        self._admin_digest = admin_token_sha256
        self._api_digest = api_token_sha256
        self._retry_after = {"Retry-After": str(self.config.http.retry_after_s)}
        self.recorder = Recorder(self.config.record, self.store) if self.config.record else None
        self.identifiers = online_identifiers(self.config)  # detector -> re-identification (loaded lazily)
        self._classifier_versions: dict[str, tuple[float, str]] = {}
        self.features = tuple(features)
        if not admin_token_sha256:
            logger.info("admin routes are disabled: $%s was not set when the app was built",
                        self.config.admin_token_env)

    def __serve_build_asgi_app__(self) -> FastAPI:
        api = create_api(self)
        attach_recording(api)
        for attach in self.features:  # e.g. /v1/jobs, the console and its views (batch/jobs/, via trapline/service.py)
            attach(api, self)
        return api

    def __del__(self) -> None:
        """Replica shutdown: the recorder commits what it buffered and releases its lease."""
        recorder = getattr(self, "recorder", None)
        if recorder is not None:
            recorder.close()

    # -- auth ------------------------------------------------------------------------------------
    def check_api_token(self, authorization: str | None) -> None:
        # The admin token reads too (the console and `trapline jobs` hold one token).
        if self._api_digest and not bearer_ok(authorization, self._api_digest) \
                and not bearer_ok(authorization, self._admin_digest):
            raise UnauthorizedError("this service needs `Authorization: Bearer <token>`",
                                    headers={"WWW-Authenticate": "Bearer"})

    def link_key(self) -> bytes:
        """The key that signs the console's report links: derived from the token digests, so every replica has
        it, and a new token voids the links signed under the old one."""
        material = f"trapline report links\n{self._api_digest or ''}\n{self._admin_digest or ''}"
        return hashlib.sha256(material.encode()).digest()

    def check_admin_token(self, authorization: str | None) -> None:
        if not self._admin_digest:
            raise ForbiddenError(
                f"admin routes are disabled: set ${self.config.admin_token_env} where the app is built")
        if not bearer_ok(authorization, self._admin_digest):
            raise UnauthorizedError("admin routes need `Authorization: Bearer <admin token>`",
                                    headers={"WWW-Authenticate": "Bearer"})

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
        try:
            return await awaitable
        except BackPressureError as exc:
            raise OverloadedError(f"the model is at capacity ({exc}); retry shortly",
                                  headers=self._retry_after) from None
        except DeploymentUnavailableError as exc:
            raise NotReadyError(f"no replica can take the request: {exc}", headers=self._retry_after) from None
        except (RayActorError, ActorUnavailableError) as exc:
            # The replica died (or became unreachable) with this request on it: a transient server-side
            # fault that a retry fixes once Serve has replaced it, so 503 + Retry-After, not 500.
            logger.warning("replica lost while serving a request: %s", str(exc).splitlines()[0] if str(exc) else exc)
            raise NotReadyError("the replica handling this request stopped; retry shortly",
                                headers=self._retry_after) from None
        except Exception as exc:  # noqa: BLE001 - map what the replica raised
            cause = unwrap_error(exc)
            api = core_error(cause)
            if api is not None:
                raise api from None
            if isinstance(cause, BackPressureError):
                raise OverloadedError(str(cause), headers=self._retry_after) from None
            raise

    def refuse_early(self, model: str | None) -> None:
        """Called before the body is read; with a separate ingress the model's replica decides (nothing here)."""

    async def detect(self, model: str | None, version: str | None, alias: str | None, data: bytes,
                     filters: dict[str, Any] | None, render: bool, classify: bool = True,
                     crops: CropOptions | None = None) -> DetectAnswer:
        """Detect, then classify the routed detections (unless `classify` is false or `render`) and add snips.

        The answer's `.record` is the image's typed `ImageDetections`, classifications attached; the router
        builds the HTTP body from it, and whatever else wants the request's result (a recorder) reads it there.
        """
        name, handle = self.handle(model)
        ref = self.ref(name, version, alias)
        for attempt in range(2):
            request = None if render else await self.composer.crop_request(name, classify, crops,
                                                                           self.config.http.max_crops)
            answer: DetectAnswer = await self.call(self.detect_on(name, handle, data, ref, filters, render, request))
            try:
                answer = await self.composer.finish(name, answer, request)
                break
            except CropGeometryChangedError as exc:  # a classifier swap changed how crops are cut: once more
                if attempt:
                    raise
                self.composer.learn(exc.extra["classifier"], CropGeometry(
                    version=exc.extra.get("version"), padding=exc.extra["padding"], square=exc.extra["square"]))
        identifier = self.identifiers.get(name)
        if identifier is not None and not render and answer.record.detections:
            t0 = time.perf_counter()
            answer.sightings = await asyncio.to_thread(identifier.identify_upload, data, answer.record)  # CPU work
            answer.record.timing_ms["identify"] = round((time.perf_counter() - t0) * 1000, 3)
        return answer

    async def record(self, recorder: Recorder, upload: Upload) -> tuple[UploadRecord, bool]:
        """`POST /v1/images`: the recorder keeps the upload and journals what this service's detect answers."""
        name, _ = self.handle(upload.model)
        served = self.config.model(name)
        ref = str(ModelRef(name, alias=served.aliases[0] if served else DEFAULT_ALIAS))

        sightings: list[Sighting] = []

        async def detect(data: bytes) -> tuple[ImageDetections, dict[str, Any]]:
            answer = await self.detect(name, None, None, data, None, False)
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

    def detect_on(self, name: str, handle: DeploymentHandle, data: bytes, ref: str | None,
                  filters: dict[str, Any] | None, render: bool,
                  request: CropRequest | None) -> Awaitable[DetectAnswer]:
        """The detector call (OneHopCore runs it in process)."""
        return handle.detect.remote(data, ref, filters, render, request)

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
        if not replicas:
            return ModelStatusOut(name=name, kind=kind, deployment=deployment, replicas=[], classify=classify,
                                  ready=False, default_alias=None, aliases={}, store_aliases={}, versions=[],
                                  errors=[], batching=None, stats=merge_stats([]))
        first = replicas[0]
        versions: dict[str, LoadedVersionOut] = {}
        errors: dict[tuple, RefusedVersionOut] = {}
        for rep in replicas:
            for v in rep.versions:
                merged = versions.setdefault(v.version, LoadedVersionOut(
                    version=v.version, sha256=v.sha256, device=v.device, pinned=v.pinned))
                merged.aliases = sorted({*merged.aliases, *v.aliases})
            for e in rep.errors:
                errors[(e.version, e.type)] = e
        same_aliases = all(r.aliases == first.aliases for r in replicas)
        return ModelStatusOut(
            name=name, kind=kind, deployment=deployment, replicas=replicas, classify=classify,
            ready=all(rep.aliases.get(rep.default_alias) for rep in replicas),
            default_alias=first.default_alias,
            aliases=first.aliases if same_aliases
            else {a: sorted({str(r.aliases.get(a)) for r in replicas}) for a in first.aliases},
            store_aliases=first.store_aliases,
            versions=list(versions.values()),
            errors=list(errors.values()),
            batching=first.batching,
            stats=merge_stats([r.stats for r in replicas]),
        )

    async def models(self) -> ModelsResponse:
        statuses = await asyncio.gather(*(self.model_status(n) for n in [*self.handles, *self.classifier_handles]))
        return ModelsResponse(models=list(statuses), admin_routes="enabled" if self._admin_digest else "disabled")

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
        return all(d["ready"] for d in detail.values()), detail

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

    async def _in_thread(self, fn, *args):
        """Run a blocking store call; its errors become API errors."""
        try:
            return await asyncio.to_thread(fn, *args)
        except TraplineError as exc:
            if exc.code in ("checksum_mismatch", "invalid_config"):
                raise VersionRefusedError(str(exc), reason=load_error_kind(exc)) from None
            # not_found -> 404; the rest (nothing to roll back to, an invalid alias) is a bad parameter
            raise (core_error(exc) or InvalidParameterError(str(exc))) from None
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from None

    async def promote(self, model: str, version: str, alias: str) -> AliasMoveResponse:
        """Load + verify + warm on every replica first, then move the alias; a broken version is refused."""
        name, _ = self.deployment(model)
        self._segments(version=version, alias=alias)
        await self._in_thread(self.store.resolve, ModelRef(name, version=version))
        await self._preload_everywhere(name, version)
        record = await self._in_thread(self.store.promote, ModelRef(name, version=version), alias)
        replicas = await self._refresh_everywhere(name)
        previous = record.history[-1] if record.history else None
        logger.info("admin: %s@%s -> %s (was %s)", name, alias, record.version, previous)
        return AliasMoveResponse(model=name, alias=alias, version=record.version, previous=previous,
                                 serving=[r.aliases for r in replicas])

    async def rollback(self, model: str, alias: str) -> AliasMoveResponse:
        """Return the alias to its previous version (loaded and warmed first on every replica)."""
        name, _ = self.deployment(model)
        self._segments(alias=alias)
        records = await self._in_thread(self.store.aliases, name)
        current = records.get(alias)
        if current is None:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        if not current.history:
            raise InvalidParameterError(
                f"{name}@{alias} has no earlier version to roll back to (it is {current.version})")
        await self._preload_everywhere(name, current.history[-1])
        record = await self._in_thread(self.store.rollback, name, alias)
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
