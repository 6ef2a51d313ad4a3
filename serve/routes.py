"""FastAPI routes: parse the request, dispatch to the ingress service, encode the answer. No logic here.

The routes are a module-level `APIRouter`; each handler finds the service on `request.app.state.service`
(the vLLM pattern), so this module knows the service only by the `Service` protocol (serve/deps.py) and the
ingress imports it, never the other way round. `create_api(service)` builds the app of one ingress
replica: it sets the state and calls `attach_router(app)`.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, get_origin

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ground.errors import (
    FilterConfigError,
    InvalidParameterError,
    NotReadyError,
    TraplineError,
)
from ground.problems import Problem, describe, fields, problems
from model_store import CropOptions
from model_store.core.filters import REGISTRY, SHORTCUTS
from model_store.core.refs import DEFAULT_ALIAS
from model_store.core.tiling import parse_tiling_option
from model_store.core.video import looks_like_clip
from serve.answers import ClipAsk, DetectAsk
from serve.bodies import (
    ERRORS,
    IMAGE_BODY,
    body_limit,
    check_clip_size,
    clip_sampling,
    error_response,
    image_bytes,
    read_body,
    request_id,
)
from serve.clip_protocol import clip_response
from serve.deps import Service, admin_auth, api_auth, in_thread, service_of
from serve.filter_routes import router as filters_router
from serve.protocol import (
    AliasMoveResponse,
    DetectResponse,
    ErrorResponse,
    HealthResponse,
    ModelsResponse,
    PromoteGateQuery,
    ReadyResponse,
    ReloadResponse,
    detect_response,
    filter_overrides,
)

logger = logging.getLogger("ray.serve.trapline")

def parse_filters(filters: str | None, shortcuts: dict[str, Any]) -> dict[str, Any] | None:
    parsed = None
    if filters:
        try:
            parsed = json.loads(filters)
        except json.JSONDecodeError as exc:
            raise FilterConfigError(f"filters is not valid JSON: {exc.msg} at {exc.pos} (got {filters!r})") from None
    return filter_overrides(parsed, shortcuts)


def _shortcut_parameters() -> Callable[..., dict[str, Any]]:
    """A dependency taking the detect route's shortcut query parameters, one per registered filter's `shortcut`
    (model_store/core/filters/): generated, so a filter's field is named in its filter's module only, and listed in
    the OpenAPI schema like the route's own parameters."""
    params = []
    for param, (name, field) in SHORTCUTS.items():
        info = REGISTRY[name].config_model.model_fields[field]
        listed = get_origin(info.annotation) is list
        text = (f"shortcut for filters={{\"{name}\": {{\"{field}\": ...}}}}"
                f"{' (comma-separated)' if listed else ''}: {info.description}")
        params.append(inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY, default=Query(None, description=text),
                                        annotation=(str if listed else info.annotation) | None))

    def shortcuts(**given: Any) -> dict[str, Any]:
        return given

    shortcuts.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return shortcuts


filter_shortcuts = _shortcut_parameters()


# CropOptions' field -> the query parameter giving it (`crop_min_size`: named for the field before it was
# `min_side_px`, apart from the min_size filter; users type it still)
CROP_PARAMS = {"padding": "crop_padding", "square": "crop_square", "min_side_px": "crop_min_size"}


def crop_options(crops: bool, render: bool, padding: float, square: bool, min_side_px: int) -> CropOptions | None:
    """The snip options of `?crops=true` (None without it), checked as CropOptions checks them."""
    if not crops:
        return None
    if render:
        raise InvalidParameterError("give crops=true or render=true, not both")
    try:
        return CropOptions(padding=padding, square=square, min_side_px=min_side_px)
    except ValidationError as exc:
        found = [Problem((CROP_PARAMS[p.path[0]], *p.path[1:]) if p.path else (), p.message, p.value, p.missing)
                 for p in problems(exc)]
        raise InvalidParameterError(describe(found), fields=fields(found)) from None


