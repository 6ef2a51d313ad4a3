"""The inference stage of the plan (actors or the Serve deployment) and the result rows it returns.

Every stage is a plain function or callable class over a dict of columns, so it can be tested
on a hand-made batch without Ray. Decoding, letterboxing, inference, NMS and filtering are the
detector core's (`model_store.Detector`); nothing here re-implements them.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from batch.reprocess.actor_settings import ClientSettings, DetectorSettings
from batch.reprocess.clips import ClipReading, clip_rows, run_clip
from batch.reprocess.read import FAILED, PENDING, decode_and_prepare, meta_of, preparer, read_files
from batch.reprocess.served_clips import ServedFrames
from ground.errors import BatchError
from model_store import FilterSet, ImageDetections, ModelRunError, ModelStore
from model_store.core.preprocess import LetterboxMeta
from model_store.core.video import is_clip
from model_store.tables.archive import cached_location
from model_store.tables.codec import failed_fields, result_fields
from model_store.tables.schema import CLIP_FIELDS, RESULT_SCHEMA
from serve.protocol import unwrap_error


def fail_rows(batch: dict[str, np.ndarray], rows: list[int], reason: str, message: str) -> None:
    """Mark `rows` of a numpy batch failed with `reason` and `message` (result_table writes them as failed rows)."""
    for key, value in (("status", FAILED), ("error_reason", reason), ("error", message)):
        col = np.asarray(batch[key], dtype=object).copy()  # Ray hands read-only arrays
        for i in rows:
            col[i] = value
        batch[key] = col


def result_table(batch: Mapping[str, np.ndarray], results: Mapping[int, ImageDetections | dict],
                 clip_settings: str | None = None) -> pa.Table:
    """One RESULT_SCHEMA row per input row: its detections (kept and dropped) or its failure. A clip's result is
    its row's fields already (`batch/reprocess/clips.py`); every clip row, failed ones too, carries the hash of the
    settings it was made with (`clip_settings`), which a rerun's done-check compares."""
    n = len(batch["uri"])
    cols: dict[str, list[Any]] = {f.name: [] for f in RESULT_SCHEMA}
    for i in range(n):
        for k in ("uri", "rel_path", "content_id", "size_bytes", "camera_id", "capture_time_source"):
            v = batch[k][i]
            cols[k].append(v.item() if isinstance(v, np.generic) else v)
        cols["capture_time"].append(int(batch["capture_time_us"][i]))
        digests = batch.get("content_digest")  # absent where rows were not read here (none is then known)
        cols["content_digest"].append(None if digests is None else digests[i])
        res = results.get(i)
        if isinstance(res, dict):
            fields = res
        elif res is not None:
            fields = result_fields(res)
        else:
            fields = {**failed_fields(batch["error_reason"][i] or "not_processed",
                                      batch["error"][i] or "the image was not processed"),
                      "kind": "video" if is_clip(str(batch["uri"][i])) else "image"}
        if fields.get("kind") == "video":
            fields = {**fields, "clip_settings": clip_settings}
        for k in CLIP_COLUMNS:
            cols[k].append(fields.get(k))
        for k, v in fields.items():
            if k not in CLIP_COLUMNS:
                cols[k].append(v)
    arrays = []
    for f in RESULT_SCHEMA:
        values = cols[f.name]
        if not pa.types.is_floating(f.type):
            # A column that is null in every row of a block (e.g. camera_id with no path pattern)
            # reaches a numpy-format batch as float NaN; it means "no value".
            values = [None if isinstance(v, float) and v != v else v for v in values]
        if f.name == "capture_time":
            arrays.append(pa.array(values, pa.int64()).cast(f.type))
        else:
            arrays.append(pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=RESULT_SCHEMA)


CLIP_COLUMNS = [f.name for f in CLIP_FIELDS]  # null for an image but `kind`

READ_THREADS = 8  # reads in flight per inference actor: enough to hide object-store latency, cheap locally


