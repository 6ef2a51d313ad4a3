"""Read an image archive (a directory or s3://bucket/prefix): list it, identify each file's camera and time.

Listing is metadata only (names, sizes, mtimes or ETags); image bytes are read later by the
pipeline's CPU tasks. The driver holds the listing, which is small next to the images.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import pyarrow as pa
from PIL import Image

from batch.tables.cameras import DEFAULT_CAMERA_ID
from batch.tables.schema import ENTRY_SCHEMA
from trapline.errors import ArchiveError
from trapline.storage import Storage

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
    path: str  # filesystem path as the archive's fsspec filesystem spells it
    rel_path: str
    size_bytes: int
    content_id: str
    mtime: dt.datetime  # naive UTC
    camera_id: str  # DEFAULT_CAMERA_ID for a file directly under the archive root
    capture_time: dt.datetime | None = None  # None until resolved (path pattern, EXIF, mtime)
    capture_time_source: str | None = None


@dataclass(frozen=True)
class Listing:
    entries: list[ArchiveEntry]
    unmatched: int  # files the --path-pattern did not match (they fall back to the defaults)
    ignored: int  # hidden files, NAS/OS junk and other extensions


def open_location(url: str) -> Storage:
    """A Storage for a local directory (made absolute) or an s3:// URL (honours TRAPLINE_S3_ENDPOINT_URL)."""
    if "://" not in url:
        url = os.path.abspath(os.path.expanduser(url))
    elif not url.startswith(("s3://", "file://", "memory://")):
        raise ArchiveError(f"unsupported location {url!r}: use a local directory or s3://bucket/prefix")
    return Storage(url)


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
    """EXIF DateTimeOriginal from image bytes (the first ~256 KiB suffice); None if absent or invalid."""
    if not data:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exif = Image.open(io.BytesIO(data)).getexif()
            value = exif.get_ifd(0x8769).get(0x9003)  # Exif IFD -> DateTimeOriginal
    except Exception:  # noqa: BLE001 - broken or missing EXIF is common and never fatal
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ")
    try:
        return dt.datetime.strptime(value[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:  # "0000:00:00 00:00:00" and friends
        return None


def _is_ignored(rel_path: str, extensions: frozenset[str]) -> bool:
    parts = rel_path.split("/")
    if any(p.startswith(".") or p in IGNORED_DIRS for p in parts):
        return True
    return os.path.splitext(parts[-1])[1].lower() not in extensions


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


def _mtime(info: Mapping) -> dt.datetime:
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


def list_archive(storage: Storage, extensions: Iterable[str] = DEFAULT_EXTENSIONS,
                 pattern: PathPattern | None = None) -> Listing:
    """Every image file under the archive root (recursive), sorted by path."""
    exts = frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    root = storage.root
    if storage.is_local and not os.path.isdir(root):
        raise ArchiveError(f"archive {storage.url()} is not a directory")
    try:
        found = storage.fs.find(root, detail=True, withdirs=False)
    except FileNotFoundError:
        raise ArchiveError(f"archive {storage.url()} does not exist") from None
    entries, unmatched, ignored = [], 0, 0
    for path in sorted(found):
        info = found[path]
        if info.get("type", "file") != "file":
            continue
        rel = path[len(root):].lstrip("/")
        if _is_ignored(rel, exts):
            ignored += 1
            continue
        parts = rel.split("/")
        camera = parts[0] if len(parts) > 1 else DEFAULT_CAMERA_ID
        when = None
        if pattern is not None:
            matched, pcam, when = pattern.match(rel)
            unmatched += not matched
            camera = pcam or camera
        uri = uri_of(storage, path)
        entries.append(ArchiveEntry(
            uri=uri, path=path, rel_path=rel, size_bytes=int(info.get("size") or 0),
            content_id=content_id_of(info), mtime=_mtime(info), camera_id=camera,
            capture_time=when, capture_time_source="path" if when else None,
        ))
    return Listing(entries, unmatched, ignored)


def apply_known_times(entries: list[ArchiveEntry], known: Mapping[tuple[str, str], tuple[dt.datetime, str]]
                      ) -> list[ArchiveEntry]:
    """Entries without a time from the path take the time an earlier run or the online door recorded for the
    same bytes (an upload's `captured_at` or time of receipt, which nothing in the file says)."""
    out = list(entries)
    for i, e in enumerate(out):
        cached = known.get((e.uri, e.content_id)) if e.capture_time is None else None
        if cached is not None:
            out[i] = replace(e, capture_time=cached[0], capture_time_source=cached[1])
    return out


def resolve_capture_times(storage: Storage, entries: list[ArchiveEntry],
                          known: Mapping[tuple[str, str], tuple[dt.datetime, str]] | None = None,
                          threads: int = 16) -> list[ArchiveEntry]:
    """Fill in capture times the path did not give: EXIF DateTimeOriginal, else mtime.

    `known` maps (uri, content_id) to a time already found by an earlier run, so reruns read no
    image headers again. Header reads are ranged (first 256 KiB) and run on a thread pool.
    """
    known = known or {}
    out = list(entries)
    pending = []
    for i, e in enumerate(out):
        if e.capture_time is not None:
            continue
        cached = known.get((e.uri, e.content_id))
        if cached is not None and cached[1] != "mtime":  # EXIF, or what the online door recorded for an upload
            out[i] = replace(e, capture_time=cached[0], capture_time_source=cached[1])
        elif cached is not None:  # an earlier run found no EXIF time in these very bytes
            out[i] = replace(e, capture_time=e.mtime, capture_time_source="mtime")
        else:
            pending.append(i)

    def probe(i: int) -> tuple[int, dt.datetime | None]:
        try:
            head = storage.fs.cat_file(out[i].path, start=0, end=HEAD_BYTES)
        except OSError:
            return i, None  # unreadable now: the pipeline will record the read error
        return i, exif_capture_time(head)

    if pending:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for i, when in pool.map(probe, pending):
                e = out[i]
                out[i] = replace(e, capture_time=when or e.mtime, capture_time_source="exif" if when else "mtime")
    return out


def _us(value: dt.datetime | None) -> int:
    if value is None:
        return -1
    return round(value.replace(tzinfo=dt.timezone.utc).timestamp() * 1e6)


def entries_table(entries: list[ArchiveEntry]) -> pa.Table:
    """The listing as an Arrow table with ENTRY_SCHEMA (the pipeline's input)."""
    return pa.table({
        "uri": [e.uri for e in entries],
        "path": [e.path for e in entries],
        "rel_path": [e.rel_path for e in entries],
        "content_id": [e.content_id for e in entries],
        "size_bytes": [e.size_bytes for e in entries],
        "mtime_us": [_us(e.mtime) for e in entries],
        "camera_id": [e.camera_id for e in entries],
        "capture_time_us": [_us(e.capture_time) for e in entries],
        "capture_time_source": [e.capture_time_source for e in entries],
    }, schema=ENTRY_SCHEMA)


def from_us(value: int) -> dt.datetime | None:
    """Inverse of the listing's int64 microsecond encoding (-1 = unknown); naive."""
    if value is None or value < 0:
        return None
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(value))
