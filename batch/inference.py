"""The per-batch stages of the plan: read + decode + letterbox (CPU tasks), then detect (actors or Serve).

Every stage is a plain function or callable class over a dict of columns, so it can be tested
on a hand-made batch without Ray. Decoding, letterboxing, inference, NMS and filtering are the
detector core's (`model_store.Detector`); nothing here re-implements them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from model_store import FilterSet, ImageDetections, ModelRunError, ModelStore, parse_config
from model_store.imaging import DEFAULT_MAX_PIXELS, ImageDecodeError
from model_store.preprocess import LetterboxMeta, Preprocessor

from .archive import exif_capture_time, open_location
from .schema import RESULT_SCHEMA

PENDING, FAILED = "pending", "failed"
META_FIELDS = [f.name for f in dataclasses.fields(LetterboxMeta)]  # scale_x, scale_y, pad_x, pad_y, width, height
MAX_FILE_BYTES = 512 * 1024 * 1024
PASSTHROUGH = ("uri", "rel_path", "content_id", "size_bytes", "camera_id", "capture_time_us", "capture_time_source")


@functools.lru_cache(maxsize=8)
def preparer(config_json: str) -> Preprocessor:
    """The detector's config-only preprocessing stage (no weights loaded), cached per process."""
    return Preprocessor(parse_config(config_json))


@functools.lru_cache(maxsize=8)
def _storage(url: str):
    return open_location(url)


def read_and_prepare(batch: pa.Table, *, archive_url: str, config_json: str,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, np.ndarray]:
    """Read each file, decode it safely and letterbox it; bad files become `failed` rows, never errors."""
    storage = _storage(archive_url)
    prep = preparer(config_json)
    rows = batch.to_pylist()
    n = len(rows)
    images: list[np.ndarray | None] = [None] * n
    out: dict[str, list[Any]] = {k: [] for k in (*PASSTHROUGH, "status", "error_reason", "error", *META_FIELDS)}
    for i, row in enumerate(rows):
        status, reason, error, meta, data = PENDING, None, None, None, None
        if row["size_bytes"] > MAX_FILE_BYTES:  # never pull a multi-GB "photo" into memory
            status, reason = FAILED, "too_large"
            error = f"file is {row['size_bytes']} bytes, over the {MAX_FILE_BYTES} byte limit for one image"
        else:
            try:
                data = storage.fs.cat_file(row["path"])
            except Exception as exc:  # noqa: BLE001 - any read failure is recorded on the row
                status, reason = FAILED, "read_error"
                error = f"cannot read {row['uri']}: {type(exc).__name__}: {exc}"
        if data is not None:
            try:
                prepared, meta = prep.prepare_bytes(data, max_pixels)
                images[i] = prepared
            except ImageDecodeError as exc:
                status, reason, error = FAILED, exc.reason, str(exc)
            except Exception as exc:  # noqa: BLE001 - a codec crash on one file must not stop the job
                status, reason, error = FAILED, "decode_error", f"{type(exc).__name__}: {exc}"
        if row["capture_time_us"] < 0:  # not given by the path or a probe: EXIF, else mtime
            when = exif_capture_time(data) if data else None
            row["capture_time_us"] = _us(when) if when else row["mtime_us"]
            row["capture_time_source"] = "exif" if when else "mtime"
        for k in PASSTHROUGH:
            out[k].append(row[k])
        out["status"].append(status)
        out["error_reason"].append(reason)
        out["error"].append(error)
        for f in META_FIELDS:
            out[f].append(getattr(meta, f) if meta else -1)
    cols: dict[str, np.ndarray] = {k: np.array(v, dtype=object) for k, v in out.items() if k not in META_FIELDS}
    for k in ("size_bytes", "capture_time_us", "width", "height"):
        cols[k] = np.array(out[k], dtype=np.int64)
    for k in ("scale_x", "scale_y", "pad_x", "pad_y"):
        cols[k] = np.array(out[k], dtype=np.float64)
    cols["image"] = image_column(images, prep.config.input_size)
    return cols


def image_column(images: list[np.ndarray | None], input_size: tuple[int, int]) -> np.ndarray:
    """One (N, H, W, 3) array when every input has one shape (square letterbox), else an object array
    of per-row arrays (rect letterbox: Ray Data stores it as a variable-shaped tensor column).
    Failed rows (None) get a small blank placeholder."""
    shapes = {im.shape for im in images if im is not None}
    if len(shapes) <= 1:
        w, h = input_size
        shape = shapes.pop() if shapes else (h, w, 3)
        out = np.zeros((len(images), *shape), np.uint8)
        for i, im in enumerate(images):
            if im is not None:
                out[i] = im
        return out
    col = np.empty(len(images), dtype=object)
    for i, im in enumerate(images):
        col[i] = im if im is not None else np.zeros((1, 1, 3), np.uint8)
    return col


