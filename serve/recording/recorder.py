"""The recorder of one ingress replica: each upload kept, run through the served pipeline, journaled, answered,
and committed to the tables later in parts (model_store/tables/journal.py has the guarantee and its proof).

One upload, in order:
1. the camera and `captured_at` are checked (422 before anything is kept); an `Idempotency-Key` used before with
   other bytes is refused (409); the same bytes from the same camera, or a key used before, answer the first record;
2. the bytes go into the archive (`uploads.Uploads.store`; 503 `storage_unavailable` if it cannot be written);
3. the served pipeline runs (the ingress's own detect: detector, its classifiers); an image it cannot decode, or a
   model that fails, gives a `failed` row with the reason, and the answer /v1/detect would give;
4. the rows (images, detections, classifications, snips) are claimed in the journal, then the upload record is
   written, and only then is the upload answered;
5. the flush thread commits the journal's entries in parts of at most `flush_rows`, at least every
   `flush_interval_s`, fenced by this recorder's lease; it also commits what recorders that died left.

An image known by its URL (`record_source`: what the Antenna door answered, serve/antenna/records.py) takes steps 3
to 5 the same way, its URL as its source (nothing is put in the archive), keyed by the caller's identity.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ground.errors import (
    ImageDecodeError,
    InvalidParameterError,
    LeaseLostError,
    ModelRunError,
    StorageError,
    StorageUnavailableError,
)
from ground.every import Every
from model_store import FilterSet, ImageDetections, ModelStore, decode_image
from model_store.core.clip_settings import ClipSettings
from model_store.core.clips import ClipDetections
from model_store.core.crops import SnipSet
from model_store.core.pipeline import ClassifierRoute, ResolvedRoute, result_hash, routes_metadata
from model_store.core.refs import check_segment
from model_store.core.tiling import tiling_settings
from model_store.core.video import VideoDecodeError
from model_store.tables import journal
from model_store.tables.codec import classification_rows, clip_fields, failed_fields, result_fields
from model_store.tables.lease import RunLease
from model_store.tables.manifest import RunManifest, new_run_id, write_manifest
from model_store.tables.metadata import part_metadata
from model_store.tables.snip_files import write_snips
from serve.config import RecordConfig
from serve.recording.uploads import StoredImage, UploadRecord, Uploads, capture_time, image_id_of

logger = logging.getLogger("ray.serve.trapline")

RECOVER_EVERY_S = 60.0


@dataclass(frozen=True)
class Upload:
    """One `POST /v1/images` as the route parsed it."""

    camera: str
    data: bytes
    captured_at: str | None = None
    idempotency_key: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Source:
    """An image known by where it was fetched from (an Antenna capture's URL, serve/antenna/records.py): recorded
    with that URL as its source; `image_id` is the caller's identity key, recorded at most once."""

    image_id: str
    uri: str
    rel_path: str
    camera: str
    data: bytes
    capture_time: dt.datetime | None = None  # from the URL's path; None: EXIF, else the time received


@dataclass(frozen=True)
class _Kept:
    """An image whose bytes are kept (archive) or known (a source URL), before the pipeline runs."""

    image_id: str
    camera: str
    sha256: str
    stored: StoredImage
    capture_time: dt.datetime
    capture_time_source: str
    received: dt.datetime
    data: bytes
    idempotency_key: str | None


# The served pipeline for one image: the ingress's detect, answering the typed record (classifications attached)
# and the body /v1/detect would answer with.
Detect = Callable[[bytes], Awaitable[tuple[ImageDetections | ClipDetections, dict[str, Any]]]]
# The live version of a classifier deployment (asked when a record has no answer of it to tell).
ClassifierVersion = Callable[[str], Awaitable[str]]


class Recorder:
    """Records uploads for one ingress replica (see the module docstring).

    Lifecycle: built by the ingress core when `record:` is configured (nothing is read or written then); the
    first upload takes this recorder's lease and writes its run manifest (kind "record"); a daemon thread
    flushes and recovers until `close()`, which the replica's shutdown calls: a last flush, the manifest
    closed, the lease released. A replica killed before that leaves its journal entries to the next recorder
    or reprocess that looks (after `lease_ttl_s` at most; at once on the same machine).
    """

    def __init__(self, cfg: RecordConfig, store: ModelStore) -> None:
        self.cfg = cfg
        self.store = store
        self.uploads = Uploads(cfg.archive, cfg.tables)
        self.tables = self.uploads.tables
        self.writer = new_run_id()
        self.counts = {"recorded": 0, "replayed": 0, "committed": 0, "recovered": 0, "flush_errors": 0}
        self._lease: RunLease | None = None
        self._manifest: RunManifest | None = None
        self._buffer: list[journal.Recorded] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._configs: dict[str, Any] = {}

    # -- lifecycle --------------------------------------------------------------------------------------
    def _start(self) -> None:
        """Take the lease and write the manifest before the first entry is claimed (a claim without a live lease
        would look abandoned to a recoverer)."""
        with self._lock:
            if self._lease is not None:
                return
            try:
                lease = RunLease(self.tables, *journal.lease_key(self.writer), self.writer, ttl_s=self.cfg.lease_ttl_s,
                                 heartbeat_s=self.cfg.lease_ttl_s / 6).acquire()
                self._manifest = RunManifest.start(self.writer, "record", source=self.uploads.archive.url(),
                                                   out=self.tables.url(), arguments=self.cfg.model_dump(mode="json"))
                write_manifest(self.tables, self._manifest)
            except (StorageError, OSError) as exc:
                raise StorageUnavailableError(f"cannot record into {self.tables.url()}: {exc}; nothing was kept") \
                    from None
            lease.start_heartbeat()
            self._lease = lease
            self._thread = threading.Thread(target=self._run, name="trapline-recorder", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Commit what is buffered, close the manifest and release the lease (replica shutdown)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout=60)
        try:
            self.flush_all()
            self._finish("succeeded")
        finally:
            if self._lease is not None:
                self._lease.release()

    def _finish(self, status: str, error: str | None = None) -> None:
        if self._manifest is not None:
            self._manifest.counts = dict(self.counts)
            if status == "running":
                self._manifest.touch()
            else:
                self._manifest.finish(status, error)  # type: ignore[arg-type]
            write_manifest(self.tables, self._manifest)

    def _run(self) -> None:
        recovery = Every(RECOVER_EVERY_S)
        while not self._stop.is_set():
            self._wake.wait(self.cfg.flush_interval_s)
            self._wake.clear()
            try:
                self.flush_all()
                if recovery.due():
                    self.counts["recovered"] += journal.recover(self.tables, exclude=self.writer,
                                                                ttl_s=self.cfg.lease_ttl_s)
                    recovery.done()
                self._finish("running")
            except Exception as exc:  # noqa: BLE001 - the entries stay in the journal; the next pass retries
                self.counts["flush_errors"] += 1
                logger.warning("recording: flush failed (%s); the uploads stay journaled and are retried", exc)

    def pending(self, image_id: str) -> bool:
        """Whether an upload's rows are still only in the journal (answered, not yet committed)."""
        rec = journal.read(self.tables, image_id)
        return rec is not None and journal.state(self.tables, rec) == "pending"

    # -- commit -----------------------------------------------------------------------------------------
    def flush_all(self) -> int:
        total = 0
        while True:
            n = self.flush()
            total += n
            if not n:
                return total

    def flush(self) -> int:
        """Commit up to `flush_rows` buffered uploads as parts of the tables; the rows committed."""
        with self._flush_lock:
            with self._lock:
                entries = list(self._buffer[: self.cfg.flush_rows])
            if not entries:
                return 0
            try:
                n = journal.commit(self.tables, entries, self.writer)
            except LeaseLostError:
                # Stalled past the lease's ttl and taken over: the taker commits these entries (they are in the
                # journal under our name); this recorder carries on under a new name and lease.
                logger.warning("recording: recorder %s lost its lease; its %d pending uploads are left to the "
                               "recorder that took it", self.writer, len(entries))
                with self._lock:
                    del self._buffer[: len(entries)]
                    self._lease, self.writer = None, new_run_id()
                return 0
            with self._lock:
                del self._buffer[: len(entries)]
            self.counts["committed"] += n
            return n

    # -- one upload -------------------------------------------------------------------------------------
    async def record(self, upload: Upload, model: str, detect: Detect, routes: list[ClassifierRoute],
                     classifier_version: ClassifierVersion) -> tuple[UploadRecord, bool]:
        """Keep, run and journal one upload; (its record, whether this request created it). `model` is the
        detector's NAME@ALIAS as served (what the rows name when the image fails before it runs)."""
        try:
            check_segment("camera", upload.camera)
        except ValueError as exc:
            raise InvalidParameterError(f"camera: {exc}") from None
        if not upload.data:
            raise ImageDecodeError("empty", "the request body is empty; send the image bytes")  # 400, nothing kept
        received = dt.datetime.now(dt.timezone.utc)
        when, source = capture_time(upload.captured_at, upload.data, received)
        sha = hashlib.sha256(upload.data).hexdigest()
        image_id = image_id_of(upload.camera, sha)
        if upload.idempotency_key:
            first = await asyncio.to_thread(self.uploads.check_key, upload.camera, upload.idempotency_key, sha)
            image_id = first or image_id
        existing = await asyncio.to_thread(self.uploads.read, image_id)
        if existing is not None:
            self.counts["replayed"] += 1
            return existing[0], False
        await asyncio.to_thread(self._start)
        stored = await asyncio.to_thread(self.uploads.store, upload.camera, sha, when.date(), upload.data)
        kept = _Kept(image_id, upload.camera, sha, stored, when, source, received, upload.data, upload.idempotency_key)
        return await self._journal(kept, model, detect, routes, classifier_version)

    async def record_source(self, source: Source, model: str, detect: Detect, routes: list[ClassifierRoute],
                            classifier_version: ClassifierVersion) -> tuple[UploadRecord, bool]:
        """Run and journal an image known by its URL (`Source`), exactly once per `source.image_id`: its rows name
        the URL as their uri, and its bytes are not copied into the archive. `model` is NAME:VERSION."""
        try:
            check_segment("camera", source.camera)
        except ValueError as exc:
            raise InvalidParameterError(f"camera: {exc}") from None
        existing = await asyncio.to_thread(self.uploads.read, source.image_id)
        if existing is not None:  # answered before (a job run again, a task delivered again): the first row stands
            self.counts["replayed"] += 1
            return existing[0], False
        await asyncio.to_thread(self._start)
        sha = hashlib.sha256(source.data).hexdigest()
        size = len(source.data)  # the bytes' identity, where a file's would be its size and mtime or ETag
        stored = StoredImage(uri=source.uri, rel_path=source.rel_path, content_id=f"sha256={sha};size={size}",
                             size_bytes=size)
        received = dt.datetime.now(dt.timezone.utc)
        when, time_source = (source.capture_time, "path") if source.capture_time is not None else \
            capture_time(None, source.data, received)
        kept = _Kept(source.image_id, source.camera, sha, stored, when, time_source, received, source.data, None)
        return await self._journal(kept, model, detect, routes, classifier_version)

    async def _journal(self, kept: _Kept, model: str, detect: Detect, routes: list[ClassifierRoute],
                       classifier_version: ClassifierVersion) -> tuple[UploadRecord, bool]:
        """Run the served pipeline on kept bytes and claim their rows in the journal (steps 3 and 4)."""
        base = {"uri": kept.stored.uri, "rel_path": kept.stored.rel_path, "content_id": kept.stored.content_id,
                "size_bytes": kept.stored.size_bytes, "camera_id": kept.camera, "capture_time": kept.capture_time,
                "capture_time_source": kept.capture_time_source}
        clip = None
        try:
            record, answer = await detect(kept.data)
            http_status = 201
            if isinstance(record, ClipDetections):  # a clip: one row for it, its frames' detections nested
                clip, record = record, None
                fields = clip_fields(clip, round(kept.capture_time.replace(tzinfo=dt.timezone.utc).timestamp() * 1e6))
            else:
                fields = result_fields(record)
        except (ImageDecodeError, VideoDecodeError, ModelRunError) as exc:  # kept, with a failed row saying why
            record, answer, http_status = None, exc.body(), exc.status or 500
            fields = failed_fields(getattr(exc, "reason", None) or exc.code, str(exc))
            if isinstance(exc, VideoDecodeError):
                fields["kind"] = "video"
        info = (clip.model if clip is not None else record.model) if (record or clip) else \
            await self._live_model(model)
        filters, resolved = await self._result_set(info, record, routes, classifier_version)
        if clip is not None:
            filters = FilterSet.from_specs(clip.filters.configs)
        rhash = result_hash(filters, resolved, tiling_settings(record.tiling) if record is not None else None)
        row = {**base, **fields, "classifications": classification_rows(record) if record else [], "snips": []}
        if record is not None and self.cfg.crops is not None and record.detections:
            row["snips"] = await asyncio.to_thread(self._snips, kept.data, record, row, rhash)
        config = self._config(info.name, info.version)
        if clip is not None:  # what the clip was made with: a reprocess of the uploads with other settings redoes it
            row["clip_settings"] = ClipSettings.of(clip.sampling, config.clip_tracking, config.clip_counting).hash
        meta = part_metadata(info.name, info.version, config, model, filters, rhash,
                             routes_metadata(resolved), self.cfg.crops.model_dump() if self.cfg.crops else None)
        doc = UploadRecord(image_id=kept.image_id, camera=kept.camera, sha256=kept.sha256, stored=kept.stored,
                           capture_time=kept.capture_time, capture_time_source=kept.capture_time_source,
                           received_at=kept.received, status=fields["status"], http_status=http_status,
                           model={"name": info.name, "version": info.version}, filters_hash=rhash, answer=answer,
                           snips=row["snips"])
        entry = journal.Recorded(image_id=kept.image_id, writer=self.writer, model_name=info.name,
                                 model_version=info.version, model_sha256=info.sha256, filters_hash=rhash,
                                 metadata=meta, row=row, extra=doc.model_dump(mode="json"))
        return await asyncio.to_thread(self._claim, entry, doc, kept.idempotency_key)

    def _claim(self, entry: journal.Recorded, doc: UploadRecord, key: str | None) -> tuple[UploadRecord, bool]:
        """Journal the image; a twin request (or a retry after a crash) that finds the image recorded answers
        the first record instead: one row per image, whatever the timing."""
        try:
            if not journal.claim(self.tables, entry):
                first = self.uploads.read(doc.image_id)
                if first is None:
                    raise StorageUnavailableError(f"image {doc.image_id} is recorded but its record cannot be "
                                                  "read; retry shortly")
                self.counts["replayed"] += 1
                return first[0], False
            if key:
                self.uploads.remember_key(doc.camera, key, doc.sha256, doc.image_id)
        except (StorageError, OSError) as exc:
            raise StorageUnavailableError(f"cannot record the image in {self.tables.url()}: {exc}; its bytes are "
                                          "kept where they came from, a retry records it") from None
        with self._lock:
            self._buffer.append(entry)
            full = len(self._buffer) >= self.cfg.flush_rows
        if full:
            self._wake.set()
        self.counts["recorded"] += 1
        return doc, True

    def _snips(self, data: bytes, record: ImageDetections, row: dict[str, Any], rhash: str) -> list[dict[str, Any]]:
        rgb = decode_image(data)
        return write_snips(self.tables, rgb, record.ranked(), row,
                           SnipSet(record.model.name, record.model.version, rhash, self.cfg.crops))

    # -- what the rows are keyed by ---------------------------------------------------------------------
    def _config(self, name: str, version: str) -> Any:
        key = f"{name}:{version}"
        if key not in self._configs:
            self._configs[key] = self.store.get(key).config
        return self._configs[key]

    async def _live_model(self, model: str) -> Any:
        mv = await asyncio.to_thread(self.store.get, model)
        return mv.info

    async def _result_set(self, info: Any, record: ImageDetections | None, routes: list[ClassifierRoute],
                          classifier_version: ClassifierVersion) -> tuple[FilterSet, list[ResolvedRoute]]:
        """The detector's filter set and the classifier routes pinned to the versions that answered (or, for an
        image none was routed to, the versions live now): the skip key a reprocess with the same pipeline uses."""
        filters = (FilterSet.from_specs(record.filters.configs) if record is not None
                   else self._config(info.name, info.version).default_filters())
        answered = {c.model.name: c.model for d in (record.detections if record else []) for c in d.classifications}
        resolved = []
        for route in routes:
            version = answered[route.model].version if route.model in answered else \
                await classifier_version(route.model)
            config = self._config(route.model, version)
            resolved.append(ResolvedRoute(route.model, version, config.weights.sha256, tuple(route.labels),
                                          route.min_crop_px, config))
        return filters, resolved
