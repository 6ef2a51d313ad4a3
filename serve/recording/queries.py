"""The read side of recording: what `GET /v1/images/{id}` and `/v1/cameras` answer, read from storage (the
upload records, the journal and the tables through batch/tables), never from a replica's memory, so every
replica answers alike and a restarted one forgets nothing. Blocking I/O: the routes run these on a thread."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds

from batch.tables.reader import Tables
from batch.tables.schema import IMAGES, SNIPS
from serve.recording.uploads import Uploads


def image(uploads: Uploads, image_id: str) -> dict[str, Any] | None:
    """One recorded upload: where it is, when it was taken, its answer, its snips, and whether its rows are
    committed to the tables yet (`pending`: answered and journaled, in the tables after the next flush)."""
    found = uploads.read(image_id)
    if found is None:
        return None
    doc, state = found
    return {"image_id": doc.image_id, "camera": doc.camera, "status": doc.status, "state": state,
            "uri": doc.stored.uri, "sha256": doc.sha256,
            "capture_time": doc.capture_time, "capture_time_source": doc.capture_time_source,
            "received_at": doc.received_at, "model": doc.model, "filters_hash": doc.filters_hash,
            "answer": doc.answer, "snips": doc.snips}


def cameras(tables: Tables, limit: int, offset: int) -> dict[str, Any]:
    """Every camera in the images table with its image count (distinct files, whatever model processed them)
    and its newest capture time, by camera id, paged."""
    t = tables.read(IMAGES, columns=["camera_id", "uri", "capture_time"])
    if not t.num_rows:
        return {"cameras": [], "total": 0, "limit": limit, "offset": offset}
    t = t.set_column(0, "camera_id", pc.fill_null(t["camera_id"], "unknown"))
    grouped = t.group_by("camera_id").aggregate([("uri", "count_distinct"), ("capture_time", "max")])
    grouped = grouped.sort_by("camera_id")
    total = grouped.num_rows
    page = grouped.slice(offset, limit).to_pylist()
    return {"cameras": [{"camera": r["camera_id"], "images": r["uri_count_distinct"],
                         "newest_capture_time": r["capture_time_max"]} for r in page],
            "total": total, "limit": limit, "offset": offset}


def latest(tables: Tables, camera: str, model: str | None = None) -> dict[str, Any] | None:
    """The newest capture of `camera` (by capture time, then newest processing; `model`'s rows when it has
    some) with its kept detections and snips: one tile of a nest-box grid."""
    rows = tables.read(IMAGES, filter=ds.field("camera_id") == camera).to_pandas()
    if rows.empty:
        return None
    if model is not None and (rows["model_name"] == model).any():
        rows = rows[rows["model_name"] == model]
    rows = rows.sort_values(["capture_time", "processed_at", "model_version"], ascending=False, kind="stable")
    row = rows.iloc[:1]
    top = row.iloc[0]
    name, version, rhash = str(top["model_name"]), str(top["model_version"]), str(top["filters_hash"])
    dets = tables.committed_detections(row, name, version, rhash, kept_only=True)
    snips = tables.committed_detections(row, name, version, rhash, table=SNIPS)
    return {"camera": camera,
            "image": {"uri": top["uri"], "capture_time": _time(top["capture_time"]),
                      "capture_time_source": top["capture_time_source"], "status": top["status"],
                      "width": _int(top["width"]), "height": _int(top["height"]),
                      "model": {"name": name, "version": version}, "filters_hash": rhash},
            "detections": [{"detection_index": int(d.detection_index), "label": d.label, "score": float(d.score),
                            "bbox": [float(d.bbox_x), float(d.bbox_y), float(d.bbox_w), float(d.bbox_h)]}
                           for d in dets.itertuples()],
            "snips": [{"detection_index": int(s.detection_index), "crop_uri": s.crop_uri} for s in snips.itertuples()]}


def _time(value: Any) -> Any:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)

