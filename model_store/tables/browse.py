"""Browse the tables as a person looks at pictures: cameras with their newest capture, captures under filters
(newest first, one bounded page), one capture in full, and what the filters can choose from. Each read names one
model version's partition and pushes its filters into the Parquet scan (pyarrow dataset expressions), then joins the
few rows of a page to their detections, classifications and snips in one filtered read of each table. The online
door's `/v1/cameras` and the console's pictures routes both read through here.

Rows become Python values by Arrow's `to_pylist`, never through pandas: pandas 3 reads a missing string as NaN (its
`str` dtype) and an integer column with a null as floats, and a NaN that reaches a typed answer was the Cameras
page's 500 on a classification with no rank (issue 71); Arrow keeps a null None in every column."""

from __future__ import annotations

import datetime as dt
import functools
import operator
import os
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ground.errors import BatchError, NotFoundError
from model_store.tables.camera_summary import camera_summary
from model_store.tables.cameras import DEFAULT_CAMERA_ID
from model_store.tables.reader import PART_COLUMN, ROW_KEYS, Tables, unique_rows
from model_store.tables.schema import CLASSIFICATIONS, DETECTIONS, IMAGES, IMAGES_SCHEMA, PARTITION_KEYS, SNIPS
from model_store.tables.set_records import hidden_keys
from model_store.tables.table_set import TableSet, resolve_table_set

IMAGE_COLUMNS = ["uri", "content_id", "run_id", "rel_path", "camera_id", "capture_time", "status", "error_reason",
                 "detection_count", "max_score", "width", "height", "processed_at", "kind", PART_COLUMN]
STATES = {"empty": ["empty"], "nonempty": ["ok"], "failed": ["failed"]}
KEYS = ("uri", "content_id", "run_id")  # a row of detections, classifications or snips to its image row


# -- cameras -----------------------------------------------------------------------------------------------------
def cameras(tables: Tables, limit: int, offset: int) -> dict[str, Any]:
    """Every camera in the images table with its image count (distinct files, whatever model processed them)
    and its newest capture time, by camera id, paged (model_store/tables/camera_summary.py: one Arrow aggregation,
    kept while the table's files are the same)."""
    summary = camera_summary(tables)
    return {"cameras": summary.slice(offset, limit).to_pylist(), "total": summary.num_rows, "limit": limit,
            "offset": offset}


def latest(tables: Tables, camera: str, model: str | None = None) -> dict[str, Any] | None:
    """The newest capture of `camera` (by capture time, then newest processing; `model`'s rows when it has
    some) with its kept detections and snips: one tile of a nest-box grid."""
    return latest_many(tables, [camera], model).get(camera)


