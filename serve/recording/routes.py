"""HTTP routes of recording: `POST /v1/images` (an upload that is kept), `GET /v1/images/{image_id}`,
`GET /v1/cameras` and `GET /v1/cameras/{camera}/latest`. Parse, dispatch to the ingress core, encode; the
work is the recorder's (recorder.py) and the reads are queries.py's. Without `record:` in the config the
routes answer 404 `recording_disabled`, saying how to switch it on."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ground.errors import NotFoundError
from model_store.core.video import looks_like_clip
from model_store.tables.reader import Tables
from serve.bodies import ERRORS, IMAGE_BODY, body_limit, check_clip_size, image_and_fields, read_body
from serve.deps import api_auth, service_of
from serve.recording import queries
from serve.recording.recorder import Recorder, Upload
from serve.recording.uploads import UploadRecord

IMAGE_ID = r"^[0-9a-f]{32}$"


class UploadOut(BaseModel):
    """A recorded upload: where it is kept, when it was taken, what the served pipeline answered."""

    image_id: str
    camera: str
    status: str = Field(description="ok | empty | failed, as the images table's row")
    state: str = Field(description="pending (answered, journaled; in the tables after the next flush) | committed")
    duplicate: bool = Field(False, description="true when these bytes (or this Idempotency-Key) were recorded before: "
                                               "this is the first record, nothing was stored again")
    uri: str
    capture_time: dt.datetime = Field(description="naive; the camera's clock, or UTC for upload_utc / received")
    capture_time_source: str = Field(description="upload | upload_utc | exif | container (a clip) | received")
    received_at: dt.datetime | None = None
    model: dict[str, str]
    filters_hash: str
    answer: dict[str, Any] = Field(description="the /v1/detect answer for the image, or the error it got")
    snips: list[dict[str, Any]] = Field(default_factory=list)


class CameraOut(BaseModel):
    camera: str
    images: int = Field(description="distinct image files in the tables")
    newest_capture_time: dt.datetime | None


class CamerasOut(BaseModel):
    cameras: list[CameraOut]
    total: int
    limit: int
    offset: int


class LatestOut(BaseModel):
    """The newest capture of a camera with its kept detections and snips (one tile of a nest-box grid)."""

    camera: str
    image: dict[str, Any]
    detections: list[dict[str, Any]]
    snips: list[dict[str, Any]]


def upload_out(doc: UploadRecord, state: str, duplicate: bool) -> UploadOut:
    return UploadOut(image_id=doc.image_id, camera=doc.camera, status=doc.status, state=state, duplicate=duplicate,
                     uri=doc.stored.uri, capture_time=doc.capture_time, capture_time_source=doc.capture_time_source,
                     received_at=doc.received_at, model=doc.model, filters_hash=doc.filters_hash, answer=doc.answer,
                     snips=doc.snips)


router = APIRouter(tags=["record"], dependencies=[Depends(api_auth)], responses=ERRORS)


def recorder_of(request: Request) -> Recorder:
    """The service's recorder; without `record:` in its config every recording route is a 404 saying so."""
    recorder = service_of(request).recorder
    if recorder is None:
        raise NotFoundError("recording is not configured on this service: start it with `trapline serve "
                            "--record ARCHIVE --tables TABLES` or a `record:` block in the serve config",
                            kind="recording_disabled")
    return recorder


def tables_of(request: Request) -> Tables:
    recorder = recorder_of(request)
    return Tables(recorder.tables)


@router.post("/v1/images", status_code=201, openapi_extra=IMAGE_BODY, response_model=UploadOut,
             responses={200: {"model": UploadOut, "description": "recorded before: the first record"},
                        409: {"description": "Idempotency-Key reused with other bytes"}},
             summary="Detect and keep: the upload goes into the archive and its rows into the tables, once")
async def record_image(
    request: Request,
    camera: str | None = Query(None, description="deployment / module / location id (or a multipart field)"),
    captured_at: str | None = Query(None, description="ISO 8601 capture time (camera clock; with an offset: "
                                                      "UTC); default: EXIF DateTimeOriginal, else receipt"),
    model: str | None = Query(None, description="detector (default: the service's default model)"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=256),
) -> JSONResponse:
    service, rec = service_of(request), recorder_of(request)
    service.refuse_early(model)
    http = service.config.http
    data, fields = await image_and_fields(request, await read_body(request, body_limit(request, http)))
    if looks_like_clip(data):
        check_clip_size(data, http)
    upload = Upload(camera=camera or fields.get("camera") or "", data=data,
                    captured_at=captured_at or fields.get("captured_at"), idempotency_key=idempotency_key,
                    model=model)
    doc, created = await service.record(rec, upload)
    out = upload_out(doc, "pending" if created else await asyncio.to_thread(_state, rec, doc.image_id),
                     duplicate=not created)
    status = doc.http_status if doc.status == "failed" else (201 if created else 200)
    body = out.model_dump(mode="json")
    if doc.status == "failed":  # the answer /v1/detect gives, plus where the kept upload is
        body = {"error": {**doc.answer.get("error", {}), "image_id": doc.image_id}, "image": body}
    return JSONResponse(body, status_code=status, headers={"Location": f"/v1/images/{doc.image_id}"})


@router.get("/v1/images/{image_id}", response_model=UploadOut,
            summary="A recorded upload: its record, snips and whether it is committed")
async def get_image(request: Request, image_id: str = Path(..., pattern=IMAGE_ID)) -> UploadOut:
    found = await asyncio.to_thread(queries.image, recorder_of(request).uploads, image_id)
    if found is None:
        raise NotFoundError(f"no recorded image {image_id!r}", kind="image_not_found")
    return UploadOut.model_validate(found)


@router.get("/v1/cameras", response_model=CamerasOut, summary="Cameras in the tables: image counts and newest capture")
async def list_cameras(request: Request, limit: int = Query(100, ge=1, le=1000),
                       offset: int = Query(0, ge=0)) -> CamerasOut:
    return CamerasOut.model_validate(await asyncio.to_thread(queries.cameras, tables_of(request), limit, offset))


@router.get("/v1/cameras/{camera}/latest", response_model=LatestOut,
            summary="The newest capture of a camera with its kept detections and snips")
async def camera_latest(request: Request, camera: str = Path(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
                        model: str | None = Query(None, description="prefer this detector's rows")) -> LatestOut:
    default_model = service_of(request).config.default_model
    found = await asyncio.to_thread(queries.latest, tables_of(request), camera, model or default_model)
    if found is None:
        raise NotFoundError(f"camera {camera!r} has no images in the tables", kind="camera_not_found")
    return LatestOut.model_validate(found)


def attach_recording(api: FastAPI) -> None:
    """Add the recording routes to an ingress's app (its `state.service` answers them)."""
    api.include_router(router)


def _state(recorder: Any, image_id: str) -> str:
    return "pending" if recorder.pending(image_id) else "committed"
