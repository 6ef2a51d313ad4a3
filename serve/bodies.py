"""The HTTP body helpers every feature's router uses: the error body, the documented error responses and image
body, a size-bounded read of the body, and the image (raw or a multipart upload) with its form fields. Their own
module, so a router (serve/routes.py, serve/recording/routes.py) imports them without importing another router."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ground.errors import BadRequestError, InvalidParameterError, PayloadTooLargeError, TraplineError
from model_store.core.clip_sampling import Sampling
from serve.protocol import ErrorResponse

ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 422, 503)}
IMAGE_BODY = {"requestBody": {"required": True, "content": {
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                       "properties": {"image": {"type": "string", "format": "binary"}}}},
}}}
FILE_FIELDS = ("image", "file")


def request_id(request: Request) -> str:
    return request.headers.get("x-request-id", "")


def error_response(exc: TraplineError, request: Request) -> JSONResponse:
    return JSONResponse(exc.body(request_id(request)), status_code=exc.status, headers=exc.headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` (header or bytes read)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequestError(f"invalid Content-Length {declared!r}")
        if int(declared) > limit:
            raise PayloadTooLargeError(f"body of {int(declared)} bytes is over the limit of {limit} bytes", limit=limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"body is over the limit of {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def image_bytes(request: Request, body: bytes) -> bytes:
    """The image: the raw body, or the file part of a multipart/form-data upload."""
    return (await image_and_fields(request, body))[0]


async def image_and_fields(request: Request, body: bytes) -> tuple[bytes, dict[str, str]]:
    """The image (the raw body, or the file part of a multipart/form-data upload) and the form's text fields."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return body, {}  # any other type (image/*, octet-stream, curl's default form type) is the raw image

    async def stream():
        yield body
        yield b""

    parser = MultiPartParser(request.headers, stream(), max_files=4, max_fields=32, max_part_size=64 * 1024)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequestError(f"malformed multipart body: {exc.message}") from None
    try:
        files = {key: value for key, value in form.multi_items() if isinstance(value, UploadFile)}
        fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        upload = next((files[k] for k in FILE_FIELDS if k in files), next(iter(files.values()), None))
        if upload is None:
            raise BadRequestError("multipart body has no file part; send the image as the field 'image'")
        return await upload.read(), fields
    finally:
        await form.close()


def body_limit(request: Request, http: Any) -> int:
    """The most bytes a body may have: `http.max_body_bytes`, or for a `video/*` body the clips' own limit when
    that is larger."""
    is_video = request.headers.get("content-type", "").lower().startswith("video/")
    return max(http.max_body_bytes, http.max_clip_bytes) if is_video else http.max_body_bytes


def check_clip_size(data: bytes, http: Any) -> None:
    """A clip over `http.max_clip_bytes` is refused with a typed 413, whatever its Content-Type said."""
    if len(data) > http.max_clip_bytes:
        raise PayloadTooLargeError(f"clip of {len(data)} bytes is over the limit of {http.max_clip_bytes} bytes "
                                   "(http.max_clip_bytes)", limit=http.max_clip_bytes)


def clip_sampling(http: Any, sampling: str | None) -> dict[str, Any]:
    """The clip's Sampling (as a dict for the replica call) from ?sampling= or the config, checked here (422)."""
    try:
        return Sampling.parse(sampling or http.clip_sampling, http.clip_max_frames).model_dump()
    except ValueError as exc:
        raise InvalidParameterError(str(exc).splitlines()[0], field="sampling") from None
