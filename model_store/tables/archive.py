"""Read an image archive (a directory or s3://bucket/prefix): identify each file, its camera and its time.

Listing (model_store/tables/listing.py) is metadata only (names, sizes, mtimes or ETags), in pages into one Arrow
table; image bytes are read later by the pipeline's CPU tasks.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import os
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image

from ground.errors import ArchiveError
from ground.fetch_guard import FetchGuard
from ground.storage import Storage

DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif")
# Junk that copies of SD cards and NAS shares are full of: macOS resource forks ("._IMG.JPG"),
# Synology thumbnails (@eaDir), zip metadata. Their names end in .jpg but they are not photos.
IGNORED_DIRS = {"@eaDir", "__MACOSX", "$RECYCLE.BIN", "System Volume Information"}
HEAD_BYTES = 256 * 1024  # enough for the EXIF APP1 segment (<= 64 KiB) plus the usual APP0/APP2 before it
TIME_GROUPS = ("year", "month", "day", "hour", "minute", "second")
PATTERN_GROUPS = {"camera", "timestamp", *TIME_GROUPS}
DEFAULT_TIME_FORMATS = (
    "%Y%m%d_%H%M%S", "%Y%m%d-%H%M%S", "%Y%m%d%H%M%S", "%Y-%m-%d_%H-%M-%S", "%Y-%m-%d %H-%M-%S",
    "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d_%H%M%S", "%Y-%m-%dT%H%M%S", "%Y%m%dT%H%M%S",
)


@dataclass(frozen=True)
class ArchiveEntry:
    """One image file of the archive and what we know about it without reading its pixels."""

    uri: str
    rel_path: str
    size_bytes: int
    content_id: str
    mtime: dt.datetime  # naive UTC
    camera_id: str  # DEFAULT_CAMERA_ID for a file directly under the archive root
    capture_time: dt.datetime | None = None  # None until resolved (path pattern, EXIF, mtime)
    capture_time_source: str | None = None

    @property
    def path(self) -> str:
        """The file's path as the archive's fsspec filesystem spells it (a local uri is that path already)."""
        return self.uri.split("://", 1)[1] if "://" in self.uri else self.uri


def open_location(url: str) -> Storage:
    """A Storage for a local directory (made absolute) or an s3:// URL (honours TRAPLINE_S3_ENDPOINT_URL)."""
    if "://" not in url:
        url = os.path.abspath(os.path.expanduser(url))
    elif not url.startswith(("s3://", "file://", "memory://")):
        raise ArchiveError(f"unsupported location {url!r}: use a local directory or s3://bucket/prefix")
    return Storage(url)


@functools.lru_cache(maxsize=16)
def cached_location(url: str) -> Storage:
    """`open_location`, one Storage per URL per process: a new one costs a client and its credential lookup."""
    return open_location(url)


class PathPattern:
    """A regex searched in each file's archive-relative path; named groups give camera and time.

    Groups: `camera`; and either `timestamp` (parsed with `time_format`, or common layouts such
    as 20240501_101500 / 2024-05-01T10:15:00) or `year`, `month`, `day` [`hour`, `minute`, `second`].
    Example: `(?P<camera>[^/]+)/IMG_(?P<timestamp>\\d{8}_\\d{6})` for cam01/IMG_20240501_101500.JPG.
    """

    def __init__(self, pattern: str, time_format: str | None = None) -> None:
        try:
            self.regex = re.compile(pattern)
        except re.error as exc:
            raise ArchiveError(f"--path-pattern {pattern!r} is not a valid regular expression: {exc}") from None
        groups = set(self.regex.groupindex)
        unknown = groups - PATTERN_GROUPS
        if unknown:
            raise ArchiveError(f"--path-pattern has unknown named groups {sorted(unknown)}; "
                               f"use {sorted(PATTERN_GROUPS)}")
        if not groups:
            raise ArchiveError("--path-pattern needs at least one named group, e.g. (?P<camera>[^/]+)")
        if "timestamp" in groups and groups & set(TIME_GROUPS):
            raise ArchiveError("--path-pattern: use either a `timestamp` group or year/month/day groups, not both")
        if groups & set(TIME_GROUPS) and not {"year", "month", "day"} <= groups:
            raise ArchiveError("--path-pattern: year, month and day groups are all needed for a date")
        self.pattern = pattern
        self.time_format = time_format

    def match(self, rel_path: str) -> tuple[bool, str | None, dt.datetime | None]:
        """(matched, camera or None, capture time or None) for one relative path."""
        m = self.regex.search(rel_path)
        if not m:
            return False, None, None
        found = {k: v for k, v in m.groupdict().items() if v is not None}
        camera = found.get("camera") or None
        when = None
        if "timestamp" in found:
            when = parse_timestamp(found["timestamp"], self.time_format)
        elif "year" in found:
            try:
                when = dt.datetime(*(int(found.get(k, 0)) for k in TIME_GROUPS))
            except ValueError:
                when = None
        return True, camera, when