def create_api(service: Service) -> FastAPI:
    """The FastAPI app of one ingress replica (built at replica start, never at import)."""
    cfg = service.config
    api = FastAPI(
        title="trapline", version="1", docs_url="/docs", redoc_url=None,
        description="Object detection for camera-trap images. Send image bytes to POST /v1/detect.",
    )
    api.state.service = service
    if cfg.http.cors_origins:
        api.add_middleware(CORSMiddleware, allow_origins=cfg.http.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"])
    attach_router(api)
    return api


def attach_router(app: FastAPI) -> None:
    """Add the routes and the error handlers to `app`, whose `state.service` answers them."""
    app.include_router(router)
    app.include_router(filters_router)
    app.add_exception_handler(TraplineError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)


async def _api_error(request: Request, exc: TraplineError) -> JSONResponse:
    if exc.status is None:  # not the client's fault: logged, and answered as any other failure
        return await _internal_error(request, exc)
    return error_response(exc, request)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    found = problems(exc)  # FastAPI's paths start with where the value was: "body.kind", "query.limit"
    return error_response(InvalidParameterError(describe(found), fields=fields(found, "body")), request)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = {"error": {"type": kind, "message": str(exc.detail), "request_id": request_id(request)}}
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("request_id=%s %s %s failed: %r", request_id(request), request.method, request.url.path, exc,
                 exc_info=exc)
    body = {"error": {"type": "internal_error", "message": "internal error; see the service logs",
                      "request_id": request_id(request)}}
    return JSONResponse(body, status_code=500)


router = APIRouter()


@router.get("/healthz", tags=["health"], summary="Liveness: the ingress answers")
async def healthz() -> HealthResponse:
    return HealthResponse(status="ok")


@router.get("/readyz", tags=["health"], summary="Readiness: every model serves its default alias",
            responses={503: {"model": ErrorResponse}}, response_model=ReadyResponse)
async def readyz(request: Request) -> ReadyResponse:
    ready, detail = await service_of(request).readiness()
    if not ready:
        reasons = "; ".join(f"{name}: {d['reason']}" for name, d in detail.items() if d["reason"])
        raise NotReadyError(f"not ready: {reasons}", models=detail)
    return ReadyResponse(status="ready", models=detail)


@router.get("/v1/models", tags=["models"], summary="Served models, the version live per alias, loaded versions",
            dependencies=[Depends(api_auth)], responses=ERRORS, response_model=ModelsResponse)
async def list_models(request: Request) -> ModelsResponse:
    return await service_of(request).models()


@router.post("/v1/detect", tags=["detect"], summary="Detect objects in one image",
             response_model=DetectResponse, dependencies=[Depends(api_auth)], openapi_extra=IMAGE_BODY,
             responses={**ERRORS, 200: {"content": {"application/json": {}, "image/jpeg": {}},
                                        "description": "detections (JSON), or the annotated image with render=true"}})
async def detect(
    request: Request,
    model: str | None = Query(None, description="model name (default: the serve config's default_model)"),
    version: str | None = Query(None, description="pin a version, e.g. 3"),
    alias: str | None = Query(None, description="a served alias (default: the model's first, e.g. production)"),
    filters: str | None = Query(None, description="JSON overrides {filter name: its config fields, or null to remove "
                                                  "the filter} (GET /v1/filters describes each filter's config)"),
    shortcuts: dict[str, Any] = Depends(filter_shortcuts),
    render: bool = Query(False, description="return the image as JPEG with the boxes drawn"),
    verbose: bool = Query(False, description="add flags, pixel boxes, dropped detections, classifier scores"),
    classify: bool = Query(True, description="run the model's classifiers on its routed detections"),
    crops: bool = Query(False, description="add each kept detection's snip as a base64 JPEG (at most the serve "
                                           "config's http.max_crops, highest scores first)"),
    crop_padding: float = Query(0.0, description="with crops=true: grow each box by this fraction per side"),
    crop_square: bool = Query(False, description="with crops=true: square snips"),
    crop_min_size: int = Query(0, description="with crops=true: no snip for boxes under this many pixels"),
    sampling: str | None = Query(None, description="a clip: which frames go through the detector, '1s' (one every "
                                                   "N seconds), '5f' (every Nth frame) or 'all' (default: the "
                                                   "serve config's http.clip_sampling)"),
    tiling: str | None = Query(None, description="tiled inference for small animals: on, off, megadetector "
                                                 "(MegaDetector's run_tiled_inference), or a JSON object of "
                                                 "settings over the model's (tile_size, overlap, whole_image, merge, "
                                                 "match_metric, match_threshold, min_box_px...; docs/guide/tiling.md); "
                                                 "default: the model's config"),
) -> Response:
    # "\f" keeps the reason out of the OpenAPI page: FastAPI cuts a route's docstring there
    """
    \fFifteen parameters: FastAPI reads each as a query parameter of `POST /v1/detect` (their names and help are
    the HTTP API, listed in the OpenAPI page), the request itself for the body."""
    t0 = time.perf_counter()
    service = service_of(request)
    overrides = parse_filters(filters, shortcuts)
    tiles = parse_tiling_option(tiling)
    snips = crop_options(crops, render, crop_padding, crop_square, crop_min_size)
    service.refuse_early(model)
    http = service.config.http
    data = await image_bytes(request, await read_body(request, body_limit(request, http)))
    if looks_like_clip(data):
        check_clip_size(data, http)
        ask = ClipAsk(model=model, version=version, alias=alias, filters=overrides,
                      sampling=clip_sampling(http, sampling), tiling=tiles)
        clip = await service.detect_clip(ask, data)
        body_out = clip_response(clip, verbose)
        body_out.timing_ms["total"] = round((time.perf_counter() - t0) * 1000, 3)
        return JSONResponse(body_out.model_dump(mode="json", exclude_none=True),
                            headers={"X-Model": f"{clip.model.name}:{clip.model.version}"})
    answer = await service.detect(DetectAsk(model=model, version=version, alias=alias, filters=overrides, render=render,
                                            classify=classify, crops=snips, tiling=tiles), data)
    record = answer.record
    headers = {"X-Model": f"{record.model.name}:{record.model.version}"}
    if render:
        headers["X-Detections"] = str(len(record.detections))
        return Response(answer.jpeg, media_type="image/jpeg", headers=headers)
    timing = {**record.timing_ms, "total": round((time.perf_counter() - t0) * 1000, 3)}
    response = detect_response(answer, timing, verbose)
    # Serialised by pydantic-core straight to JSON text: 25 us an answer against 111 us through model_dump's dict
    # and JSONResponse's json.dumps (five detections; benchmarks/results/NOTES.md section 2).
    return Response(response.model_dump_json(exclude_none=True), media_type="application/json", headers=headers)


@router.post("/v1/admin/models/{model}/promote", tags=["admin"], dependencies=[Depends(admin_auth)],
             responses=ERRORS, response_model=AliasMoveResponse,
             summary="Move an alias to a version (loaded, verified, warmed on every replica first)")
async def promote(request: Request, model: str, gate: Annotated[PromoteGateQuery, Query()],
                  version: str = Query(..., description="version to promote"),
                  alias: str = Query(DEFAULT_ALIAS)) -> AliasMoveResponse:
    # The gate (batch/views/promote_gate.py) is the house's: the online door alone has no tables
    checks = getattr(request.app.state, "trapline_promote_gate", None)
    if checks is None:
        outcome = {"ran": False, "reason": "this service has no views over tables (the online door alone): the gate "
                                           "was not run", "forced": False}
    else:
        outcome = await checks(request, model, version, alias, gate)
    service = service_of(request)
    moved = await service.promote(model, version, alias)
    if outcome.get("forced"):  # the middleware's entry keeps only the answer's start: who, why and the figures here
        await in_thread(service.audit.append, outcome.get("who") or "?", f"promote {model}:{version} "
                        f"@{alias} forced past the gate", "done", reason=gate.reason, gate=outcome)
    return moved.model_copy(update={"gate": outcome})


@router.post("/v1/admin/models/{model}/rollback", tags=["admin"], dependencies=[Depends(admin_auth)],
             responses=ERRORS, response_model=AliasMoveResponse,
             summary="Return an alias to the version it pointed at before")
async def rollback(request: Request, model: str, alias: str = Query(DEFAULT_ALIAS)) -> AliasMoveResponse:
    return await service_of(request).rollback(model, alias)


@router.post("/v1/admin/models/{model}/reload", tags=["admin"], dependencies=[Depends(admin_auth)],
             responses=ERRORS, response_model=ReloadResponse,
             summary="Re-read aliases from the store now and retry refused versions")
async def reload(request: Request, model: str) -> ReloadResponse:
    return await service_of(request).reload(model)
