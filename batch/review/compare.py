"""What one model version found that another did not: kept boxes matched per image by IoU.

Boxes are matched one-to-one with `model_store.core.agreement.match_boxes` (the parity suite's
matcher), same label, IoU >= `min_iou`, with no score tolerance: two versions are expected to
score the same animal differently. A box of A with no partner in B is "only in A".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import pandas as pd
import pyarrow.dataset as ds

from batch.review.defaults import DEFAULT_MIN_IOU
from ground.errors import BatchError
from model_store.core.agreement import Box, match_boxes
from model_store.tables.reader import Tables
from model_store.tables.table_set import current_kept, resolve_table_set


@dataclass
class ImageDiff:
    uri: str
    only_a: list[pd.Series] = field(default_factory=list)
    only_b: list[pd.Series] = field(default_factory=list)
    matched: list[tuple[pd.Series, pd.Series]] = field(default_factory=list)

    @property
    def top_unmatched(self) -> float:
        return max([float(d.score) for d in self.only_a + self.only_b], default=0.0)


@dataclass
class Comparison:
    a: str  # "name:version [filters]" of each side
    b: str
    min_iou: float
    images_both: int = 0
    images_only_a: int = 0  # processed (not failed) by A only
    images_only_b: int = 0
    per_label: pd.DataFrame = field(default_factory=pd.DataFrame)  # label -> matched, only_a, only_b
    diffs: list[ImageDiff] = field(default_factory=list)  # images where the versions disagree, most confident first
    differing: int = 0  # how many (`diffs` may hold only the first of them: `merge`)

    def merge(self, other: Comparison, keep: int | None = None) -> Comparison:
        """This comparison and another one of other images (another slice of cameras) as one; only the `keep`
        first diffs are kept (in the order `compare_versions` gives), the count stays whole."""
        per_label = self.per_label.add(other.per_label, fill_value=0) if not self.per_label.empty else other.per_label
        diffs = sorted(self.diffs + other.diffs, key=_diff_order)
        return Comparison(self.a, self.b, self.min_iou, self.images_both + other.images_both,
                          self.images_only_a + other.images_only_a, self.images_only_b + other.images_only_b,
                          per_label.sort_index().astype("int64"), diffs if keep is None else diffs[:keep],
                          self.differing + other.differing)


def _diff_order(diff: ImageDiff) -> tuple[float, str]:
    return -diff.top_unmatched, diff.uri


def _boxes(dets: pd.DataFrame, width: float, height: float, ids: dict[str, int]) -> list[Box]:
    return [Box(ids[d.label], float(d.score), (d.bbox_x * width, d.bbox_y * height, (d.bbox_x + d.bbox_w) * width,
                                                (d.bbox_y + d.bbox_h) * height)) for d in dets.itertuples(index=False)]


class Side(NamedTuple):
    """One version's side of a comparison: its name (NAME:VERSION), its current image rows and their kept boxes."""

    name: str
    images: pd.DataFrame
    kept: pd.DataFrame


def compare_versions(a: Side, b: Side, min_iou: float = DEFAULT_MIN_IOU) -> Comparison:
    """Match the kept boxes of the images both versions processed (and count the ones only one did)."""
    out = Comparison(a.name, b.name, min_iou)
    images_a, kept_a, images_b, kept_b = a.images, a.kept, b.images, b.kept
    ok_a = images_a[images_a["status"] != "failed"] if not images_a.empty else images_a
    ok_b = images_b[images_b["status"] != "failed"] if not images_b.empty else images_b
    uris_a = set(ok_a["uri"]) if not ok_a.empty else set()
    uris_b = set(ok_b["uri"]) if not ok_b.empty else set()
    both = sorted(uris_a & uris_b)
    out.images_both, out.images_only_a, out.images_only_b = len(both), len(uris_a - uris_b), len(uris_b - uris_a)
    labels = sorted(set(kept_a.get("label", [])) | set(kept_b.get("label", [])))
    ids = {label: i for i, label in enumerate(labels)}
    counts = {label: {"matched": 0, "only_a": 0, "only_b": 0} for label in labels}
    groups_a = dict(tuple(kept_a.groupby("uri", sort=False))) if not kept_a.empty else {}
    groups_b = dict(tuple(kept_b.groupby("uri", sort=False))) if not kept_b.empty else {}
    sizes = ok_a.set_index("uri")[["width", "height"]] if not ok_a.empty else None
    empty = kept_a.iloc[0:0]
    for uri in both:
        da, db = groups_a.get(uri, empty), groups_b.get(uri, empty)
        if da.empty and db.empty:
            continue
        w, h = (float(v) for v in sizes.loc[uri])
        matches = match_boxes(_boxes(da, w, h, ids), _boxes(db, w, h, ids), min_iou=min_iou, max_dscore=1.0)
        diff = ImageDiff(uri)
        paired = set()
        for m in matches:
            row_a = da.iloc[m.reference]
            if m.candidate is None:
                diff.only_a.append(row_a)
                counts[row_a.label]["only_a"] += 1
            else:
                paired.add(m.candidate)
                diff.matched.append((row_a, db.iloc[m.candidate]))
                counts[row_a.label]["matched"] += 1
        for k in range(len(db)):
            if k not in paired:
                diff.only_b.append(db.iloc[k])
                counts[db.iloc[k].label]["only_b"] += 1
        if diff.only_a or diff.only_b:
            out.diffs.append(diff)
    out.per_label = pd.DataFrame.from_dict(counts, orient="index", columns=["matched", "only_a", "only_b"])
    out.diffs.sort(key=_diff_order)
    out.differing = len(out.diffs)
    return out


def compare_in_tables(tables: Tables, a: str, b: str, store: str | None = None, min_iou: float = DEFAULT_MIN_IOU,
                      subset: ds.Expression | None = None) -> tuple[Comparison, tuple[str, str]]:
    """Two versions' current kept boxes in one set of tables (each side's newest filter set), compared: what the
    console shows beside a promote button. `a` and `b` are NAME:VERSION or NAME@ALIAS (resolved in `store`).
    Also answers the two filter sets compared (when they differ, so may the boxes, whatever the versions).
    `subset` (an images-table expression: cameras, a capture window) bounds what is read."""
    sides = []
    for ref in (a, b):
        tset = resolve_table_set(tables, ref, None, store)
        images, kept = current_kept(tables, tset, subset)
        sides.append((Side(f"{tset.model_name}:{tset.model_version}", images, kept), tset.filters_hash))
    (side_a, set_a), (side_b, set_b) = sides
    if side_a.name == side_b.name:
        raise BatchError(f"{a} and {b} are the same version ({side_a.name}); name two versions to compare")
    return compare_versions(side_a, side_b, min_iou), (set_a, set_b)