def _us(when: dt.datetime) -> int:
    return round(when.replace(tzinfo=dt.timezone.utc).timestamp() * 1e6)


def fail_rows(batch: dict[str, np.ndarray], rows: list[int], reason: str, message: str) -> None:
    """Mark `rows` of a numpy batch failed with `reason` and `message` (result_table writes them as failed rows)."""
    for key, value in (("status", FAILED), ("error_reason", reason), ("error", message)):
        col = np.asarray(batch[key], dtype=object).copy()  # Ray hands read-only arrays
        for i in rows:
            col[i] = value
        batch[key] = col


def meta_of(batch: Mapping[str, np.ndarray], i: int) -> LetterboxMeta:
    return LetterboxMeta(float(batch["scale_x"][i]), float(batch["scale_y"][i]), float(batch["pad_x"][i]),
                         float(batch["pad_y"][i]), int(batch["width"][i]), int(batch["height"][i]))


def result_table(batch: Mapping[str, np.ndarray], results: Mapping[int, ImageDetections]) -> pa.Table:
    """One RESULT_SCHEMA row per input row: its detections (kept and dropped) or its failure."""
    n = len(batch["uri"])
    cols: dict[str, list[Any]] = {f.name: [] for f in RESULT_SCHEMA}
    for i in range(n):
        for k in ("uri", "rel_path", "content_id", "size_bytes", "camera_id", "capture_time_source"):
            v = batch[k][i]
            cols[k].append(v.item() if isinstance(v, np.generic) else v)
        cols["capture_time"].append(int(batch["capture_time_us"][i]))
        res = results.get(i)
        if res is None:
            cols["status"].append("failed")
            cols["error_reason"].append(batch["error_reason"][i] or "not_processed")
            cols["error"].append(batch["error"][i] or "the image was not processed")
            for k in ("width", "height", "detection_count", "raw_detection_count", "max_score"):
                cols[k].append(None)
            cols["detections"].append([])
            continue
        kept = [(d, True) for d in res.detections]
        every = sorted(kept + [(d, False) for d in res.dropped], key=lambda p: -p[0].score)
        cols["status"].append("ok" if kept else "empty")
        cols["error_reason"].append(None)
        cols["error"].append(None)
        cols["width"].append(res.width)
        cols["height"].append(res.height)
        cols["detection_count"].append(len(kept))
        cols["raw_detection_count"].append(len(every))
        cols["max_score"].append(max((d.score for d in res.detections), default=None))
        cols["detections"].append([
            {"detection_index": j, "label": d.label, "class_id": d.class_id, "score": d.score,
             "bbox_x": d.bbox[0], "bbox_y": d.bbox[1], "bbox_w": d.bbox[2], "bbox_h": d.bbox[3],
             "kept": is_kept, "flags": list(d.flags)}
            for j, (d, is_kept) in enumerate(every)
        ])
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


class DetectorActor:
    """Inference through a dedicated Ray Data actor pool (`--via actors`).

    Lifecycle: Ray Data starts `--concurrency` of these; `__init__` runs once per actor and
    loads the pinned model version (sha256-verified by the store) onto the actor's device;
    `__call__` then runs once per batch of prepared images: one `infer` for the batch, then the
    core's `postprocess` (decode, NMS, filters) per image. Failed rows pass straight through.
    """

    def __init__(self, store_url: str, ref: str, filter_specs: list[dict], device: str = "cpu",
                 threads: int | None = None) -> None:
        self.detector = ModelStore(store_url).load_detector(ref, device=device, threads=threads)
        self.filters = self.detector.filters(FilterSet.from_specs(filter_specs))

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        todo = [i for i, s in enumerate(batch["status"]) if s == PENDING]
        results: dict[int, ImageDetections] = {}
        if todo:
            try:
                records = self.detector.run_prepared([batch["image"][i] for i in todo],
                                                     [meta_of(batch, i) for i in todo], self.filters)
            except ModelRunError as exc:  # the model, not the image: every row says why, the job goes on
                fail_rows(batch, todo, "model_error", str(exc))
                return result_table(batch, results)
            for i, record in zip(todo, records, strict=True):
                if isinstance(record, Exception):
                    fail_rows(batch, [i], "postprocess_error", f"{type(record).__name__}: {record}")
                else:
                    results[i] = record
        return result_table(batch, results)