def parse_timestamp(text: str, time_format: str | None = None) -> dt.datetime | None:
    """Parse a time from a file name with `time_format` or one of the common layouts; None if none fits."""
    formats = (time_format,) if time_format else DEFAULT_TIME_FORMATS
    for fmt in formats:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def exif_capture_time(data: bytes) -> dt.datetime | None:
    """EXIF DateTimeOriginal from image bytes (the first ~256 KiB suffice), in UTC when the file gives its offset
    (`exif_capture`); None if absent or invalid."""
    found = exif_capture(data)
    return found[0] if found else None


def exif_capture(data: bytes) -> tuple[dt.datetime, str] | None:
    """(time, source) from EXIF: DateTimeOriginal as the camera's clock ("exif"), or, with OffsetTimeOriginal
    (EXIF 2.31, e.g. "+02:00"), turned to UTC ("exif_utc"); None if absent or invalid."""
    if not data:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ifd = Image.open(io.BytesIO(data)).getexif().get_ifd(0x8769)  # Exif IFD
            value, offset = ifd.get(0x9003), ifd.get(0x9011)  # DateTimeOriginal, OffsetTimeOriginal
    except Exception:  # noqa: BLE001 - broken or missing EXIF is common and never fatal
        return None
    value, offset = (v.decode("ascii", "ignore") if isinstance(v, bytes) else v for v in (value, offset))
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:  # "0000:00:00 00:00:00" and friends
        return None
    if isinstance(offset, str) and (m := _OFFSET.match(offset.strip("\x00 "))):
        sign = -1 if m.group(1) == "-" else 1
        delta = dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return when - sign * delta, "exif_utc"
    return when, "exif"


_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


HIDDEN = "hidden or system"


def ignored_kind(rel_path: str, extensions: frozenset[str]) -> str | None:
    """Why a listed file is not media of the archive: `HIDDEN` (a dot file or NAS/OS junk folder), its extension
    (".txt", or "no extension"), or None when it is an image or a clip to process."""
    parts = rel_path.split("/")
    if any(p.startswith(".") or p in IGNORED_DIRS for p in parts):
        return HIDDEN
    ext = os.path.splitext(parts[-1])[1].lower()
    return None if ext in extensions else (ext or "no extension")


def content_id_of(info: Mapping) -> str:
    """The identity of a stored file's bytes, from its listing entry (`fs.info` / `fs.find(detail=True)`):
    the ETag and size on S3, the size and mtime locally. With the uri it is the key every skip-set uses."""
    etag = info.get("ETag") or info.get("etag")
    size = int(info.get("size") or info.get("Size") or 0)
    if etag:
        return f"etag={str(etag).strip(chr(34))};size={size}"
    mtime = info.get("mtime")
    mtime_us = round(float(mtime) * 1e6) if mtime is not None else 0
    return f"size={size};mtime_us={mtime_us}"


def mtime_of(info: Mapping) -> dt.datetime:
    value = info.get("LastModified") or info.get("last_modified") or info.get("mtime")
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value
    if value is None:
        return dt.datetime(1970, 1, 1)
    return dt.datetime.fromtimestamp(float(value), dt.timezone.utc).replace(tzinfo=None)


def uri_of(storage: Storage, path: str) -> str:
    """The uri tables record for a file at `path` (as the storage's filesystem spells it)."""
    return path if storage.is_local else f"{storage.url().split('://', 1)[0]}://{path}"


WEB_TIMEOUT_S = 30.0
WEB_MAX_BYTES = 64 * 1024 * 1024  # more than this is refused before it is all read: no picture is that large


def is_web(uri: str) -> bool:
    """A row's uri that is a URL: an image recorded where it was fetched from (an Antenna capture)."""
    return uri.startswith(("http://", "https://"))


def read_web(uri: str, timeout_s: float = WEB_TIMEOUT_S, max_bytes: int = WEB_MAX_BYTES,
             guard: FetchGuard | None = None) -> bytes:
    """The bytes at an http(s) uri; OSError (as for a gone file) when they cannot be had, pass `max_bytes` or take
    longer than `timeout_s` in all (not only between two reads: a server trickling bytes holds no thread for long).
    Redirects are followed, each hop under `guard` (default: the environment's, ground/fetch_guard.py
    `from_env`; FetchRefusedError, an OSError, when it refuses: nothing is sent), as the Antenna door's fetch is."""
    import httpx  # late (both): only tables that recorded URLs need httpx

    from ground.guarded_http import guarded_client  # late: imports httpx

    guard = guard or FetchGuard.from_env()
    guard.check_url(uri)
    deadline = time.monotonic() + timeout_s
    try:
        with guarded_client(guard, timeout=timeout_s) as client, client.stream("GET", uri) as response:
            if response.status_code != 200:
                raise OSError(f"GET {uri} answered HTTP {response.status_code}")
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise OSError(f"GET {uri}: more than {max_bytes} bytes, not a picture")
                if time.monotonic() > deadline:
                    raise OSError(f"GET {uri}: not read within {timeout_s:g} s")
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # InvalidURL is no HTTPError; IDNA a ValueError
        raise OSError(f"GET {uri} failed: {type(exc).__name__}: {exc}") from None
    return bytes(data)


def from_us(value: int) -> dt.datetime | None:
    """Inverse of the listing's int64 microsecond encoding (-1 = unknown); naive."""
    if value is None or value < 0:
        return None
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(value))
