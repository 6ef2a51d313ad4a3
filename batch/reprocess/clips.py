"""The archive's clips in the inference stage: one listing row per clip in, one result row per clip out.

A clip is never read whole: the actor opens it where it lies (a local path, or the object through fsspec, which
PyAV reads in ranged chunks) and streams the sampled frames through the core's clip loop
(`model_store.core.clips.detect_clip`), a batch of frames at a time. A clip that cannot be opened, or that breaks
halfway, is a `failed` row with its reason and the frames it did read; nothing here raises for a bad clip.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ground.errors import BatchError
from model_store import ModelRunError
from model_store.core.clip_settings import ClipSettings
from model_store.core.clips import ClipDecoding, detect_clip
from model_store.core.video import ClipReader, VideoDecodeError, is_clip
from model_store.tables.codec import clip_fields, failed_fields

__all__ = ["ClipReading", "ClipSettings", "clip_rows", "is_clip", "open_clip", "run_clip"]

CLIP_PARTS = 2  # time ranges of a long clip decoded at once: the cores of the machines this runs on (2 here)


def clip_rows(batch: Mapping[str, np.ndarray], rows: list[int]) -> list[int]:
    """The rows of `rows` that are clips (by their file's extension)."""
    return [i for i in rows if is_clip(str(batch["uri"][i]))]


def _source(storage, uri: str):
    """What PyAV opens: the local path itself, else a streaming file object of the storage."""
    if storage.is_local:
        return contextlib.nullcontext(uri)
    return storage.fs.open(uri, "rb", block_size=4 * 2**20, cache_type="readahead")


@contextlib.contextmanager
def open_clip(storage, uri: str, max_pixels: int | None) -> Iterator[ClipReader]:
    """The clip opened where it lies (each time range of a long clip opens its own)."""
    with _source(storage, uri) as source, ClipReader(source, threads=1, max_pixels=max_pixels) as reader:
        yield reader


@dataclass(frozen=True)
class ClipReading:
    """Where and how a run's actor reads its clips: the storage they lie in, the pixel cap, frames per forward pass,
    and time ranges of a long clip decoded at once."""

    storage: Any
    max_pixels: int | None
    batch_size: int
    parts: int = CLIP_PARTS


def run_clip(detector, filters, batch: dict[str, np.ndarray], i: int, settings: ClipSettings,
             reading: ClipReading) -> dict[str, Any]:
    """The result-row fields of clip row `i` (its capture time columns are updated in `batch` when the container
    dates the clip and the path did not). A long clip is decoded in up to `reading.parts` time ranges at once
    (`detect_clip`): one clip is often a job's longest row, and it would otherwise keep one core busy while the
    other actors have nothing left to do."""
    uri = str(batch["uri"][i])
    reopen = functools.partial(open_clip, reading.storage, uri, reading.max_pixels)
    try:
        with reopen() as reader:
            _date(batch, i, reader.info.created)
            clip = detect_clip(detector, reader, settings, filters,
                               ClipDecoding(batch_size=reading.batch_size, reopen=reopen, parts=reading.parts))
    except VideoDecodeError as exc:
        return {**failed_fields(exc.reason, str(exc)), "kind": "video", "frames_sampled": exc.frames_read}
    except OSError as exc:
        return {**failed_fields("read_error", f"cannot read {uri}: {type(exc).__name__}: {exc}"), "kind": "video"}
    except (ModelRunError, BatchError):
        raise  # the model or the run, not the clip: the caller fails the row as it fails a batch of images
    except Exception as exc:  # noqa: BLE001 - a decoder crash on one clip must not stop the job
        return {**failed_fields("decode_error", f"{type(exc).__name__}: {exc}"), "kind": "video"}
    return clip_fields(clip, int(batch["capture_time_us"][i]))


def _date(batch: dict[str, np.ndarray], i: int, created: dt.datetime | None) -> None:
    """The container's creation time for a clip the path did not date (its row carries the mtime until now)."""
    if created is None or batch["capture_time_source"][i] not in ("mtime", None):
        return
    for key, value in (("capture_time_us", _us(created)), ("capture_time_source", "container")):
        col = np.array(batch[key], copy=True)  # Ray hands read-only arrays
        col[i] = value
        batch[key] = col


def _us(when: dt.datetime) -> int:
    return round(when.replace(tzinfo=dt.timezone.utc).timestamp() * 1e6)
