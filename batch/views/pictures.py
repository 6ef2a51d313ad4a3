"""The console's pictures routes: sources, cameras with their newest capture, captures under filters, one capture,
and the picture files themselves, over the tables picked by `?tables=` as on every view (picture_queries.py finds
their archive). Parse, check the token, read in a thread
(model_store/tables/browse.py, picture_queries.py, picture_files.py), answer typed models (pictures_protocol.py).

Reads take the API token (or the admin one), as every read of the operations door. A picture file also opens with
the grant in its URL, which only a token holder is given (picture_files.py), because an `<img>` sends no header.
A picture recorded by its URL (an Antenna capture) is fetched from there by the service, and only under a grant: a
token alone would let a caller make the service fetch any URL; grants are signed for the tables' own rows.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response

from batch.jobs.deps import control_of
from batch.views import picture_files as files
from batch.views import picture_queries as pq
from batch.views.pictures_protocol import (
    MODEL,
    TABLES_HELP,
    CamerasPage,
    CameraTile,
    CaptureDetail,
    CapturesPage,
    CapturesQuery,
    Facets,
    SourceOut,
    SourcesOut,
)
from ground.errors import InvalidParameterError, NotFoundError, invalid_parameter
from model_store.tables import browse
from model_store.tables.archive import is_web, open_location
from model_store.tables.reader import Tables
from serve.antenna_config import fetch_guard_of
from serve.deps import in_thread, read_auth, service_of


def renamed_source(request: Request) -> None:
    """`?source=NAME` picked the pictures' tables before every view took `?tables=`. An API caller (a script) is
    answered a typed 422 naming the new parameter rather than redirected: it should learn that the parameter changed,
    and a name (made up from a path or the config) may by now name other tables, which a followed redirect would read
    without a word. A person's old console bookmark (`#/cameras/source=...`) is turned into the tables the name has
    now, which the page then shows (console/cameras.js `fromSource`)."""
    if "source" in request.query_params:
        raise InvalidParameterError("source: the pictures' tables are picked with `tables=PATH` now, as on every view "
                                    "(GET /v1/pictures/sources lists the tables with pictures)", field="source")


# The old `?source=` is refused before anything else is read (renamed_source).
router = APIRouter(tags=["pictures"], dependencies=[Depends(renamed_source)])
# A grant-carrying URL names one file for at most a day: the browser may keep it for the hour it is reused.
FILE_HEADERS = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'", "Referrer-Policy": "no-referrer"}
PICTURES_TABLES = Query(None, min_length=1, max_length=4096, description=TABLES_HELP)


def _pictures(request: Request, tables: str | None) -> files.Source:
    return pq.pictures_of(service_of(request).config, tables, control_of(request).paths.check)


@router.get("/v1/pictures/sources", dependencies=[Depends(read_auth)], response_model=SourcesOut,
            summary="The tables whose pictures the console shows (recording, backfills, jobs.pictures, found)")
async def list_sources(request: Request) -> SourcesOut:
    found = await in_thread(pq.sources, service_of(request).config)
    return SourcesOut(sources=[SourceOut(name=s.name, kind=s.kind, tables=s.tables, archive=s.archive, served=s.served)
                               for s in found.values()])


@router.get("/v1/pictures/cameras", dependencies=[Depends(read_auth)], response_model=CamerasPage,
            summary="A page of cameras: counts and the newest capture with its kept boxes, species and snips")
async def camera_tiles(request: Request, tables: str | None = PICTURES_TABLES,
                       limit: int = Query(24, ge=1, le=200), offset: int = Query(0, ge=0),
                       model: str | None = Query(None, pattern=MODEL, description="prefer this detector's rows")
                       ) -> CamerasPage:
    service = service_of(request)
    src = await in_thread(_pictures, request, tables)
    with invalid_parameter("tables", "cannot read the pictures"):  # tables picked by path may hold none
        page = await in_thread(pq.cameras, src, limit, offset, model or service.config.default_model)
    key = service.link_key()
    for cam in page["cameras"]:
        tile = cam["latest"]
        if tile is not None:
            tile["image"].update(_urls(key, src, tile["image"]["uri"], tile["image"]))
            _snip_urls(key, src, tile["snips"])
    return CamerasPage(tables=src.tables, served=src.served, cameras=[CameraTile.model_validate(c)
                                                                     for c in page["cameras"]],
                       total=page["total"], limit=limit, offset=offset)


@router.get("/v1/pictures/captures", dependencies=[Depends(read_auth)], response_model=CapturesPage,
            summary="Captures newest first, by camera, label, species, score and date range, state; one page")
async def list_captures(request: Request, q: Annotated[CapturesQuery, Query()]) -> CapturesPage:
    service = service_of(request)
    src = await in_thread(_pictures, request, q.tables)
    with invalid_parameter("tables", "cannot read the pictures"):
        page = await in_thread(browse.captures, Tables(open_location(src.tables)), service.config.default_model,
                               **q.model_dump(exclude={"tables"}))
    page.update(tables=src.tables, served=src.served)
    key = service.link_key()
    for c in page["captures"]:
        c.update(_urls(key, src, c["uri"], c))
        _snip_urls(key, src, c["snips"])
    return CapturesPage.model_validate(page)


@router.get("/v1/pictures/capture", dependencies=[Depends(read_auth)], response_model=CaptureDetail,
            summary="One capture: every box (kept and dropped), classifications, snips, model version, filter set")
async def one_capture(request: Request, uri: str = Query(..., min_length=1, max_length=4096),
                      tables: str | None = PICTURES_TABLES, model: str | None = Query(None, pattern=MODEL),
                      filters_hash: str | None = Query(None, pattern=r"^[0-9a-f]{4,64}$")) -> CaptureDetail:
    service = service_of(request)
    src = await in_thread(_pictures, request, tables)
    with invalid_parameter("tables", "cannot read the pictures"):
        found = await in_thread(
            browse.capture, Tables(open_location(src.tables)), uri, service.config.default_model, model, filters_hash
        )
    found.update(tables=src.tables, served=src.served)
    found.update(_urls(service.link_key(), src, uri, found))
    _snip_urls(service.link_key(), src, found["snips"])
    return CaptureDetail.model_validate(found)


@router.get("/v1/pictures/facets", dependencies=[Depends(read_auth)], response_model=Facets,
            summary="What the captures filters can choose from: cameras, labels, species, model versions")
async def capture_facets(request: Request, tables: str | None = PICTURES_TABLES,
                         model: str | None = Query(None, pattern=MODEL)) -> Facets:
    service = service_of(request)
    src = await in_thread(_pictures, request, tables)
    with invalid_parameter("tables", "cannot read the pictures"):
        found = await in_thread(browse.facets, Tables(open_location(src.tables)), service.config.default_model, model)
    return Facets.model_validate({**found, "tables": src.tables})


@router.get("/v1/pictures/file", summary="One picture (image, snip or thumbnail) of a set of tables",
            responses={200: {"content": {"image/jpeg": {}}}})
async def picture_file(request: Request, uri: str = Query(..., min_length=1, max_length=4096),
                       tables: str = Query(..., min_length=1, max_length=4096),
                       size: str = Query("full", pattern=r"^(thumb|full|frame-\d{1,7})$",
                                         description="thumb, full, or frame-N: a clip's frame N as a JPEG"),
                       expires: int | None = Query(None, ge=0), sig: str | None = Query(None, max_length=64)
                       ) -> Response:
    service = service_of(request)
    grant = files.granted(service.link_key(), tables, uri, size, expires, sig)
    if not grant:
        await read_auth(request)  # no (valid) grant: the token, as any read
    src = await in_thread(_pictures, request, tables)
    if is_web(uri):  # fetched from where it was recorded, only under a grant: the service signs its rows' URLs alone
        if not grant or size not in files.SIZES:
            raise NotFoundError("no such picture", kind="picture_not_found")
        guard = fetch_guard_of(service.config.antenna)  # where its Antenna door fetched them from
        if size == "full":
            data, media = await in_thread(files.web_file, uri, guard)
            return Response(data, media_type=media, headers=FILE_HEADERS)
        cached, data = await in_thread(files.web_thumbnail, src, uri, guard)
        return _thumb_response(cached, data)
    path = await in_thread(files.confine, src, uri)
    if files.is_clip(path):  # a clip is shown by its frames, decoded on request (bounded: picture_files.py)
        if size == "full":
            raise NotFoundError("a clip is shown by its frames: size=frame-N", kind="picture_not_found")
        number = 0 if size == "thumb" else int(size.removeprefix("frame-"))
        data = await in_thread(files.clip_frame, path, number)
        return Response(data, media_type="image/jpeg", headers=FILE_HEADERS)
    if files.is_remote(path):  # in a bucket: read through the service
        if size == "thumb":
            return _thumb_response(*await in_thread(files.remote_thumbnail, src, path))
        if size != "full":
            raise NotFoundError("no such picture", kind="picture_not_found")
        data, media = await in_thread(files.read_remote, path)
        return Response(data, media_type=media, headers=FILE_HEADERS)
    if size == "thumb":
        return _thumb_response(*await in_thread(files.thumbnail, src, path))
    media = files.MEDIA[path[path.rfind("."):].lower()]
    return FileResponse(path, media_type=media, headers=FILE_HEADERS)


def _thumb_response(cached: str | None, data: bytes | None) -> Response:
    if cached is None:
        return Response(data, media_type="image/jpeg", headers=FILE_HEADERS)
    return FileResponse(cached, media_type="image/jpeg", headers=FILE_HEADERS)


def _urls(key: bytes, src: files.Source, uri: str, shown: dict[str, Any] | None = None) -> dict[str, Any]:
    """The picture's URLs; a clip's (`shown` says: kind, poster_frame, frames) are its frames' and its poster's; a
    picture recorded by its URL is served from there whatever the tables' archive (a clip so recorded is not)."""
    video = bool(shown and shown.get("kind") == "video")
    servable = (not video) if is_web(uri) else src.served
    if not servable:
        return {"thumb_url": None, "image_url": None}
    if video:
        for f in shown["frames"]:
            f["url"] = files.file_url(key, src.tables, uri, f"frame-{f['frame_number']}")
        poster = files.file_url(key, src.tables, uri, f"frame-{shown['poster_frame']}")
        return {"thumb_url": poster, "image_url": poster}
    return {"thumb_url": files.file_url(key, src.tables, uri, "thumb"),
            "image_url": files.file_url(key, src.tables, uri, "full")}


def _snip_urls(key: bytes, src: files.Source, snips: list[dict[str, Any]]) -> None:
    for s in snips:
        s["url"] = files.file_url(key, src.tables, s["crop_uri"], "full") if src.served else None

