"""The model deployment: one Serve deployment per served model (`detector-<name>`).

Why one deployment per model rather than Serve model multiplexing: our models differ in what
they need (a GPU fraction for one, CPUs for another, their own batch size and replica count
or autoscaling), and each has a steady stream of traffic, so giving each its own deployment
sizes and scales them independently. Multiplexing shines for many sparse models sharing one
pool, which is not our case. Versions of one model *do* share a replica: they need the same
resources, and the alias swap is a state change inside the replica (VersionManager), not a
new model id; a request that pins another version loads it into a bounded LRU.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ground.errors import InvalidParameterError
from model_store import Detector, FilterSet, ImageDetections, Interrupt, ModelRef, ModelStore, RunInterruptedError
from model_store.core.clip_sampling import Sampling
from model_store.core.clips import ClipDetections, detect_clip_bytes
from model_store.core.imaging import decode_image_at_least
from model_store.core.preprocess import LetterboxMeta
from model_store.core.tiling import TiledInput, TiledMeta
from serve.answers import DetectAnswer
from serve.batcher import Lane
from serve.compose import CropRequest, cut_crops
from serve.config import ModelServeConfig
from serve.protocol import core_error
from serve.render import render_jpeg
from serve.versioned import VersionedReplica, current_request_id
from serve.versions import LoadedVersion

logger = logging.getLogger("ray.serve.trapline")




def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _lower_thread_priority(step: int = 10) -> None:
    """Best effort: on Linux `setpriority` on a thread id renices that thread alone.

    Relative to the niceness the thread was born with, not to an absolute value: Ray starts its workers at
    niceness 15, where an absolute 10 would put archive decoding *above* the online threads (as root) or fail
    (as anyone else) and leave it level with them. Capped at 19, the lowest priority Linux has.
    """
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + step))
    except (AttributeError, OSError):  # not Linux, or not allowed: the separate pool still helps
        pass


@dataclass
class _Item:
    """One image waiting for a batch: already decoded and letterboxed, with its version and filters."""

    loaded: LoadedVersion
    prepared: np.ndarray
    meta: LetterboxMeta
    filters: FilterSet
    timing_ms: dict[str, float] = field(default_factory=dict)
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class _Outcome:
    record: ImageDetections | None = None
    error: BaseException | None = None


@dataclass
class _BatchReport:
    version: str
    size: int
    inference_ms: float


class DetectorReplica(VersionedReplica):
    """Serves one model: decodes and prepares each request, batches the forward pass, hot-swaps versions.

    Lifecycle (Ray Serve calls these):
      - `__init__` once per replica: opens the store handle and thread pools; loads nothing.
      - `reconfigure(user_config)` right after `__init__` and whenever the deployment's
        `user_config` changes (serve deploy): applies batch size / wait, aliases, pins. The first
        call loads, verifies and warms the served versions before the replica takes traffic
        (Serve routes nothing to it until this returns), then starts the alias poller. Later
        calls swap in the background so the replica keeps serving.
      - request methods decode and letterbox per request in the decode pool, then meet other
        requests in the two-lane batcher (serve/batcher.py): `detect` (HTTP) in the online lane,
        `detect_bytes` / `detect_prepared` (batch jobs, `--via serve`) in the bulk lane, which
        only runs when no online request waits. Each lane admits a bounded number of requests
        and refuses the next with 503 + Retry-After before decoding it. The forward pass runs on
        one dedicated thread, so the event loop stays free to accept requests. When the request
        asks for crops (a detector with classifiers, or `?crops=true`), `detect` keeps the decoded
        full-resolution image and cuts them from it after the batch (serve/compose.py).
      - control methods (`status`, `refresh`, `preload`) are what the ingress broadcasts to
        every replica for GET /v1/models and the admin routes.
    """

    kind = "detector"

    def __init__(self, config: ModelServeConfig | dict[str, Any], store_root: str | None = None,
                 cache_dir: str | None = None) -> None:
        # The model's serve config as build_app validated it (JSON from Serve): what the replica is built with is
        # read from it here, never re-listed on the way (tests/unit/test_serve_config_plumbing.py walks it).
        cfg = ModelServeConfig.model_validate(config)
        self.device = cfg.effective_device
        self.onnx_threads = cfg.effective_onnx_threads
        decode_threads = cfg.effective_decode_threads
        self._decode_pool = ThreadPoolExecutor(decode_threads, thread_name_prefix="trapline-decode")
        # Archive images decode on their own threads, at a lower OS priority: in the shared pool an
        # online request's decode would queue behind every admitted archive image, and on a busy
        # CPU the scheduler should give online work the core (a priority inversion before the batcher).
        self._bulk_decode_pool = ThreadPoolExecutor(max(1, decode_threads - 1), initializer=_lower_thread_priority,
                                                    thread_name_prefix="trapline-decode-bulk")
        # One forward pass at a time: ORT already uses `onnx_threads` inside it, and GPU sessions
        # must not run concurrently. Loads get their own thread so a swap never stalls inference.
        self._infer_pool = ThreadPoolExecutor(1, thread_name_prefix="trapline-infer")
        super().__init__(cfg.name, store_root, cache_dir, self._load_detector,
                         extra_pools=(self._decode_pool, self._bulk_decode_pool, self._infer_pool))

    def _load_detector(self, store: ModelStore, version: str) -> Detector:
        return store.load_detector(ModelRef(self.model, version=version), device=self.device,
                                   threads=self.onnx_threads)

    async def detect(self, data: bytes, ref: str | None = None, filters: dict[str, Any] | None = None,
                     render: bool = False, crops: CropRequest | None = None, tiling: Any = None) -> DetectAnswer:
        """Detect objects in encoded image bytes (an HTTP request, in the online lane); the answer holds the
        `ImageDetections` record as it is, the annotated JPEG with `render`, and the classifier crops and
        snips asked for by `crops` (serve/compose.py). `tiling` overrides the model's (`Detector.tiling`)."""
        t0 = time.perf_counter()
        request_id = current_request_id()
        keep_rgb = render or (crops is not None and crops.needs_image)
        try:
            loaded, record, rgb = await self._detect_encoded("online", data, ref, filters, keep_rgb, tiling)
            answer = DetectAnswer(record)
            if render:
                answer.jpeg = await self._in_pool(self._decode_pool, render_jpeg, rgb, record.detections)
            elif crops is not None and crops.needs_image:
                # Cut here, where the full-resolution image already is: only the crops travel on.
                await self._in_pool(self._decode_pool, cut_crops, rgb, answer, crops)
            del rgb
        except Exception as exc:
            raise self._refused(exc, request_id, ref) from None
        total_ms = (time.perf_counter() - t0) * 1000
        self.metrics.result(loaded.version, [d.label for d in record.detections], total_ms)
        # DEBUG, not INFO: one line per request is hot-path work (a record, a handler, a write) that the soak
        # counted 8,911 times in 10 minutes; Serve's access line and the metrics already count every request,
        # and every refusal or failure still logs its request id (VersionedReplica._refused).
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("detect request_id=%s model=%s:%s size=%dx%d detections=%d batch=%d total_ms=%.1f",
                         request_id, self.model, loaded.version, record.width, record.height,
                         len(record.detections), record.timing_ms.get("batch_size", 1), total_ms)
        return answer

    async def detect_clip(self, data: bytes, ref: str | None = None, filters: dict[str, Any] | None = None,
                          sampling: dict[str, Any] | None = None, tiling: Any = None) -> ClipDetections:
        """A short clip (`POST /v1/detect` with a video): its sampled frames through this version's detector, a
        batch of frames at a time on an online decode thread (beside the batcher, so stills are not held behind
        it), and its tracks. Admitted as one online request."""
        request_id = current_request_id()
        try:
            with self._admit("online"):
                loaded = await self._resolve(ref)
                filterset = loaded.detector.filters(filters)
                clip = await self._in_pool(self._decode_pool, detect_clip_bytes, loaded.detector, data,
                                           Sampling(**(sampling or {})), filterset, self.runtime.max_pixels,
                                           loaded.detector.tiling(tiling))
        except Exception as exc:
            raise self._refused(exc, request_id, ref) from None
        logger.debug("detect clip request_id=%s model=%s:%s frames=%d animals=%d status=%s", request_id, self.model,
                     loaded.version, len(clip.frames), clip.animals, clip.reason or "ok")
        return clip

    async def detect_bytes(self, data: bytes, ref: str | None = None,
                           filters: dict[str, Any] | None = None, tiling: Any = None) -> ImageDetections:
        """The batch-job entry point (`--via serve`): one encoded image of an archive, in the bulk lane.

        Decoded and letterboxed here like an HTTP request, so only the file's bytes travel; returns
        the `ImageDetections` record as it is (Ray pickles it). Online requests go first at every batch; when
        the bulk lane is full the call is refused with OverloadedError (503) and the caller retries.
        """
        request_id = current_request_id()
        t0 = time.perf_counter()
        try:
            loaded, record, _ = await self._detect_encoded("bulk", data, ref, filters, keep_rgb=False, tiling=tiling)
        except Exception as exc:
            raise self._refused(exc, request_id, ref) from None
        return self._archive_answer(loaded, record, t0)

    async def detect_prepared(self, prepared: np.ndarray, meta: LetterboxMeta, ref: str | None = None,
                              filters: dict[str, Any] | None = None) -> ImageDetections:
        """The batch-job entry point: one image already letterboxed by `Detector.prepare`.

        `prepared` is the HWC uint8 array and `meta` the `LetterboxMeta` (as it is; Ray pickles it) from
        `Detector.prepare` of the same model (same input size); `ref` is None (the default alias),
        "NAME:VERSION" or "NAME@ALIAS"; `filters` are per-call overrides. Returns
        the `ImageDetections` record (as it is), the library's record for the same image
        (timing_ms holds queue / inference / postprocess / batch_size). Goes through the same
        dynamic batching as HTTP requests.
        """
        request_id = current_request_id()
        t0 = time.perf_counter()
        try:
            with self._admit("bulk"):
                loaded = await self._resolve(ref)
                det = loaded.detector
                if not det.preprocessor.accepts(prepared):
                    w, h = det.config.input_size
                    got = f"{prepared.dtype} {prepared.shape}" if isinstance(prepared, np.ndarray) else type(prepared)
                    raise InvalidParameterError(
                        f"prepared must be a uint8 (H, W, 3) array from Detector.prepare of {self.model}:"
                        f"{loaded.version} (letterbox {det.config.preprocess.letterbox}, input {w}x{h}), got {got}")
                tiled = isinstance(prepared, TiledInput)
                if not isinstance(meta, TiledMeta if tiled else LetterboxMeta) or \
                        (tiled and len(meta.metas) != len(prepared)):
                    raise InvalidParameterError(
                        f"meta must be the {'TiledMeta' if tiled else 'LetterboxMeta'} from Detector.prepare of the "
                        f"same image, got {type(meta)}")
                record = await self._run(_Item(loaded, prepared, meta, det.filters(filters)), "bulk")
        except Exception as exc:
            raise self._refused(exc, request_id, ref) from None
        return self._archive_answer(loaded, record, t0)

    async def detect_bytes_many(self, images: list[bytes], ref: str | None = None,
                                filters: dict[str, Any] | None = None,
                                tiling: Any = None) -> list[ImageDetections | BaseException]:
        """Several encoded archive images in one call: what the batch job's `--via serve` client sends.

        Each image is admitted, decoded and batched as `detect_bytes` would be, so the bulk lane's bound
        still counts images; Serve's cost per call (routing, the request's context, its log line) is paid
        once for all of them. Answers in order: each image's `ImageDetections`, or the typed error that
        refused that image alone (an `OverloadedError` when the lane was full: send that image again).
        An error that is not the image's (a bug) fails the whole call, as it would fail `detect_bytes`.
        """
        return await self._each([self.detect_bytes(data, ref, filters, tiling) for data in images])

    async def detect_prepared_many(self, prepared: list[np.ndarray], metas: list[LetterboxMeta],
                                   ref: str | None = None, filters: dict[str, Any] | None = None,
                                   ) -> list[ImageDetections | BaseException]:
        """`detect_prepared` for several images already letterboxed, answered as `detect_bytes_many` answers."""
        if len(prepared) != len(metas):
            raise InvalidParameterError(f"prepared and metas must pair up: got {len(prepared)} image(s) and "
                                        f"{len(metas)} meta(s)")
        return await self._each([self.detect_prepared(image, meta, ref, filters)
                                 for image, meta in zip(prepared, metas, strict=True)])

    @staticmethod
    async def _each(calls: list) -> list[ImageDetections | BaseException]:
        answers = await asyncio.gather(*calls, return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException) and core_error(answer) is None:
                raise answer  # already logged and counted by the call that met it
        return answers

    async def _detect_encoded(self, lane: Lane, data: bytes, ref: str | None, filters: dict[str, Any] | None,
                              keep_rgb: bool, tiling: Any = None
                              ) -> tuple[LoadedVersion, ImageDetections, np.ndarray | None]:
        """Admit, resolve the version, decode + letterbox (or cut into tiles) on the lane's decode threads, and run
        in the lane's batches (a tiled image's tiles as one item); returns the version, its record and (when
        `keep_rgb`) the full-resolution image."""
        pool = self._decode_pool if lane == "online" else self._bulk_decode_pool
        with self._admit(lane):
            loaded = await self._resolve(ref)
            filterset = loaded.detector.filters(filters)
            tiled = loaded.detector.tiling(tiling)
            rgb, prepared, meta, timing = await self._in_pool(pool, self._decode_prepare, loaded, data, keep_rgb,
                                                              tiled)
            record = await self._run(_Item(loaded, prepared, meta, filterset, timing), lane)
        return loaded, record, rgb

    def _archive_answer(self, loaded: LoadedVersion, record: ImageDetections, t0: float) -> ImageDetections:
        self.metrics.result(loaded.version, [d.label for d in record.detections], (time.perf_counter() - t0) * 1000)
        return record

    def _decode_prepare(self, loaded: LoadedVersion, data: bytes, keep_rgb: bool, tiling: Any = None):
        """Decode (pixel cap checked on the header first) and letterbox; the full-size image is kept
        only when it will be drawn on, so a waiting request holds just the small model input."""
        t0 = time.perf_counter()
        prep = loaded.detector.preprocessor
        # Drawing needs the full-resolution image; otherwise a JPEG may be decoded scaled down to
        # no less than the model needs (the same path batch jobs take, so results match).
        # A tiled image is decoded whole: its tiles are cut from the full-resolution pixels.
        reduce = prep.min_decode_size if (prep.config.preprocess.reduced_decode and not keep_rgb
                                          and tiling is None) else None
        rgb, size = decode_image_at_least(data, self.runtime.max_pixels, reduce)
        t1 = time.perf_counter()
        prepared, meta = prep.prepare(rgb, size, tiling=tiling)
        timing = {"decode": _ms(t1 - t0), "preprocess": _ms(time.perf_counter() - t1)}
        return (rgb if keep_rgb else None), prepared, meta, timing

    async def _run(self, item: _Item, lane: Lane) -> ImageDetections:
        outcome: _Outcome = await self.batcher.submit(item, lane)
        if outcome.error is not None:
            raise outcome.error
        return outcome.record

    async def _run_items(self, items: list[_Item],
                         interrupt: Interrupt | None = None) -> list[_Outcome | RunInterruptedError]:
        outcomes, reports = await self._in_pool(self._infer_pool, self._run_batch, items, interrupt)
        for rep in reports:
            self.metrics.batch(rep.version, rep.size, rep.inference_ms)
            self.stats.batch(rep.version, rep.size)
        # Items a preemption stopped go back to the batcher as RunInterruptedError, which queues them again.
        return [o.error if isinstance(o.error, RunInterruptedError) else o for o in outcomes]

    def _run_batch(self, items: list[_Item], interrupt: Interrupt | None = None,
                   ) -> tuple[list[_Outcome], list[_BatchReport]]:
        """One forward pass per version present in the batch; an error fails only the items it concerns.
        Once `interrupt` stops a pass, that group and the groups after it report RunInterruptedError."""
        start = time.perf_counter()
        outcomes = [_Outcome() for _ in items]
        reports = []
        groups: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(id(item.loaded), []).append(i)
        for idxs in groups.values():
            loaded = items[idxs[0]].loaded
            try:
                records = loaded.detector.run_prepared([items[i].prepared for i in idxs], [items[i].meta for i in idxs],
                                                       [items[i].filters for i in idxs],
                                                       interrupt if loaded.detector.interruptible else None)
            except RunInterruptedError as exc:
                for i in idxs:
                    outcomes[i].error = exc
                continue  # the next group raises RunInterruptedError at once, before its pass starts
            except Exception as exc:  # noqa: BLE001 - reported to each caller of this group
                logger.warning("inference of %s:%s failed for a batch of %d: %s", self.model, loaded.version,
                               len(idxs), exc)
                for i in idxs:
                    outcomes[i].error = exc
                continue
            inference_ms = next((r.timing_ms["inference"] for r in records if not isinstance(r, Exception)), 0.0)
            reports.append(_BatchReport(loaded.version, len(idxs), inference_ms))
            for i, record in zip(idxs, records, strict=True):
                if isinstance(record, Exception):
                    outcomes[i].error = record
                    continue
                item = items[i]
                record.timing_ms = {**item.timing_ms, "queue": _ms(start - item.enqueued), **record.timing_ms}
                outcomes[i].record = record
        return outcomes, reports
