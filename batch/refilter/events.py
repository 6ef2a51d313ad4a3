"""Events: the images of one visit to a camera, grouped by capture-time gap, as an `events` table.

Camtrap DP, Timelapse and most camera-trap analyses count events (a burst of frames of one
visit), not frames. Each camera's images, in capture order, start a new event whenever the gap
to the previous image exceeds `gap_s` seconds. An event records its start and end, its images,
and what the detector kept in it: the highest score and, per label, the most boxes of that
label in any one image (the usual "count" of an event, since the same animal is in every frame).

Layout, next to `images` and `detections` (one file per filter set and gap, replaced whole by a
rerun, so `trapline events` is idempotent)::

    DST/events/model_name=NAME/model_version=VERSION/events-FILTERSHASH-gapSECONDS.parquet
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from batch.tables.cameras import camera_or_default
from batch.tables.reader import Tables, TableSet, resolve_table_set
from batch.tables.writer import parquet_bytes, partition_parts
from trapline.errors import BatchError

EVENTS = "events"
DEFAULT_GAP_S = 60.0

EVENTS_SCHEMA = pa.schema([
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("camera_id", pa.string()),
    pa.field("start", pa.timestamp("us")),
    pa.field("end", pa.timestamp("us")),
    pa.field("duration_s", pa.float64()),
    pa.field("images", pa.int32()),
    pa.field("images_with_detections", pa.int32()),
    pa.field("detections", pa.int32()),
    pa.field("max_score", pa.float64()),
    pa.field("labels", pa.list_(pa.string())),
    pa.field("label_counts", pa.list_(pa.int32())),  # per label (same order): most boxes in one image
    pa.field("label_max_scores", pa.list_(pa.float64())),
    pa.field("uris", pa.list_(pa.string())),  # the event's images in capture order
    pa.field("filters_hash", pa.string(), nullable=False),
    pa.field("gap_s", pa.float64(), nullable=False),
])


@dataclass
class EventsReport:
    model: str
    filters_hash: str
    gap_s: float
    images: int  # images grouped (failed ones and ones without a capture time are left out)
    events: int
    without_time: int
    failed: int
    written: str | None = None


def event_id(camera_id: str | None, start: pd.Timestamp) -> str:
    """Readable and stable: the camera and the first capture time (events of a camera never share a start)."""
    return f"{camera_or_default(camera_id)}_{pd.Timestamp(start):%Y%m%dT%H%M%S}"


def event_file_name(filters_hash: str, gap_s: float) -> str:
    return f"events-{filters_hash}-gap{gap_s:g}.parquet"


def group_events(images: pd.DataFrame, dets: pd.DataFrame, gap_s: float = DEFAULT_GAP_S,
                 filters_hash: str = "") -> pd.DataFrame:
    """One row per event (EVENTS_SCHEMA columns) from current image rows and their kept detections."""
    columns = EVENTS_SCHEMA.names
    if images.empty:
        return pd.DataFrame(columns=columns)
    imgs = images[(images["status"] != "failed") & images["capture_time"].notna()].copy()
    if imgs.empty:
        return pd.DataFrame(columns=columns)
    imgs["camera_key"] = [camera_or_default(c) for c in imgs["camera_id"]]
    imgs = imgs.sort_values(["camera_key", "capture_time", "uri"], kind="stable")
    gaps = imgs.groupby("camera_key", sort=False)["capture_time"].diff().dt.total_seconds()
    imgs["event_no"] = (gaps.isna() | (gaps > gap_s)).cumsum()
    per_label = pd.DataFrame(columns=["uri", "label", "n", "score"])
    if not dets.empty:
        per_label = dets.groupby(["uri", "label"], as_index=False).agg(n=("score", "size"), score=("score", "max"))
    by_uri = {uri: g for uri, g in per_label.groupby("uri", sort=False)}
    rows = []
    for _, ev in imgs.groupby("event_no", sort=True):
        start, end = ev["capture_time"].iloc[0], ev["capture_time"].iloc[-1]
        counts: dict[str, int] = {}
        scores: dict[str, float] = {}
        for uri in ev["uri"]:
            for r in by_uri.get(uri, per_label.iloc[0:0]).itertuples(index=False):
                counts[r.label] = max(counts.get(r.label, 0), int(r.n))
                scores[r.label] = max(scores.get(r.label, 0.0), float(r.score))
        labels = sorted(counts)
        camera = ev["camera_key"].iloc[0]
        rows.append({
            "event_id": event_id(camera, start), "camera_id": camera, "start": start, "end": end,
            "duration_s": (end - start).total_seconds(), "images": len(ev),
            "images_with_detections": int((ev["detection_count"].fillna(0) > 0).sum()),
            "detections": int(ev["detection_count"].fillna(0).sum()),
            "max_score": max(scores.values()) if scores else None,
            "labels": labels, "label_counts": [counts[k] for k in labels],
            "label_max_scores": [scores[k] for k in labels], "uris": list(ev["uri"]),
            "filters_hash": filters_hash, "gap_s": float(gap_s),
        })
    return pd.DataFrame(rows, columns=columns)


def run_events(tables_url: str, gap_s: float = DEFAULT_GAP_S, model: str | None = None,
               filters_hash: str | None = None, store: str | None = None, dry_run: bool = False) -> EventsReport:
    """Group one model version and filter set into events and write the `events` table file for it."""
    if not gap_s > 0:
        raise BatchError(f"--gap-s must be a positive number of seconds, got {gap_s!r}")
    tables = Tables(tables_url)
    tset = resolve_table_set(tables, model, filters_hash, store)
    images = tables.current_images(tset.model_name, tset.model_version, tset.filters_hash)
    dets = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                       kept_only=True)
    events = group_events(images, dets, gap_s, tset.filters_hash)
    failed = int((images["status"] == "failed").sum()) if not images.empty else 0
    without_time = int((images["status"] != "failed").sum() - events["images"].sum()) if not images.empty else 0
    report = EventsReport(f"{tset.model_name}:{tset.model_version}", tset.filters_hash, gap_s,
                          int(events["images"].sum()) if len(events) else 0, len(events), without_time, failed)
    if not dry_run:
        report.written = write_events(tables, tset, events, gap_s)
    return report


def write_events(tables: Tables, tset: TableSet, events: pd.DataFrame, gap_s: float) -> str:
    table = pa.Table.from_pandas(events, schema=EVENTS_SCHEMA, preserve_index=False)
    meta = {"model": tset.metadata.get("model", {}), "filters": {"hash": tset.filters_hash},
            "events": {"gap_s": gap_s, "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}}
    parts = (EVENTS, *partition_parts(tset.model_name, tset.model_version), event_file_name(tset.filters_hash, gap_s))
    tables.storage.write_atomic(parquet_bytes(table, meta), *parts)
    return tables.storage.url(*parts)


def read_events(tables_url: str, model_name: str, model_version: str, filters_hash: str,
                gap_s: float = DEFAULT_GAP_S) -> pd.DataFrame:
    """The events file written by `run_events` for one set and gap (empty frame if none)."""
    import pyarrow.parquet as pq

    tables = Tables(tables_url)
    parts = (EVENTS, *partition_parts(model_name, model_version), event_file_name(filters_hash, gap_s))
    if not tables.storage.exists(*parts):
        return pd.DataFrame(columns=EVENTS_SCHEMA.names)
    with tables.storage.fs.open(tables.storage.path(*parts), "rb") as f:
        return pq.read_table(f).to_pandas()
