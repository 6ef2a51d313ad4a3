"""One table set's image rows a slice of whole cameras at a time, for the table tools that must not hold a whole
archive (a Camtrap DP export, the report): at a million images the rows of every image at once took several GiB.

A camera is never cut: its events, its tracks and its deployment are whole in one slice, so what a tool computes
per slice is what it would compute over everything. Nor are two cameras that share an image: an image whose camera id
changed between runs (a new path pattern) has rows under both ids, and only a slice that holds both can tell which
row is current. Those groups are packed, in camera id order, into slices of at most `max_images` image rows (a
larger group is a slice of its own). The counting pass reads two columns a record batch at a time; each slice is
then one filtered read, which Parquet's row-group statistics make cheap where the parts hold few cameras each (the
job writes an archive in listing order, camera folder by folder).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from model_store.tables.cameras import DEFAULT_CAMERA_ID, camera_codes, camera_or_default
from model_store.tables.reader import Tables

if TYPE_CHECKING:
    import pandas as pd

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


@dataclass
class CameraCounts:
    """Image rows per camera, and which cameras share an image (a uri with rows under more than one camera id)."""

    rows: Counter[str] = field(default_factory=Counter)
    # every row's uri hash with its camera's code: 12 bytes a row, where the uris themselves would be ~100
    _hashes: list[np.ndarray] = field(default_factory=list)
    _codes: list[np.ndarray] = field(default_factory=list)
    _cameras: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.rows)

    def add(self, cameras: pa.Array, uris: pa.Array) -> None:
        """Rows, given as their camera ids (a missing one is the default camera) and uris."""
        missing = pc.fill_null(pc.equal(cameras, ""), True)
        codes = camera_codes(pc.if_else(missing, DEFAULT_CAMERA_ID, cameras), self._cameras)
        seen = np.bincount(codes, minlength=len(self._cameras))
        for name, code in self._cameras.items():
            if seen[code]:
                self.rows[name] += int(seen[code])
        # late: the export, events and report commands load this module with the CLI; only their runs need pandas
        import pandas as pd

        self._codes.append(codes.astype(np.int32))
        self._hashes.append(pd.util.hash_array(uris.to_numpy(zero_copy_only=False)))

    def __add__(self, other: CameraCounts) -> CameraCounts:
        out = CameraCounts(self.rows + other.rows, list(self._hashes), list(self._codes), dict(self._cameras))
        recode = np.array([out._cameras.setdefault(c, len(out._cameras)) for c in other._cameras], np.int32)
        out._hashes += other._hashes
        out._codes += [recode[codes] for codes in other._codes]
        return out

    def groups(self) -> list[list[str]]:
        """Cameras that share an image go together, each group in id order, the groups in the order of their first
        camera id: one camera per group unless a camera id changed between runs. (A 64-bit hash collision can only
        put two cameras together, which costs memory, never a wrong answer.)"""
        from scipy.sparse import coo_matrix  # late, as pandas above
        from scipy.sparse.csgraph import connected_components

        names = list(self._cameras)
        shared_a = shared_b = np.empty(0, np.int32)
        if self._hashes:
            hashes, codes = np.concatenate(self._hashes), np.concatenate(self._codes)
            order = np.argsort(hashes, kind="stable")
            hashes, codes = hashes[order], codes[order]
            shared = (hashes[1:] == hashes[:-1]) & (codes[1:] != codes[:-1])
            shared_a, shared_b = codes[:-1][shared], codes[1:][shared]
        graph = coo_matrix((np.ones(len(shared_a)), (shared_a, shared_b)), shape=(len(names), len(names)))
        _, component = connected_components(graph, directed=False)
        grouped: dict[int, list[str]] = {}
        for name, c in zip(names, component.tolist(), strict=True):
            grouped.setdefault(c, []).append(name)
        return sorted((sorted(g) for g in grouped.values()), key=lambda g: g[0])


def camera_counts(tables: Tables, model_name: str, model_version: str, filters_hash: str,
                  subset: ds.Expression | None = None) -> CameraCounts:
    """Image rows per camera of one table set (and subset), and which cameras share an image: two columns
    streamed a record batch at a time."""
    counts = CameraCounts()
    expr = ds.field("filters_hash") == filters_hash
    for batch in tables.stream_images(model_name, model_version, ["camera_id", "uri"],
                                      expr if subset is None else expr & subset):
        counts.add(batch["camera_id"], batch["uri"])
    return counts


def camera_slices(counts: CameraCounts, max_images: int = DEFAULT_SLICE_IMAGES) -> list[CameraSlice]:
    """Groups of cameras (`CameraCounts.groups`) packed in id order into slices of at most `max_images` rows (a
    larger group alone)."""
    if max_images < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}")
    out: list[CameraSlice] = []
    cameras: list[str] = []
    held = 0
    for group in counts.groups():
        n = sum(counts.rows[c] for c in group)
        if cameras and held + n > max_images:
            out.append(CameraSlice(tuple(cameras), held))
            cameras, held = [], 0
        cameras.extend(group)
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
