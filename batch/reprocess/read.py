"""The read stage of the plan: list rows in, file bytes (or decoded, letterboxed images) out.

Two shapes, chosen by `--decode` (see PlanSpec.decode):

- `read_files` (`--decode actors`, the default): reads each file and its capture time. The
  inference stage (batch/reprocess/detect.py) calls it itself on the listing rows it receives, so only
  paths travel through Ray and each image is read, decoded, letterboxed and run by one process.
  Measured on 2 cores, a separate read-task stage cost more CPU per image (a Ray task per block,
  the bytes through the object store) than decoding the image.
- `read_and_prepare` (`--decode tasks`): a stage of its own that also decodes and letterboxes, so
  many small CPU tasks can feed actors that hold a GPU and little CPU.

Bad files become `failed` rows with a reason, never errors. Both are plain functions over a
batch of listing rows (pyarrow or numpy columns), testable without Ray.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

import numpy as np
import pyarrow as pa

from model_store import parse_config
from model_store.core.imaging import DEFAULT_MAX_PIXELS, ImageDecodeError
from model_store.core.preprocess import LetterboxMeta, Preprocessor
from model_store.core.video import is_clip
from model_store.tables.archive import cached_location, exif_capture
from model_store.tables.digests import content_digest

PENDING, FAILED = "pending", "failed"
META_FIELDS = [f.name for f in dataclasses.fields(LetterboxMeta)]  # scale_x, scale_y, pad_x, pad_y, width, height
MAX_FILE_BYTES = 512 * 1024 * 1024
PASSTHROUGH = ("uri", "rel_path", "content_id", "size_bytes", "camera_id", "capture_time_us", "capture_time_source",
               "content_digest")


@functools.lru_cache(maxsize=8)
def preparer(config_json: str) -> Preprocessor:
    """The detector's config-only preprocessing stage (no weights loaded), cached per process."""
    return Preprocessor(parse_config(config_json))


@dataclasses.dataclass
class Decoded:
    """One file's decode + letterbox outcome: the model input and its meta, or why there is none."""

    image: np.ndarray | None = None
    meta: LetterboxMeta | None = None
    reason: str | None = None
    error: str | None = None


def decode_and_prepare(prep: Preprocessor, data: bytes, max_pixels: int) -> Decoded:
    """Decode safely (pixel cap checked on the header) and letterbox; any failure is a reason, not a raise."""
    try:
        image, meta = prep.prepare_bytes(data, max_pixels)
        return Decoded(image, meta)
    except ImageDecodeError as exc:
        return Decoded(reason=exc.reason, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a codec crash on one file must not stop the job
        return Decoded(reason="decode_error", error=f"{type(exc).__name__}: {exc}")


def _read(storage, row: dict[str, Any]) -> tuple[bytes | None, str | None, str | None]:
    """(bytes, failure reason, message) for one listing row; the row's capture time and content digest are filled
    in (the digest hashes the bytes read for decoding anyway: ~1 ms per 2 MB, no second read)."""
    data = reason = error = None
    row["content_digest"] = None
    if is_clip(row["uri"]):  # never read whole: the inference stage streams its sampled frames (clips.py)
        if row["capture_time_us"] < 0:  # the container's creation time replaces it when it has one
            row["capture_time_us"], row["capture_time_source"] = row["mtime_us"], "mtime"
        return None, None, None
    if row["size_bytes"] > MAX_FILE_BYTES:  # never pull a multi-GB "photo" into memory
        reason = "too_large"
        error = f"file is {row['size_bytes']} bytes, over the {MAX_FILE_BYTES} byte limit for one image"
    else:
        try:
            data = storage.fs.cat_file(row["uri"])  # fsspec reads a URL as it reads its bare path
        except Exception as exc:  # noqa: BLE001 - any read failure is recorded on the row
            reason, error = "read_error", f"cannot read {row['uri']}: {type(exc).__name__}: {exc}"
    if data is not None:
        row["content_digest"] = content_digest(data)
    if row["capture_time_us"] < 0:  # not given by the path or a probe: EXIF, else mtime
        found = exif_capture(data) if data else None
        row["capture_time_us"] = _us(found[0]) if found else row["mtime_us"]
        row["capture_time_source"] = found[1] if found else "mtime"
    return data, reason, error


def _columns(rows: list[dict[str, Any]], reasons: list[str | None], errors: list[str | None]) -> dict[str, np.ndarray]:
    cols = {k: np.array([r[k] for r in rows], dtype=object) for k in PASSTHROUGH}
    for k in ("size_bytes", "capture_time_us"):
        cols[k] = np.array([r[k] for r in rows], dtype=np.int64)
    cols["status"] = np.array([FAILED if r else PENDING for r in reasons], dtype=object)
    cols["error_reason"] = np.array(reasons, dtype=object)
    cols["error"] = np.array(errors, dtype=object)
    return cols


def listing_rows(batch: pa.Table | Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """The listing rows of a batch as dicts of Python values, from pyarrow or numpy columns."""
    if isinstance(batch, pa.Table):
        return batch.to_pylist()
    cols = {k: v.tolist() for k, v in batch.items()}
    return [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]


def read_files(batch: pa.Table | Mapping[str, np.ndarray], *, archive_url: str,
               pool: Executor | None = None) -> dict[str, np.ndarray]:
    """Read each file (on `pool`'s threads when given: object-store reads overlap their latency); the encoded
    bytes travel on in `data` (None for rows that failed to read)."""
    storage = cached_location(archive_url)
    rows = listing_rows(batch)
    one = functools.partial(_read, storage)
    read = list(pool.map(one, rows)) if pool is not None and len(rows) > 1 else [one(row) for row in rows]
    cols = _columns(rows, [r for _, r, _ in read], [e for _, _, e in read])
    data = np.empty(len(rows), dtype=object)
    data[:] = [d for d, _, _ in read]
    cols["data"] = data
    return cols


def read_and_prepare(batch: pa.Table, *, archive_url: str, config_json: str,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, np.ndarray]:
    """Read each file, decode it safely and letterbox it; the model input travels on in `image`."""
    storage = cached_location(archive_url)
    prep = preparer(config_json)
    rows = batch.to_pylist()
    reasons: list[str | None] = []
    errors: list[str | None] = []
    decoded: list[Decoded] = []
    for row in rows:
        data, reason, error = _read(storage, row)
        if data is None and reason is None:  # a clip: the inference stage streams it
            out = Decoded()
        else:
            out = decode_and_prepare(prep, data, max_pixels) if data is not None else Decoded(reason=reason,
                                                                                              error=error)
        decoded.append(out)
        reasons.append(out.reason)
        errors.append(out.error)
    cols = _columns(rows, reasons, errors)
    cols.update(meta_columns([d.meta for d in decoded]))
    cols["image"] = image_column([d.image for d in decoded], prep.config.input_size)
    return cols


def meta_columns(metas: list[LetterboxMeta | None]) -> dict[str, np.ndarray]:
    """The letterbox metas as columns (-1 where there is none)."""
    cols = {}
    for f in META_FIELDS:
        dtype = np.int64 if f in ("width", "height") else np.float64
        cols[f] = np.array([getattr(m, f) if m else -1 for m in metas], dtype=dtype)
    return cols


def meta_of(batch: Mapping[str, np.ndarray], i: int) -> LetterboxMeta:
    return LetterboxMeta(float(batch["scale_x"][i]), float(batch["scale_y"][i]), float(batch["pad_x"][i]),
                         float(batch["pad_y"][i]), int(batch["width"][i]), int(batch["height"][i]))


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
