"""Where an upload is kept, and what is remembered of it.

    ARCHIVE/<camera>/<YYYY>/<MM>/<DD>/<sha256[:24]>.<ext>   the original bytes, written once, never rewritten
    TABLES/_online/images/<image_id>.json                   the journal's record (model_store/tables/journal.py), whose
                                                            `extra` is the UploadRecord below
    TABLES/_online/keys/<camera>/<sha256(key)[:32]>.json    an Idempotency-Key and the bytes it was first used with

The archive path depends only on the camera, the capture date and the bytes, so a retry lands on the same
object; the camera is the path's first directory, which is where `trapline reprocess` takes camera ids from,
and the object is never rewritten, so its content id (size + mtime locally, ETag on S3) stays what the
recorded rows say: a reprocess of the same model version finds them done.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

from ground.errors import ConflictError, InvalidParameterError, StorageError, StorageUnavailableError
from ground.storage import Storage
from model_store.core.video import clip_created, looks_like_clip
from model_store.tables import journal
from model_store.tables.archive import HEAD_BYTES, content_id_of, exif_capture, open_location, uri_of

KEYS_DIR = "keys"
# Magic numbers of the formats the decoder takes; anything else is kept as .bin (and fails as a failed row).
SIGNATURES = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
              (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"))


class StoredImage(BaseModel):
    """Where the bytes of an upload are, as a listing of the archive would name them."""

    uri: str
    rel_path: str
    content_id: str
    size_bytes: int


class UploadRecord(BaseModel):
    """What the service remembers of one upload: where its bytes are, when it was taken, and what it answered."""

    image_id: str
    camera: str
    sha256: str
    stored: StoredImage
    capture_time: dt.datetime = Field(description="naive; the camera's clock, or UTC for upload_utc / received")
    capture_time_source: str = Field(description="upload | upload_utc | exif | received")
    received_at: dt.datetime
    status: str = Field(description="ok | empty | failed (as the images table's row)")
    http_status: int = Field(201, description="what the first answer's status was (a replay answers alike)")
    model: dict[str, str]
    filters_hash: str
    answer: dict[str, Any] = Field(default_factory=dict, description="the detection answer, or the error body")
    snips: list[dict[str, Any]] = Field(default_factory=list, description="snip rows (crop_uri, sizes)")


def capture_time(captured_at: str | None, data: bytes, received: dt.datetime) -> tuple[dt.datetime, str]:
    """(naive time, source): the client's `captured_at` (camera clock; with an offset: UTC), else EXIF
    DateTimeOriginal (a clip's: its container's creation time), else the time of receipt (UTC)."""
    if captured_at:
        try:
            when = dt.datetime.fromisoformat(captured_at.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameterError(f"captured_at: not an ISO 8601 time (got {captured_at!r}), e.g. "
                                        "2026-05-01T10:15:00 (camera clock) or 2026-05-01T08:15:00Z") from None
        if when.tzinfo is not None:
            return when.astimezone(dt.timezone.utc).replace(tzinfo=None), "upload_utc"
        return when, "upload"
    exif = exif_capture(data[:HEAD_BYTES])
    if exif is not None:
        return exif
    created = clip_created(data) if looks_like_clip(data) else None
    if created is not None:
        return created, "container"
    return received.replace(tzinfo=None), "received"


def image_id_of(camera: str, sha256: str) -> str:
    """The upload's id: the same bytes from the same camera are the same image."""
    return hashlib.sha256(f"{camera}\0{sha256}".encode()).hexdigest()[:32]


def extension_of(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data[4:8] == b"ftyp":  # a clip: named so an archive run lists it as one (model_store.core.video)
        return ".mov" if data[8:12] == b"qt  " else ".mp4"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return ".avi"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return ".mkv"
    return next((ext for magic, ext in SIGNATURES if data.startswith(magic)), ".bin")


def archive_path(camera: str, sha256: str, day: dt.date, data: bytes) -> str:
    return f"{camera}/{day:%Y/%m/%d}/{sha256[:24]}{extension_of(data)}"


class Uploads:
    """The archive and the upload records of one recording service (see the module docstring).

    Every method does blocking I/O: the recorder runs them on a thread. A store that cannot be reached raises
    StorageUnavailableError (503): the request kept nothing that a retry would not find again.
    """

    def __init__(self, archive_url: str, tables_url: str) -> None:
        self.archive: Storage = open_location(archive_url)
        self.tables: Storage = open_location(tables_url)

    def store(self, camera: str, sha256: str, day: dt.date, data: bytes) -> StoredImage:
        """Put the bytes in the archive unless they are there already; where they are and their content id."""
        rel = archive_path(camera, sha256, day, data)
        try:
            if not self.archive.exists(rel):
                self.archive.write_atomic(data, rel)
            info = self.archive.fs.info(self.archive.path(rel))
        except (StorageError, OSError) as exc:
            raise StorageUnavailableError(f"cannot store the upload in {self.archive.url()}: {exc}; nothing was "
                                          "kept, retry later") from None
        return StoredImage(uri=uri_of(self.archive, self.archive.path(rel)), rel_path=rel,
                           content_id=content_id_of(info), size_bytes=int(info.get("size") or len(data)))

    # -- upload records ----------------------------------------------------------------------------------
    def read(self, image_id: str) -> tuple[UploadRecord, str] | None:
        """An upload's record and its state (pending: answered, not in the tables yet | committed)."""
        try:
            rec = journal.read(self.tables, image_id)
        except StorageError as exc:
            raise StorageUnavailableError(f"cannot read the upload records in {self.tables.url()}: {exc}") from None
        return None if rec is None else (UploadRecord.model_validate(rec.extra), journal.state(self.tables, rec))

    # -- idempotency keys --------------------------------------------------------------------------------
    @staticmethod
    def _key_parts(camera: str, key: str) -> tuple[str, str, str, str]:
        return journal.ONLINE_DIR, KEYS_DIR, camera, f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"

    def check_key(self, camera: str, key: str, sha256: str) -> str | None:
        """The image the key was first used for (None: a new key); ConflictError when that was other bytes."""
        try:
            first = json_of(self.tables.read_bytes(*self._key_parts(camera, key)))
        except FileNotFoundError:
            return None
        if first.get("sha256") != sha256:
            raise ConflictError(f"Idempotency-Key {key!r} was first used for camera {camera!r} with other bytes "
                                f"(image {first.get('image_id')}); use a new key for a new image",
                                image_id=first.get("image_id"))
        return first.get("image_id")

    def remember_key(self, camera: str, key: str, sha256: str, image_id: str) -> None:
        doc = json.dumps({"sha256": sha256, "image_id": image_id}).encode()
        self.tables.create_exclusive(doc, *self._key_parts(camera, key))


def json_of(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