class FileReader:
    """Reads the files of a batch of listing rows (`--decode actors`: only paths travel to this stage).

    Lifecycle: one per inference actor or Serve client actor, built in its `__init__` with the
    archive's URL; `read(batch)` turns listing rows into read rows (`data`, `status`) on
    `threads` I/O threads and passes batches that are already read (a read-task stage upstream) as they are.
    """

    def __init__(self, archive_url: str | None, threads: int = READ_THREADS) -> None:
        self.archive_url = archive_url
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="read") if archive_url else None

    def read(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "status" in batch:  # read (and maybe decoded) by the read tasks
            return batch
        if self.archive_url is None:
            raise BatchError("this inference stage got listing rows but has no archive to read them from")
        return read_files(batch, archive_url=self.archive_url, pool=self._pool)


class DetectorActor:
    """Inference through a dedicated Ray Data actor pool (`--via actors`).

    Lifecycle: Ray Data starts `--concurrency` of these, each from the run's one `DetectorSettings`
    (actor_settings.py); `__init__` runs once per actor and loads the pinned model version (sha256-verified by
    the store) onto the actor's device and runs one blank forward pass (`Detector.warmup`); `__call__` then runs
    once per batch: with `--decode actors` it reads the listed files itself (`archive_url`; only paths reach it)
    and decodes and letterboxes them on `decode_threads` threads; with `--decode tasks` it takes the images the
    read tasks prepared (`image` column). Then it runs the core's `run_prepared` (batched forward pass, decode
    boxes, NMS, filters).
    Failed rows pass straight through.
    """

    def __init__(self, settings: DetectorSettings) -> None:
        s = settings
        self.detector = ModelStore(s.store_url).load_detector(s.ref, device=s.device, threads=s.threads)
        # the run's tiling; None: plain, whatever the model's config says
        if s.tiling is not None or self.detector.config.tiling is not None:
            self.detector.use_tiling(self.detector.tiling(s.tiling or False))
        self.filters = self.detector.filters(FilterSet.from_specs(s.filter_specs))
        # One blank pass here, while the plan's first files are still being read: the first real batch then
        # runs at the steady rate (one pass warms every batch size: see Detector.warmup).
        self.detector.warmup()
        self.max_pixels = s.max_pixels
        self.reader = FileReader(s.archive_url)
        self.clips_url = s.clips_url or s.archive_url  # clips are opened where they lie, whatever --decode says
        self.clip_settings = s.clips
        self.clip_batch_size = s.clip_batch_size
        # cv2 releases the GIL while decoding, so threads decode in parallel (a GPU actor holding
        # several CPUs); one thread decodes inline.
        self._pool = (ThreadPoolExecutor(s.decode_threads, thread_name_prefix="decode") if s.decode_threads > 1
                      else None)

    def _clip_storage(self):
        if self.clips_url is None:
            raise BatchError("this inference stage got a clip but has no archive to open it from")
        return cached_location(self.clips_url)

    def _inputs(self, batch: dict[str, np.ndarray], todo: list[int]
                ) -> tuple[list[int], list[np.ndarray], list[LetterboxMeta]]:
        if "data" not in batch:  # prepared by the read tasks
            return todo, [batch["image"][i] for i in todo], [meta_of(batch, i) for i in todo]
        prep = self.detector.preprocessor

        def one(i: int):
            return decode_and_prepare(prep, batch["data"][i], self.max_pixels)

        decoded = list(self._pool.map(one, todo)) if self._pool else [one(i) for i in todo]
        ok = []
        for i, d in zip(todo, decoded, strict=True):
            if d.image is None:
                fail_rows(batch, [i], d.reason, d.error)
            else:
                ok.append((i, d))
        return [i for i, _ in ok], [d.image for _, d in ok], [d.meta for _, d in ok]

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        batch = self.reader.read(batch)
        pending = [i for i, s in enumerate(batch["status"]) if s == PENDING]
        clips = clip_rows(batch, pending)
        todo, images, metas = self._inputs(batch, [i for i in pending if i not in set(clips)])
        results: dict[int, ImageDetections | dict] = {}
        for i in clips:  # each clip streams its sampled frames through the detector on its own
            try:
                results[i] = run_clip(self.detector, self.filters, batch, i, self.clip_settings,
                                      ClipReading(self._clip_storage(), self.max_pixels, self.clip_batch_size))
            except ModelRunError as exc:
                fail_rows(batch, [i], "model_error", str(exc))
        if todo:
            try:
                records = self.detector.run_prepared(images, metas, self.filters)
            except ModelRunError as exc:  # the model, not the image: every row says why, the job goes on
                fail_rows(batch, todo, "model_error", str(exc))
                return result_table(batch, results, self.clip_settings.hash)
            for i, record in zip(todo, records, strict=True):
                if isinstance(record, Exception):
                    fail_rows(batch, [i], "postprocess_error", f"{type(record).__name__}: {record}")
                else:
                    results[i] = record
        return result_table(batch, results, self.clip_settings.hash)


def detector_handle(model_name: str, app_name: str):
    """The Serve deployment handle for `model_name` (serve.get_detector_handle when serve/ provides it)."""
    try:
        from serve import get_detector_handle  # the project's serve/ package, not ray.serve
    except ImportError:
        get_detector_handle = None
    if get_detector_handle is not None:
        return get_detector_handle(model_name, app_name=app_name)
    # late: batch.cli imports the job for `trapline --help`; Ray loads when a job runs
    from ray import serve as ray_serve

    return ray_serve.get_deployment_handle(f"detector-{model_name}", app_name=app_name)


def check_served(res: ImageDetections, expected: Mapping[str, str]) -> None:
    """Refuse results from another model version or filter set than the run records."""
    got = {"version": res.model.version, "sha256": res.model.sha256, "filters_hash": res.filters.hash}
    bad = {k: (got[k], v) for k, v in expected.items() if got.get(k) != v}
    if bad:
        detail = ", ".join(f"{k} {g!r} (expected {e!r})" for k, (g, e) in bad.items())
        raise BatchError(f"the Serve deployment answered with {detail}; is the right version deployed?")


@dataclass
class _Tries:
    """What one row has met so far through the deployment."""

    failures: int = 0  # transient failures (a replica died, not ready)
    overloaded_since: float | None = None


class ServeClient:
    """Inference through the live Serve deployment's handle (`--via serve`).

    Lifecycle: a small pool of light actors, each from the run's one `ClientSettings` (actor_settings.py);
    `__init__` looks up the handle once; `__call__`
    reads the listed files (`archive_url`, `--decode actors`), then keeps up to `window` images
    of its batch in flight (so the deployment's batcher can group them with other clients'
    images), `per_call` images to a call: the encoded files (`detect_bytes_many`, decoded in the
    replica) or the read task's letterboxed images (`detect_prepared_many`, `--decode tasks`).
    Serve's cost per call (routing here, the request's context and log line in the replica) is
    then paid once for several images; the replica still admits, batches and refuses each image
    on its own. Each answer's model version, sha256 and filters hash is checked. Archive images
    travel in the deployment's bulk lane: online requests go first, and an image refused because
    the lane is full (503) is sent again after a short wait (back-pressure, not an error) for up to
    `overload_wait_s`; a replica that died or is not ready is tried `attempts` times.
    """

    def __init__(self, settings: ClientSettings) -> None:
        s = settings
        self.handle = detector_handle(s.model_name, s.app_name)
        # clips are decoded and letterboxed here and only their frames go to the deployment (served_clips.py)
        self.clips_url, self.max_pixels = s.clips_url or s.archive_url, s.max_pixels
        self.clip_settings = s.clips
        self.frames = ServedFrames(
            preparer(s.config_json), lambda images, metas: self.handle.detect_prepared_many.remote(
                images, metas, self.ref, self.filter_overrides),
            lambda record: check_served(record, self.expected), self._frame_retry_in, _Tries) if s.config_json else None
        self.reader = FileReader(s.archive_url)
        self.ref = s.ref
        self.filter_overrides = s.filter_overrides or None
        self.tiling = s.tiling if s.tiling is not None else False  # the run's, resolved at plan; False: plain
        self.expected = s.expected
        self.attempts = s.attempts
        self.window = s.window
        self.per_call = max(1, min(s.per_call, s.window))
        self.overload_wait_s = s.overload_wait_s

    def _send(self, batch: dict[str, np.ndarray], rows: list[int]):
        if "data" in batch:
            return self.handle.detect_bytes_many.remote([batch["data"][i] for i in rows], self.ref,
                                                        self.filter_overrides, tiling=self.tiling)
        return self.handle.detect_prepared_many.remote([batch["image"][i] for i in rows],
                                                       [meta_of(batch, i) for i in rows], self.ref,
                                                       self.filter_overrides)

    @staticmethod
    def _answers(rows: list[int], response) -> list:
        """One answer per row: the record, or the error that refused it (a failed call: every row's)."""
        try:
            return list(response.result())
        except Exception as exc:  # noqa: BLE001 - the call as a whole failed: each of its rows sorts it out
            return [exc] * len(rows)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        batch = self.reader.read(batch)
        pending = collections.deque(i for i, s in enumerate(batch["status"]) if s == PENDING)
        clips = clip_rows(batch, list(pending))
        pending = collections.deque(i for i in pending if i not in set(clips))
        results: dict[int, ImageDetections | dict] = {}
        for i in clips:  # decoded here, each batch of its frames detected in the deployment
            if self.frames is None or self.clips_url is None:
                raise BatchError("this Serve client got a clip but has no model config or archive to decode it")
            try:
                results[i] = run_clip(self.frames, None, batch, i, self.clip_settings,
                                      ClipReading(cached_location(self.clips_url), self.max_pixels, self.per_call * 2))
            except ModelRunError as exc:
                fail_rows(batch, [i], "model_error", str(exc))
        tries: dict[int, _Tries] = collections.defaultdict(_Tries)
        in_flight: collections.deque = collections.deque()  # (rows, response), oldest first
        while pending or in_flight:
            while pending and (room := self.window - sum(len(r) for r, _ in in_flight)) > 0:
                rows = [pending.popleft() for _ in range(min(self.per_call, room, len(pending)))]
                in_flight.append((rows, self._send(batch, rows)))
            rows, response = in_flight.popleft()
            wait = 0.0
            for i, answer in zip(rows, self._answers(rows, response), strict=True):
                if not isinstance(answer, BaseException):
                    record = ImageDetections.model_validate(answer)  # the replica's record, as it is
                    check_served(record, self.expected)
                    results[i] = record
                    continue
                again = self._retry_in(batch, i, answer, tries[i])
                if again is not None:
                    pending.append(i)
                    wait = max(wait, again)
            time.sleep(wait)
        return result_table(batch, results, self.clip_settings.hash)

    def _frame_retry_in(self, exc: BaseException, tries: _Tries) -> float | None:
        """As `_retry_in`, for a clip's frame: None when the deployment refused it for good."""
        return None if served_refusal(exc) is not None else self._retry_in({}, -1, exc, tries)

    def _retry_in(self, batch: dict[str, np.ndarray], i: int, exc: BaseException, tries: _Tries) -> float | None:
        """Seconds to wait before row i goes again; None when the deployment refused it for good (the row
        is failed with its reason). Raises `exc` when sending it again cannot help."""
        refusal = served_refusal(exc)
        if refusal is not None:  # the deployment answered "no" for this image: retrying won't help
            fail_rows(batch, [i], *refusal)
            return None
        if is_overloaded(exc):  # the bulk lane is full: wait for room, however many tries it takes
            tries.overloaded_since = tries.overloaded_since or time.monotonic()
            if time.monotonic() - tries.overloaded_since > self.overload_wait_s:
                raise exc
            return 0.05 + 0.2 * np.random.random()
        if is_transient(exc):  # a replica restart or a lost connection
            tries.failures += 1
            if tries.failures >= self.attempts:
                raise exc
            return 0.5 * 2 ** (tries.failures - 1)
        raise exc  # a bug or a bad answer: retrying would only repeat it


def is_overloaded(exc: BaseException) -> bool:
    """Whether the deployment refused for lack of room (503 overloaded, or Serve's own back-pressure)."""
    # late: batch.cli imports the job for `trapline --help`; Ray loads when a job runs
    from ray.serve.exceptions import BackPressureError

    exc = unwrap_error(exc)
    return isinstance(exc, BackPressureError) or getattr(exc, "type", None) == "overloaded"


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call may succeed when sent again: a replica that died or is restarting, a
    deployment that is not ready yet, a lost connection. Anything else is raised at once."""
    # late: batch.cli imports the job for `trapline --help`; Ray loads when a job runs
    from ray.exceptions import GetTimeoutError, NodeDiedError, ObjectLostError, RayActorError, WorkerCrashedError
    from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

    exc = unwrap_error(exc)
    if isinstance(exc, RayActorError | WorkerCrashedError | NodeDiedError | ObjectLostError | GetTimeoutError
                  | DeploymentUnavailableError | ReplicaUnavailableError | ConnectionError | TimeoutError):
        return True
    return getattr(exc, "status", None) == 503  # not_ready, crop_geometry_changed (overloaded is handled apart)


def served_refusal(exc: BaseException) -> tuple[str, str] | None:
    """(reason, message) when the deployment refused an image for good: a 4xx, or the model failing on it."""
    exc = unwrap_error(exc)
    status, kind = getattr(exc, "status", None), getattr(exc, "type", None)
    if isinstance(status, int) and isinstance(kind, str) and (status < 500 or kind == "model_error"):
        # an image the replica could not decode carries the decoder's reason, as a read task records it
        reason = getattr(exc, "extra", {}).get("reason")
        return (reason if isinstance(reason, str) else kind), str(exc)
    return None


def config_json(config: Any) -> str:
    """A model config as canonical JSON (the read tasks rebuild it from this)."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True)