def latest_many(tables: Tables, cameras: list[str], model: str | None = None) -> dict[str, dict[str, Any]]:
    """`latest` for several cameras at once (a page of the console's grid): three narrow reads of the images table
    (the cameras' capture times; the keys of their rows at the newest; the chosen rows in full) and one of each
    detections, classifications and snips partition involved, whatever the number of cameras. Chosen in Arrow:
    only the chosen rows become Python objects (the page's cameras' rows as pandas took ~1 s at a million)."""
    if not cameras:
        return {}
    hidden = hidden_keys(tables.storage)  # sets hidden from readers (retired, purging, a redo not yet whole)
    times = _visible(_named(tables.read(IMAGES, columns=["camera_id", "capture_time", *PARTITION_KEYS, "filters_hash"],
                                        filter=_of_cameras(cameras))), hidden)
    if not times.num_rows:
        return {}
    newest_at = _preferred(times, model).group_by("camera_id", use_threads=False).aggregate([("capture_time", "max")])
    where = functools.reduce(operator.or_, (_captured_at(c, t) for c, t in zip(
        newest_at["camera_id"].to_pylist(), newest_at["capture_time_max"].to_pylist(), strict=True)))
    # The rows at each camera's newest capture, keys and sort columns only; rows stored twice need no dedupe here:
    # the first row of a camera after the sort is the first of its key too.
    keys = [*ROW_KEYS[IMAGES], *PARTITION_KEYS]
    rows = _preferred(_visible(_named(tables.read(IMAGES, columns=["camera_id", "capture_time", "processed_at", *keys],
                                                  filter=where, dedupe=False)), hidden), model)
    rows = rows.append_column("__read", pa.array(np.arange(rows.num_rows)))  # ties: the order read
    rows = rows.sort_by([("capture_time", "descending"), ("processed_at", "descending"),
                         ("model_version", "descending"), ("__read", "ascending")])
    rows = rows.append_column("__sorted", pa.array(np.arange(rows.num_rows)))
    first = rows.group_by("camera_id", use_threads=False).aggregate([("__sorted", "min")])["__sorted_min"]
    chosen = rows.take(first).select(keys)
    full = _named(tables.read(IMAGES, columns=[*IMAGES_SCHEMA.names, *PARTITION_KEYS, PART_COLUMN],
                              filter=ds.field("uri").isin(chosen["uri"]) & _of_cameras(cameras)))
    newest = full.join(chosen, keys=keys, join_type="left semi").to_pylist()
    by_set: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in newest:
        by_set.setdefault((row["model_name"], row["model_version"], row["filters_hash"]), []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for (name, version, rhash), group in by_set.items():
        boxes = _boxes(tables, name, version, rhash, group, kept_only=True)
        for top in group:
            shown = boxes.get(top["uri"], _NO_BOXES)
            out[top["camera_id"]] = {
                "camera": top["camera_id"],
                "image": {"uri": top["uri"], "capture_time": as_time(top["capture_time"]),
                          "capture_time_source": top["capture_time_source"], "status": top["status"],
                          "width": top["width"], "height": top["height"],
                          "model": {"name": name, "version": version}, "filters_hash": rhash,
                          **clip_frames(top.get("kind"), shown["detections"])},
                **shown}
    return out


def _visible(rows: pa.Table, hidden: list[str]) -> pa.Table:
    """`rows` without those of sets hidden from readers (`hidden`: set_records.hidden_keys)."""
    if not hidden or not rows.num_rows:
        return rows
    key = pc.binary_join_element_wise(rows["model_name"], rows["model_version"], rows["filters_hash"], "\x00")
    return rows.filter(pc.invert(pc.is_in(key, value_set=pa.array(hidden, pa.string()))))


def _preferred(rows: pa.Table, model: str | None) -> pa.Table:
    """`model`'s rows for the cameras that have some, any model's for the others (all of them without a model)."""
    if model is None:
        return rows
    mine = pc.equal(rows["model_name"], model)
    theirs = pc.invert(pc.is_in(rows["camera_id"], pc.unique(rows.filter(mine)["camera_id"])))
    return rows.filter(pc.or_(mine, theirs))


def _captured_at(camera: str, when: Any) -> ds.Expression:
    """The filter for `camera`'s rows captured at `when` (no capture time when it is missing)."""
    at = ds.field("capture_time").is_null() if when is None else \
        ds.field("capture_time") == pa.scalar(when, IMAGES_SCHEMA.field("capture_time").type)
    return _of_cameras([camera]) & at


def _of_cameras(cameras: list[str]) -> ds.Expression:
    """The rows of `cameras`, as the Cameras page names them: rows with no camera id are `DEFAULT_CAMERA_ID`'s
    (camera_summary.py), so that tile shows their newest picture too."""
    expr = ds.field("camera_id").isin(cameras)
    return expr | ds.field("camera_id").is_null() if DEFAULT_CAMERA_ID in cameras else expr


def _named(rows: pa.Table) -> pa.Table:
    """`rows` with a missing camera id read as `DEFAULT_CAMERA_ID`, as the Cameras page counts them."""
    at = rows.schema.get_field_index("camera_id")
    return rows.set_column(at, "camera_id", pc.coalesce(rows["camera_id"], pa.scalar(DEFAULT_CAMERA_ID)))


def as_time(value: Any) -> Any:
    """A table's timestamp (or NaT / None) as a datetime (or None)."""
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def as_text(value: Any) -> str | None:
    """A nullable text column's value as a str (or None: pandas reads a null as NaN in an object column)."""
    return value if isinstance(value, str) else None




# -- captures ------------------------------------------------------------------------------------------------------
def table_set(tables: Tables, model: str | None, filters_hash: str | None, default_model: str | None) -> TableSet:
    """The model version and filter set to browse: the one named, else the served default model's newest."""
    names = {n for n, _ in tables.versions()}
    if model is None and names:
        model = default_model if default_model in names else sorted(names)[0]
    try:
        return resolve_table_set(tables, model, filters_hash)
    except BatchError as exc:
        raise NotFoundError(str(exc), kind="no_captures") from None


def captures(tables: Tables, default_model: str | None, *, camera: str | None = None, label: str | None = None,
             species: str | None = None, min_score: float | None = None, max_score: float | None = None,
             since: dt.datetime | None = None, until: dt.datetime | None = None, state: str | None = None,
             model: str | None = None, filters_hash: str | None = None, limit: int = 48,
             offset: int = 0) -> dict[str, Any]:
    """A page of captures, newest first, under the filters; each with its kept boxes, species and snips.

    Fourteen parameters: the tables and the served model, then twelve keyword-only filters that are the query of GET
    /v1/pictures/captures: batch/views/pictures_protocol.py CapturesQuery validates them at the door (with the
    patterns and bounds its OpenAPI page shows) and passes them here as keywords; model_store may not import that
    door's model, and a copy of its twelve fields here would be a second place to forget one."""
    ts = table_set(tables, model, filters_hash, default_model)
    expr = ds.field("filters_hash") == ts.filters_hash
    if camera:
        expr &= ds.field("camera_id") == camera
    if state:
        expr &= ds.field("status").isin(STATES[state])
    if since:
        expr &= ds.field("capture_time") >= pd.Timestamp(since).to_datetime64()
    if until:
        expr &= ds.field("capture_time") < pd.Timestamp(until).to_datetime64()
    if not (label or species):  # a score range on the image's best kept box; with a label, on that label's boxes
        expr = _score_range(expr, "max_score", min_score, max_score)
    images = _newest_per_uri(tables.read(IMAGES, ts.model_name, ts.model_version, columns=IMAGE_COLUMNS, filter=expr))
    if label:
        expr = _kept(ts) & (ds.field("label") == label)
        hits = tables.read(DETECTIONS, ts.model_name, ts.model_version, list(KEYS),
                           filter=_score_range(expr, "score", min_score, max_score))
        images = images.join(hits, keys=list(KEYS), join_type="left semi")
    if species:
        expr = (ds.field("filters_hash") == ts.filters_hash) & (ds.field("label") == species)
        hits = tables.read(CLASSIFICATIONS, ts.model_name, ts.model_version, list(KEYS),
                           filter=_score_range(expr, "score", None if label else min_score,
                                               None if label else max_score))
        images = images.join(hits, keys=list(KEYS), join_type="left semi")
    # Sorted and paged in Arrow: only the page's rows become Python objects.
    images = images.sort_by([("capture_time", "descending"), ("uri", "ascending")])
    total = images.num_rows
    page = images.slice(offset, limit).to_pylist()
    boxes = _boxes(tables, ts.model_name, ts.model_version, ts.filters_hash, page, kept_only=True)
    return {"model": {"name": ts.model_name, "version": ts.model_version},
            "filters_hash": ts.filters_hash, "total": total, "limit": limit, "offset": offset,
            "captures": [_with_clip(r.get("kind"), {**_image(r), **boxes.get(r["uri"], _NO_BOXES)})
                         for r in page]}


def _with_clip(kind: Any, shown: dict[str, Any]) -> dict[str, Any]:
    return {**shown, **clip_frames(kind, shown["detections"])}


_NO_BOXES: dict[str, list] = {"detections": [], "snips": []}


def _kept(ts: TableSet) -> ds.Expression:
    return (ds.field("filters_hash") == ts.filters_hash) & (ds.field("kept") == True)  # noqa: E712 - an expression


def _score_range(expr: ds.Expression, column: str, low: float | None, high: float | None) -> ds.Expression:
    if low is not None:
        expr &= ds.field(column) >= low
    if high is not None:
        expr &= ds.field(column) <= high
    return expr


def _newest_per_uri(images: pa.Table) -> pa.Table:
    """One row per image: its newest processing (a rerun of the same set writes a row again)."""
    if images.num_rows < 2 or pc.count_distinct(images["uri"]).as_py() == images.num_rows:
        return images
    images = images.sort_by([("processed_at", "descending"), ("run_id", "descending")])
    return unique_rows(images, ["uri"])



def _boxes(tables: Tables, name: str, version: str, filters_hash: str, page: list[dict[str, Any]],
           kept_only: bool) -> dict[str, dict[str, list]]:
    """uri -> its detections (with species and flags) and snips, for the image rows of a page (dicts): one
    filtered read of each table for the whole page."""
    if not page:
        return {}
    uris = list(dict.fromkeys(r["uri"] for r in page))
    keys = pa.array(["\x00".join(r[k] for k in KEYS) for r in page], pa.string())
    base = ds.field("uri").isin(uris) & (ds.field("filters_hash") == filters_hash)

    # Only the parts the page's rows came from (each table's files of a part share its name), when all are there.
    wanted = {os.path.basename(r[PART_COLUMN]) for r in page if r.get(PART_COLUMN)}

    def read(table: str, expr: ds.Expression, order: list[str]) -> list[dict[str, Any]]:
        present = set(tables.parts(table, name, version)) if wanted else set()
        parts = sorted(wanted) if wanted and wanted <= present else None
        if wanted and parts is None and table != DETECTIONS:
            parts = sorted(wanted & present)  # classifications and snips: only parts that made some
        rows = tables.read(table, name, version, filter=expr, parts=parts)
        if not rows.num_rows:
            return []
        # the page's rows' own (a row's image key joined in one string: Acero joins no list columns)
        rows = rows.filter(pc.is_in(pc.binary_join_element_wise(*(rows[k] for k in KEYS), "\x00"), value_set=keys))
        return rows.sort_by([(c, "ascending") for c in order]).to_pylist()

    dets = read(DETECTIONS, base & (ds.field("kept") == True) if kept_only else base,  # noqa: E712
                ["uri", "detection_index"])
    species: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for c in read(CLASSIFICATIONS, base, ["classifier_name"]):
        species.setdefault((c["uri"], c["detection_index"]), []).append(
            {"classifier": f"{c['classifier_name']}:{c['classifier_version']}", "label": c["label"],
             "score": c["score"], "rank": c["rank"], "taxon_path": c["taxon_path"] or [],
             "source": c.get("source"), "pre_smoothing_description": c.get("pre_smoothing_description"),
             "top": [{"label": lab, "score": s} for lab, s in zip(c["top_labels"] or [], c["top_scores"] or [],
                                                                   strict=False)]})
    out: dict[str, dict[str, list]] = {}
    for d in dets:
        cls = species.get((d["uri"], d["detection_index"]), [])
        out.setdefault(d["uri"], {"detections": [], "snips": []})["detections"].append(
            {"detection_index": d["detection_index"], "label": d["label"], "score": d["score"],
             "bbox": [d["bbox_x"], d["bbox_y"], d["bbox_w"], d["bbox_h"]], "kept": bool(d["kept"]),
             "flags": d["flags"] or [], "species": cls[0]["label"] if cls else None,
             "classifications": cls, "outline": _outline(d.get("mask")),
             "frame_number": d.get("frame_number"), "frame_offset_s": d.get("frame_offset_s")})
    for s in read(SNIPS, base, ["uri", "detection_index"]):
        out.setdefault(s["uri"], {"detections": [], "snips": []})["snips"].append(
            {"detection_index": s["detection_index"], "crop_uri": s["crop_uri"]})
    return out


def _outline(mask: Any) -> list | None:
    """A segmentation model's mask as normalised polygons to draw (None: a box-only model, or an older table)."""
    if not isinstance(mask, dict) or not mask.get("counts"):
        return None
    from model_store.core.masks import outline  # here: only tables of a segmentation model have masks to draw

    return outline({"size": [int(v) for v in mask["size"]], "counts": mask["counts"]})


def clip_frames(kind: Any, detections: list[dict[str, Any]]) -> dict[str, Any]:
    """What shows a capture: for a clip (`kind` video), its sampled frames that hold a detection (number and offset,
    in time order) and its poster frame (the one of its best kept box; its first frame without one)."""
    if kind != "video":
        return {"kind": "image", "poster_frame": None, "frames": []}
    frames = {d["frame_number"]: d["frame_offset_s"] for d in detections if d.get("frame_number") is not None}
    kept = [d for d in detections if d["kept"] and d.get("frame_number") is not None]
    poster = max(kept, key=lambda d: d["score"])["frame_number"] if kept else 0
    return {"kind": "video", "poster_frame": poster,
            "frames": [{"frame_number": n, "offset_s": frames[n]} for n in sorted(frames)]}


def _image(r: dict[str, Any]) -> dict[str, Any]:
    return {"uri": r["uri"], "rel_path": r.get("rel_path"), "camera": r.get("camera_id") or DEFAULT_CAMERA_ID,
            "capture_time": as_time(r.get("capture_time")), "status": r["status"],
            "error_reason": r.get("error_reason"), "detection_count": r.get("detection_count"),
            "max_score": r.get("max_score"), "width": r.get("width"), "height": r.get("height")}


# -- one capture ---------------------------------------------------------------------------------------------------
def capture(tables: Tables, uri: str, default_model: str | None, model: str | None = None,
            filters_hash: str | None = None) -> dict[str, Any]:
    """One capture in full: every detection (kept and dropped, with the filters that fired), its classifications,
    its snips, the model version and the filter set that made them."""
    ts = table_set(tables, model, filters_hash, default_model)
    expr = (ds.field("uri") == uri) & (ds.field("filters_hash") == ts.filters_hash)
    rows = _newest_per_uri(tables.read(IMAGES, ts.model_name, ts.model_version, columns=IMAGE_COLUMNS + ["error"],
                                       filter=expr)).to_pylist()
    if not rows:
        raise NotFoundError(f"no capture {uri!r} in {tables.url} for {ts.model_name}:{ts.model_version}",
                            kind="capture_not_found")
    row = rows[0]
    boxes = _boxes(tables, ts.model_name, ts.model_version, ts.filters_hash, rows, kept_only=False).get(uri, _NO_BOXES)
    filters = ts.metadata.get("filters", {})
    return {**_image(row), "error": row.get("error"), **boxes,
            **clip_frames(row.get("kind"), boxes["detections"]),
            "model": {"name": ts.model_name, "version": ts.model_version,
                      "sha256": ts.metadata.get("model", {}).get("sha256")},
            "filter_set": {"hash": ts.filters_hash, "specs": ts.filter_specs, "classifiers": ts.classifiers,
                           "description": filters.get("description")}}


# -- facets: what the filters can choose from ----------------------------------------------------------------------
def facets(tables: Tables, default_model: str | None, model: str | None = None) -> dict[str, Any]:
    """Cameras, labels and species present in the browsed set, and the model versions the tables hold."""
    versions = [f"{n}:{v}" for n, v in tables.versions()]
    if not versions:
        return {"models": [], "model": None, "cameras": [], "labels": [], "species": []}
    ts = table_set(tables, model, None, default_model)

    def distinct(table: str, column: str) -> list[str]:
        t = tables.read(table, ts.model_name, ts.model_version, columns=[column],
                        filter=ds.field("filters_hash") == ts.filters_hash, dedupe=False)
        return sorted(v for v in pc.unique(t[column]).to_pylist() if v)

    return {"models": versions, "model": f"{ts.model_name}:{ts.model_version}",
            "cameras": distinct(IMAGES, "camera_id"), "labels": ts.labels or distinct(DETECTIONS, "label"),
            "species": distinct(CLASSIFICATIONS, "label")}
