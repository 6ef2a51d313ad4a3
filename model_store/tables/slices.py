"""One table set's image rows a slice of whole cameras at a time, for the table tools that must not hold a whole
archive (a Camtrap DP export, the report): at a million images the rows of every image at once took several GiB.

A camera is never cut: its events, its tracks and its deployment are whole in one slice, so what a tool computes
per slice is what it would compute over everything. Cameras are packed, in id order, into slices of at most
`max_images` image rows (a camera larger than that is a slice of its own). The counting pass reads one column
a record batch at a time; each slice is then one filtered read, which Parquet's row-group statistics make cheap
where the parts hold few cameras each (the job writes an archive in listing order, camera folder by folder).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds

from model_store.tables.cameras import DEFAULT_CAMERA_ID, camera_or_default
from model_store.tables.reader import Tables

DEFAULT_SLICE_IMAGES = 50_000


@dataclass(frozen=True)
class CameraSlice:
    cameras: tuple[str, ...]  # camera ids as the readers show them (a missing id is DEFAULT_CAMERA_ID)
    images: int  # image rows (all processings) the slice holds

    def expression(self, subset: ds.Expression | None = None) -> ds.Expression:
        """The images-table filter that selects this slice's rows (rows without a camera id go with the default),
        within `subset` where one is given."""
        expr = ds.field("camera_id").isin(list(self.cameras))
        if DEFAULT_CAMERA_ID in self.cameras:
            expr = expr | ds.field("camera_id").is_null() | (ds.field("camera_id") == "")
        return expr if subset is None else subset & expr


    def holds(self, camera_ids: Iterable[Any]) -> np.ndarray:
        """A boolean mask: which of these camera ids (a missing one read as the default) are this slice's."""
        return np.fromiter((camera_or_default(c) in self.cameras for c in camera_ids), dtype=bool)


def camera_counts(tables: Tables, model_name: str, model_version: str, filters_hash: str,
                  subset: ds.Expression | None = None) -> Counter[str]:
    """Image rows per camera of one table set (and subset), one column streamed a batch at a time."""
    counts: Counter[str] = Counter()
    expr = ds.field("filters_hash") == filters_hash
    for batch in tables.stream_images(model_name, model_version, ["camera_id"],
                                      expr if subset is None else expr & subset):
        for entry in pc.value_counts(batch["camera_id"]).to_pylist():
            counts[entry["values"] or DEFAULT_CAMERA_ID] += entry["counts"]
    return counts


def camera_slices(counts: Counter[str], max_images: int = DEFAULT_SLICE_IMAGES) -> list[CameraSlice]:
    """Cameras packed in id order into slices of at most `max_images` rows (a larger camera alone)."""
    if max_images < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}")
    out: list[CameraSlice] = []
    cameras: list[str] = []
    held = 0
    for camera in sorted(counts):
        n = counts[camera]
        if cameras and held + n > max_images:
            out.append(CameraSlice(tuple(cameras), held))
            cameras, held = [], 0
        cameras.append(camera)
        held += n
    if cameras:
        out.append(CameraSlice(tuple(cameras), held))
    return out


def uri_span(images: pd.DataFrame) -> ds.Expression | None:
    """A filter on `uri` spanning the given image rows: it lets a detections read skip the row groups of other
    cameras by their statistics (the exact rows are still the join on the image rows' keys)."""
    if images.empty:
        return None
    return (ds.field("uri") >= images["uri"].min()) & (ds.field("uri") <= images["uri"].max())


def iter_camera_slices(tables: Tables, model_name: str, model_version: str, filters_hash: str,
                       subset: ds.Expression | None = None, max_images: int = DEFAULT_SLICE_IMAGES
                       ) -> Iterator[CameraSlice]:
    """The slices of one table set (and subset), in camera order."""
    yield from camera_slices(camera_counts(tables, model_name, model_version, filters_hash, subset), max_images)
