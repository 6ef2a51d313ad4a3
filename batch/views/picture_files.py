"""The pictures the console shows, served by the service: archive images, their snips, and thumbnails.

Confinement: a file is served only when its real path (symlinks resolved, `..` collapsed) lies under the real path of
its source's archive, or under its tables' `crops/` (the snips), and has a picture's extension. A row made when the
archive was at another root (moved, or mounted elsewhere) is found by its relative path under the archive as
configured now (model_store/tables/roots.py `relocate`). Nothing else under
the tables (Parquet, manifests, the decisions log) and nothing of other tables is ever served. An archive or tables
in a bucket (s3://) are served the same way: a uri under the archive's URL or the tables' `crops/`, with a picture's
extension and no empty, `.` or `..` segment, read through the service (a clip's frames streamed from it). Tables
that record no archive are not served (the console says so). A row recorded by its URL (an Antenna
capture: http(s)://) is fetched from that URL (`web_file`, at most 64 MiB, served only if its bytes are a picture).

Rights: a browser's `<img>` sends no `Authorization` header, so the API hands out, only to a caller holding a token,
URLs that carry their own right (as the report links, batch/views/reports.py): HMAC-SHA256 over tables, path and size
with the service's link key, valid for 12 to 13 hours; the expiry is rounded to the hour so that a page reloaded
within the hour asks for the same URLs and the browser's cache answers. A request with a valid token needs no grant.

Thumbnails are made once (`THUMB_SIDE` px on the long side, JPEG) and cached beside the tables under `_thumbs/`,
named by the file's path, size and mtime, so a changed file gets a new one; at most `THUMB_WORKERS` are made at once.
When the tables cannot be written the thumbnail is made on the fly, the same bound applying.

A video clip is shown by its sampled frames (`size=frame-N`, the frame numbers the detections table gives, or `thumb`
for its first frame): each decoded on request (model_store/core/video.py `frame_at`: a seek, then at most a few
hundred frames decoded), scaled to `FRAME_SIDE` px, under the same bound of `THUMB_WORKERS` at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import cv2
from PIL import Image

from ground.errors import ImageDecodeError, NotFoundError
from ground.fetch_guard import FetchGuard
from ground.storage import Storage
from model_store.core.imaging import decode_image
from model_store.core.video import VIDEO_EXTENSIONS, ClipReader, VideoDecodeError
from model_store.tables.archive import DEFAULT_EXTENSIONS, WEB_MAX_BYTES, cached_location, read_web
from model_store.tables.roots import relocate

PICTURE_EXT = frozenset(DEFAULT_EXTENSIONS)  # what a reprocess reads is what the console shows
MEDIA = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif",
         ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff"}
# A fetched picture's media type, by the format Pillow reads in its bytes (MPO: a camera's JPEG with a preview)
FORMAT_MEDIA = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
                "BMP": "image/bmp", "TIFF": "image/tiff"}
SIZES = ("thumb", "full")
CLIP_EXT = set(VIDEO_EXTENSIONS)
THUMB_SIDE = 360
FRAME_SIDE = 960  # a clip's frame as shown (the console's strip and its large view)
THUMB_MAX_PIXELS = 60_000_000  # a thumbnail is never made of more than this (a decompression bomb costs a header read)
THUMB_WORKERS = 2
THUMBS_DIR = "_thumbs"
CROPS_DIR = "crops"
LINK_HOURS = 12
_thumb_slots = threading.BoundedSemaphore(THUMB_WORKERS)
FETCH_WORKERS = 4  # pictures read from a bucket or fetched from their URL at once (each up to WEB_MAX_BYTES)
_fetch_slots = threading.BoundedSemaphore(FETCH_WORKERS)


@dataclass(frozen=True)
class Source:
    """Tables the console shows, and the archive their images came from (the only two places files come from)."""

    name: str
    kind: str  # recording | backfill | configured | found (tables under the roots, batch/views/found_tables.py)
    tables: str
    archive: str  # "" when the tables record none: their rows are shown, their pictures are not served

    @property
    def served(self) -> bool:
        """Whether its pictures are served: those of its archive and its snips, local or in a bucket."""
        return bool(self.archive)


def confine(source: Source, uri: str) -> str:
    """The real path of `uri` (or, in a bucket, the uri itself) when the service may serve it for `source`, else
    NotFoundError naming nothing."""
    refused = NotFoundError("no such picture", kind="picture_not_found")
    if not source.served or not uri or "\x00" in uri:
        raise refused
    if "://" in uri:
        return _confine_remote(source, uri, refused)
    archive = [os.path.realpath(source.archive)] if "://" not in source.archive else []
    # the tables' real path, then crops/: a `crops` symlink does not take the confinement with it
    crops = [os.path.join(os.path.realpath(source.tables), CROPS_DIR)] if "://" not in source.tables else []
    if not (archive or crops) or not os.path.isabs(uri):
        raise refused
    path = os.path.realpath(uri)
    if not any(path.startswith(base.rstrip(os.sep) + os.sep) for base in archive + crops):
        path = relocate(archive[0], uri) if archive else None
        if path is None:
            raise refused
    if os.path.splitext(path)[1].lower() not in PICTURE_EXT | CLIP_EXT or not os.path.isfile(path):
        raise refused
    return path


def _confine_remote(source: Source, uri: str, refused: NotFoundError) -> str:
    """A bucket's picture or clip (s3://...) under the source's archive, or its tables' snips, when they are in a
    bucket: a key with an empty, `.` or `..` segment is refused rather than normalised (a bucket has no directories
    to resolve them against)."""
    scheme, _, key = uri.partition("://")
    if scheme in ("http", "https") or any(seg in ("", ".", "..") for seg in key.split("/")):
        raise refused
    bases = [b.rstrip("/") + "/" for b in (source.archive, f"{source.tables.rstrip('/')}/{CROPS_DIR}") if "://" in b]
    shown = PICTURE_EXT | CLIP_EXT
    if not any(uri.startswith(base) for base in bases) or os.path.splitext(key)[1].lower() not in shown:
        raise refused
    return uri


def is_remote(path: str) -> bool:
    """A confined picture in a bucket (its uri), not a local file."""
    return "://" in path


def read_remote(uri: str) -> tuple[bytes, str]:
    """A confined bucket picture's bytes and media type; NotFoundError when it is gone, cannot be read, or is larger
    than any picture (its size is checked before a byte is read)."""
    storage, key, _ = _remote_object(uri)
    with _fetch_slots:
        try:
            data = storage.read_bytes(key)
        except Exception:  # noqa: BLE001 - gone, unreachable, refused: the same 404 naming nothing
            raise NotFoundError("no such picture", kind="picture_not_found") from None
    return data, MEDIA[key[key.rfind("."):].lower()]


def _remote_object(uri: str, max_bytes: int | None = WEB_MAX_BYTES) -> tuple[Storage, str, dict[str, Any]]:
    """The bucket's Storage (one per bucket, kept: a client per request costs a credential lookup), the key and the
    object's info, once a HEAD request found it no larger than `max_bytes` (any picture; None for a clip, which is
    streamed); else NotFoundError."""
    scheme, _, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    try:
        storage = cached_location(f"{scheme}://{bucket}")
        info = storage.fs.info(storage.path(key))
    except Exception:  # noqa: BLE001 - gone, unreachable, a scheme this service cannot read: the same bare 404
        raise NotFoundError("no such picture", kind="picture_not_found") from None
    if max_bytes is not None and int(info.get("size") or 0) > max_bytes:
        raise NotFoundError("this picture is too large to show", kind="picture_unreadable")
    return storage, key, info


def _signature(key: bytes, tables: str, uri: str, size: str, expires: int) -> str:
    return hmac.new(key, f"picture\n{tables}\n{uri}\n{size}\n{expires}".encode(), hashlib.sha256).hexdigest()[:40]


def file_url(key: bytes, tables: str, uri: str, size: str, now: float | None = None) -> str:
    """A URL of one picture that carries its own right (see the module docstring)."""
    hour = int((now or time.time()) // 3600)
    expires = (hour + LINK_HOURS + 1) * 3600
    query = {"tables": tables, "uri": uri, "size": size, "expires": expires,
             "sig": _signature(key, tables, uri, size, expires)}
    return "/v1/pictures/file?" + urlencode(query)


def granted(key: bytes, tables: str, uri: str, size: str, expires: int | None, sig: str | None) -> bool:
    if expires is None or not sig:
        return False
    now = time.time()
    if not now <= expires <= now + (LINK_HOURS + 2) * 3600:  # expired, or longer-lived than any URL signed here
        return False
    return hmac.compare_digest(sig, _signature(key, tables, uri, size, expires))


def thumbnail(source: Source, path: str) -> tuple[str | None, bytes | None]:
    """(cached file, None) or, when the tables cannot be written, (None, JPEG bytes): the thumbnail of `path`."""
    st = os.stat(path)
    return _thumbnail(source, f"{path}\0{st.st_size}\0{st.st_mtime_ns}", lambda: _read(path))


def remote_thumbnail(source: Source, uri: str) -> tuple[str | None, bytes | None]:
    """As `thumbnail`, of a confined bucket picture (its size and ETag name the cached one: one HEAD request)."""
    _, _, info = _remote_object(uri)
    version = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
    return _thumbnail(source, f"{uri}\0{info.get('size')}\0{version}", lambda: read_remote(uri)[0])


def web_thumbnail(source: Source, uri: str, guard: FetchGuard | None = None) -> tuple[str | None, bytes | None]:
    """As `thumbnail`, of a picture recorded by its URL (fetched only when no thumbnail of it is cached)."""
    return _thumbnail(source, f"web\0{uri}", lambda: web_file(uri, guard)[0])


def web_file(uri: str, guard: FetchGuard | None = None) -> tuple[bytes, str]:
    """The bytes of a picture recorded by its URL (an Antenna capture) and their media type, fetched from where it
    was recorded, under the fetch guard (the service's: `guard`); NotFoundError when they cannot be had, are
    refused or are no picture (the type is read from the bytes, not from what the other server says)."""
    unreadable = NotFoundError("this picture cannot be fetched from where it was recorded", kind="picture_unreadable")
    try:
        with _fetch_slots:
            data = read_web(uri, guard=guard)
    except OSError:  # FetchRefusedError too: the same 404, naming no address
        raise unreadable from None
    try:
        with Image.open(io.BytesIO(data)) as im:
            media = FORMAT_MEDIA.get(im.format or "")
    except (OSError, ValueError, Image.DecompressionBombError):
        raise unreadable from None
    if media is None:
        raise unreadable
    return data, media


def _thumbnail(source: Source, key: str, read: Callable[[], bytes]) -> tuple[str | None, bytes | None]:
    if "://" in source.tables:  # tables in a bucket: thumbnails are made on the fly, not cached beside them
        with _thumb_slots:
            return None, _make_thumbnail(read())
    name = hashlib.sha256(key.encode()).hexdigest()[:32] + ".jpg"
    cache = os.path.join(os.path.realpath(source.tables), THUMBS_DIR, name[:2])
    cached = os.path.join(cache, name)
    if os.path.isfile(cached):
        return cached, None
    with _thumb_slots:
        if os.path.isfile(cached):  # made by another request while this one waited
            return cached, None
        data = _make_thumbnail(read())
        try:
            os.makedirs(cache, exist_ok=True)
            tmp = f"{cached}.tmp-{os.getpid()}-{threading.get_ident()}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, cached)
        except OSError:  # read-only tables: serve it made on the fly
            return None, data
    return cached, None


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _make_thumbnail(data: bytes) -> bytes:
    try:
        rgb = decode_image(data, THUMB_MAX_PIXELS)
    except ImageDecodeError as exc:
        raise NotFoundError(f"this picture cannot be shown: {exc.message}", kind="picture_unreadable") from None
    h, w = rgb.shape[:2]
    scale = min(1.0, THUMB_SIDE / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return _jpeg(rgb)


def is_clip(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in CLIP_EXT


def clip_frame(path: str, number: int, side: int = FRAME_SIDE) -> bytes:
    """Frame `number` of the clip at `path` (a confined bucket uri: streamed from the bucket, as a reprocess reads
    it) as a JPEG, its long side at most `side` px; NotFoundError when the clip cannot give it (no such frame, too far
    from a keyframe, not decodable)."""
    with _thumb_slots, contextlib.ExitStack() as opened:
        if is_remote(path):
            storage, key, _ = _remote_object(path, max_bytes=None)
            path = opened.enter_context(storage.fs.open(storage.path(key), "rb", block_size=4 * 2**20,
                                                        cache_type="readahead"))
        try:
            with ClipReader(path) as reader:
                rgb = reader.frame_numbered(number, side)
        except VideoDecodeError as exc:
            raise NotFoundError(f"this frame cannot be shown: {exc}", kind="picture_unreadable") from None
    return _jpeg(rgb)


def _jpeg(rgb) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 82])
    if not ok:
        raise NotFoundError("this picture cannot be shown", kind="picture_unreadable")
    return buf.tobytes()