def detector_handle(model_name: str, app_name: str):
    """The Serve deployment handle for `model_name` (serve.get_detector_handle when serve/ provides it)."""
    try:
        from serve import get_detector_handle  # the project's serve/ package, not ray.serve
    except ImportError:
        get_detector_handle = None
    if get_detector_handle is not None:
        return get_detector_handle(model_name, app_name=app_name)
    from ray import serve as ray_serve

    return ray_serve.get_deployment_handle(f"detector-{model_name}", app_name=app_name)


def check_served(res: ImageDetections, expected: Mapping[str, str]) -> None:
    """Refuse results from another model version or filter set than the run records."""
    got = {"version": res.model.version, "sha256": res.model.sha256, "filters_hash": res.filters.hash}
    bad = {k: (got[k], v) for k, v in expected.items() if got.get(k) != v}
    if bad:
        detail = ", ".join(f"{k} {g!r} (expected {e!r})" for k, (g, e) in bad.items())
        raise RuntimeError(f"the Serve deployment answered with {detail}; is the right version deployed?")


class ServeClient:
    """Inference through the live Serve deployment's handle (`--via serve`).

    Lifecycle: a small pool of light actors; `__init__` looks up the handle once; `__call__`
    sends every prepared image of the batch at once (so the deployment's @serve.batch can group
    them), waits for all, and checks each answer's model version, sha256 and filters hash.
    """

    def __init__(self, model_name: str, ref: str, filter_overrides: dict | None, expected: dict[str, str],
                 app_name: str = "trapline", attempts: int = 3) -> None:
        self.handle = detector_handle(model_name, app_name)
        self.ref = ref
        self.filter_overrides = filter_overrides or None
        self.expected = expected
        self.attempts = attempts

    def _detect(self, image: np.ndarray, meta: LetterboxMeta):
        return self.handle.detect_prepared.remote(image, meta, self.ref, self.filter_overrides)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        todo = [i for i, s in enumerate(batch["status"]) if s == PENDING]
        pending = {i: self._detect(batch["image"][i], meta_of(batch, i)) for i in todo}
        results: dict[int, ImageDetections] = {}
        for i, response in pending.items():
            for attempt in range(self.attempts):
                try:
                    results[i] = ImageDetections.model_validate(response.result())
                    break
                except Exception as exc:  # noqa: BLE001 - sorted below: refusal, or transient and retried
                    refusal = served_refusal(exc)
                    if refusal is not None:  # the deployment answered "no" for this image: retrying won't help
                        fail_rows(batch, [i], *refusal)
                        break
                    if attempt == self.attempts - 1:
                        raise
                    time.sleep(0.5 * 2 ** attempt)  # back-pressure (503) or a replica restart
                    response = self._detect(batch["image"][i], meta_of(batch, i))
            if i in results:
                check_served(results[i], self.expected)
        return result_table(batch, results)


def served_refusal(exc: BaseException) -> tuple[str, str] | None:
    """(reason, message) when the deployment refused an image for good: a 4xx, or the model failing on it."""
    from serve.protocol import unwrap_error  # the error the replica raised, under Ray's wrapper

    exc = unwrap_error(exc)
    status, kind = getattr(exc, "status", None), getattr(exc, "type", None)
    if isinstance(status, int) and isinstance(kind, str) and (status < 500 or kind == "model_error"):
        return kind, str(exc)
    return None


def preflight_serve(model_name: str, ref: str, filter_overrides: dict | None, expected: dict[str, str],
                    input_size: tuple[int, int], app_name: str = "trapline", pad_value: int = 114) -> None:
    """One blank image through the deployment before the job starts: fails fast with a clear message."""
    try:
        handle = detector_handle(model_name, app_name)
        w, h = input_size
        blank = np.full((h, w, 3), pad_value, np.uint8)
        meta = LetterboxMeta(1.0, 1.0, 0.0, 0.0, w, h)
        raw = handle.detect_prepared.remote(blank, meta, ref, filter_overrides or None).result()
    except Exception as exc:  # noqa: BLE001 - turn Ray/Serve lookup errors into one actionable message
        raise RuntimeError(
            f"cannot reach Serve deployment 'detector-{model_name}' of app {app_name!r} for {ref}: "
            f"{type(exc).__name__}: {exc}. Start the service on this cluster (and pass --address) "
            "or use --via actors") from None
    check_served(ImageDetections.model_validate(raw), expected)


def config_json(config: Any) -> str:
    """A model config as canonical JSON (the read tasks rebuild it from this)."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True)
