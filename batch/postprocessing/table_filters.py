"""Table-level post-processing filters: decided over many images of a camera, then applied per image.

`FilterSet.apply` runs per image; a table-level filter (see `model_store.core.filters.PostFilter.table_level`)
needs the boxes of other images to decide, so `trapline postprocess` computes its result first,
over the evidence the run's scope calls for, and hands each image its precomputed mask.

Evidence is wider than the rows a scoped run rewrites: re-filtering one camera's week still
compares its boxes with the days around it (widened by the filter's window), so a scoped run
flags the same boxes as a whole-table run would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pyarrow.dataset as ds

from model_store.core.filters import REGISTRY, FilterConfig, FilterSet
from model_store.tables.reader import Tables
from model_store.tables.schema import IMAGES
from model_store.tables.scope import Scope, time_window
from model_store.tables.table_set import TableSet

# (uri, content_id, run_id) of an image row -> detection_index values the filter fired on
Fired = dict[tuple[str, str, str], set[int]]


def _window(name: str, config: FilterConfig) -> dt.timedelta | None:
    """How far around the scope filter `name` must see (its `evidence_hours`, declared with the filter)."""
    hours = REGISTRY[name].evidence_hours(config)
    return dt.timedelta(hours=hours) if hours else None


def evidence(tables: Tables, tset: TableSet, scope: Scope, window: dt.timedelta | None) -> ds.Expression | None:
    """The images whose boxes a table-level filter must see to decide for the scope's rows."""
    if scope.kind == "table":
        return None
    if scope.kind == "camera":  # a single-part scope needs no read; any other is read to find its cameras / times
        return ds.field("camera_id").isin(list(scope.cameras))
    if scope.kind == "window":
        if window is None:
            return None  # recurrence over the whole history: every image is evidence
        return time_window(scope.since - window if scope.since else None, scope.until + window if scope.until else None)
    rows = tables.read(IMAGES, tset.model_name, tset.model_version, ["camera_id", "capture_time"],
                       filter=(ds.field("filters_hash") == tset.filters_hash) & scope.expression()).to_pandas()
    expr = ds.field("camera_id").isin([c for c in rows["camera_id"].dropna().unique()])
    times = rows["capture_time"].dropna()
    if window is not None and len(times) == len(rows) and len(rows):
        expr = expr & time_window(times.min().to_pydatetime() - window, times.max().to_pydatetime() + window)
    return expr


def table_level_fired(tables: Tables, tset: TableSet, fs: FilterSet, scope: Scope,
                      log: Callable[[str], None] = lambda line: None) -> dict[str, Fired]:
    """For each table-level filter of `fs`: the detections it fires on, by image row."""
    out: dict[str, Fired] = {}
    for name, config in fs.filters:
        if not REGISTRY[name].table_level or REGISTRY[name].kind != "detection":
            continue  # the track filter drops nothing: batch/postprocessing/tracks.py links after these
        images = tables.current_images(tset.model_name, tset.model_version, tset.filters_hash,
                                       evidence(tables, tset, scope, _window(name, config)))
        if not images.empty:
            images = images[images["status"] != "failed"]
        dets = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash)
        cameras = images["camera_id"].nunique(dropna=False) if not images.empty else 0
        log(f"{name}: comparing {len(dets)} box(es) of {len(images)} image(s) on {cameras} camera(s)")
        mask = np.asarray(REGISTRY[name].fires_on_table(config, images, dets), dtype=bool)
        fired: Fired = {}
        for uri, cid, run_id, index in dets.loc[mask, ["uri", "content_id", "run_id", "detection_index"]].itertuples(
                index=False):
            fired.setdefault((uri, cid, run_id), set()).add(int(index))
        log(f"{name}: fires on {int(mask.sum())} box(es) in {len(fired)} image(s)")
        out[name] = fired
    return out
