"""Events: the images of one visit to a camera, grouped by capture-time gap, as an `events` table.

Camtrap DP, Timelapse and most camera-trap analyses count events (a burst of frames of one
visit), not frames. Each camera's images, in capture order, start a new event whenever the gap
to the previous image exceeds `gap_s` seconds. An event records its start and end, its images,
and what the detector kept in it: the highest score and, per label, the most boxes of that
label in any one image (the usual "count" of an event, since the same animal is in every frame).

With occurrences (a set made with the `track` filter, batch/postprocessing/tracks.py) an event also counts animals:
the confirmed occurrences seen in it, per determined label (a person's identification wins, as everywhere),
beside the max-per-frame count, which hides every animal that arrived after the busiest frame. The report
adds them up per camera and per night or day (`period_of`: a night runs 18:00 to 06:00 on the camera's clock
and is named by its evening's date), each occurrence counted once, in the period of its first detection.

Layout, next to `images` and `detections` (one file per filter set and gap, replaced whole by a
rerun, so `trapline events` is idempotent)::

    DST/events/model_name=NAME/model_version=VERSION/events-FILTERSHASH-gapSECONDS.parquet
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from batch.postprocessing import occurrences
from batch.postprocessing.options import DEFAULT_GAP_S, EventsOptions  # the option's default, where the option is
from model_store.tables.cameras import camera_or_default
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import EVENTS, EVENTS_SCHEMA
from model_store.tables.slices import DEFAULT_SLICE_IMAGES, iter_camera_slices, uri_span
from model_store.tables.table_set import TableSet, resolve_table_set
from model_store.tables.writer import parquet_bytes, partition_parts


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
    occurrences: int | None = None  # confirmed occurrences in the grouped images (None: the set has none)
    # per camera and night/day: events, the max-per-frame count summed over its events, occurrences per label
    periods: list[dict] = field(default_factory=list)


def event_id(camera_id: str | None, start: pd.Timestamp) -> str:
    """Readable and stable: the camera and the first capture time (events of a camera never share a start)."""
    return f"{camera_or_default(camera_id)}_{pd.Timestamp(start):%Y%m%dT%H%M%S}"


NIGHT_STARTS_H, DAY_STARTS_H = 18, 6


def period_of(when: pd.Timestamp) -> str:
    """`night YYYY-MM-DD` (named by its evening) or `day YYYY-MM-DD`, on the camera's clock."""
    when = pd.Timestamp(when)
    if DAY_STARTS_H <= when.hour < NIGHT_STARTS_H:
        return f"day {when:%Y-%m-%d}"
    evening = when - pd.Timedelta(days=1) if when.hour < DAY_STARTS_H else when
    return f"night {evening:%Y-%m-%d}"


def _occurrences_by_uri(occurrences: pd.DataFrame | None) -> dict[str, set[tuple[str, str]]]:
    """uri -> {(occurrence_id, label)} of the confirmed occurrences with a detection in that image."""
    out: dict[str, set[tuple[str, str]]] = defaultdict(set)
    if occurrences is None or occurrences.empty:
        return out
    for oid, label, confirmed, dets in occurrences[["occurrence_id", "label", "confirmed", "detections"]].itertuples(
            index=False):
        if confirmed:
            for d in dets:
                out[d["uri"]].add((oid, label if isinstance(label, str) else "unknown"))
    return out


def event_file_name(filters_hash: str, gap_s: float) -> str:
    return f"events-{filters_hash}-gap{gap_s:g}.parquet"


def group_events(images: pd.DataFrame, dets: pd.DataFrame, gap_s: float = DEFAULT_GAP_S,
                 filters_hash: str = "", occurrences: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per event (EVENTS_SCHEMA columns) from current image rows and their kept detections; with
    `occurrences` (batch/postprocessing/occurrences.py rows: determined, confirmed) the animals seen in each."""
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
    imgs["dets_n"] = imgs["detection_count"].fillna(0).astype("int64")
    imgs["with_dets"] = imgs["dets_n"] > 0
    # Whole columns at once, not a loop over images (1,000,000 images group in seconds): per event its first and
    # last capture, counts and images; per event and label the most boxes in one image and the best score.
    # placed by the deployments (model_store/tables/clock.py): capture_time is UTC, a night is the local one
    local = "capture_time_local" if "capture_time_local" in imgs else "capture_time"
    per_event = imgs.groupby("event_no", sort=True).agg(
        camera=("camera_key", "first"), start=("capture_time", "first"), end=("capture_time", "last"),
        start_local=(local, "first"), images=("uri", "size"), with_dets=("with_dets", "sum"),
        detections=("dets_n", "sum"))
    uris = imgs.groupby("event_no", sort=True)["uri"].agg(list)
    labels_of: dict[int, dict[str, tuple[int, float]]] = defaultdict(dict)
    if not dets.empty:
        per_image = dets.groupby(["uri", "label"], as_index=False).agg(n=("score", "size"), score=("score", "max"))
        per_label = (per_image.merge(imgs[["uri", "event_no"]], on="uri")
                     .groupby(["event_no", "label"]).agg(n=("n", "max"), score=("score", "max")))
        for (event_no, label), n, score in zip(per_label.index, per_label["n"], per_label["score"], strict=True):
            labels_of[event_no][label] = (int(n), float(score))
    seen_in = _occurrences_by_uri(occurrences)
    rows = []
    for ev, ev_uris in zip(per_event.itertuples(), uris, strict=True):
        found = labels_of.get(ev.Index, {})
        labels = sorted(found)
        seen = set().union(*(seen_in.get(uri, set()) for uri in ev_uris)) if seen_in else set()
        animals: dict[str, int] = defaultdict(int)
        for _, label in seen:
            animals[label] += 1
        rows.append({
            "event_id": event_id(ev.camera, ev.start), "camera_id": ev.camera, "start": ev.start, "end": ev.end,
            "duration_s": (ev.end - ev.start).total_seconds(), "images": int(ev.images),
            "images_with_detections": int(ev.with_dets), "detections": int(ev.detections),
            "max_score": max(found[k][1] for k in labels) if labels else None,
            "labels": labels, "label_counts": [found[k][0] for k in labels],
            "label_max_scores": [found[k][1] for k in labels], "uris": ev_uris,
            "period": period_of(ev.start_local), "occurrences": None if occurrences is None else len(seen),
            "occurrence_labels": sorted(animals), "label_occurrences": [animals[k] for k in sorted(animals)],
            "filters_hash": filters_hash, "gap_s": float(gap_s),
        })
    return pd.DataFrame(rows, columns=columns)


def run_events(opts: EventsOptions, slice_images: int = DEFAULT_SLICE_IMAGES) -> EventsReport:
    """Group one model version and filter set into events and write the `events` table file for it (`opts`:
    `trapline events`' options), reading a slice of whole cameras (at most `slice_images` image rows) at a time."""
    gap_s = opts.gap_s
    tables = Tables(open_location(opts.tables))
    tset = resolve_table_set(tables, opts.model, opts.filters_hash, opts.store)
    occ = set_occurrences(tables, tset, opts.store)  # the tables opened above
    found, failed, without_time = [], 0, 0
    # a slice of whole cameras at a time (an event never spans cameras): memory bounded at any archive size
    for part in iter_camera_slices(tables, tset.model_name, tset.model_version, tset.filters_hash,
                                   max_images=slice_images):
        images = tables.current_images(tset.model_name, tset.model_version, tset.filters_hash, part.expression())
        dets = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                           kept_only=True, columns=["label", "score"], filter=uri_span(images))
        mine = None if occ is None else occ[part.holds(occ["camera_id"])]
        events = group_events(images, dets, gap_s, tset.filters_hash, mine)
        found.append(events)
        if not images.empty:
            failed += int((images["status"] == "failed").sum())
            without_time += int((images["status"] != "failed").sum() - events["images"].sum())
    events = pd.concat([f for f in found if not f.empty], ignore_index=True) if any(not f.empty for f in found) \
        else pd.DataFrame(columns=EVENTS_SCHEMA.names)
    report = EventsReport(f"{tset.model_name}:{tset.model_version}", tset.filters_hash, gap_s,
                          int(events["images"].sum()) if len(events) else 0, len(events), without_time, failed)
    if occ is not None:
        grouped = set(uri for uris in events["uris"] for uri in uris) if len(events) else set()
        counted = occ[occ["confirmed"].astype(bool) & occ["uri"].isin(grouped)]
        report.occurrences = len(counted)
        report.periods = period_counts(events, counted)
    if not opts.dry_run:
        report.written = write_events(tables, tset, events, gap_s)
    return report


def set_occurrences(tables: Tables, tset: TableSet, store: str | None = None) -> pd.DataFrame | None:
    """The set's occurrences, determined now (the decisions log applied), or None when the set was not tracked."""
    if "track" not in [s.get("name") for s in tset.filter_specs]:
        return None
    return occurrences.load(tables, f"{tset.model_name}:{tset.model_version}", tset.filters_hash, store).rows


def period_counts(events: pd.DataFrame, occ: pd.DataFrame) -> list[dict]:
    """Per camera and night/day: events, the max-per-frame count (summed over events) and occurrences per label
    (each counted once, in the period of its first detection)."""
    out: dict[tuple[str, str], dict] = {}
    for ev in events.itertuples(index=False):
        row = out.setdefault((ev.camera_id, ev.period), {"camera_id": ev.camera_id, "period": ev.period, "events": 0,
                                                         "max_per_frame": 0, "occurrences": 0, "labels": {}})
        row["events"] += 1
        row["max_per_frame"] += int(sum(ev.label_counts))
    for o in occ.itertuples(index=False):
        key = (camera_or_default(o.camera_id), period_of(getattr(o, "first_time_local", o.first_time)))
        row = out.setdefault(key, {"camera_id": key[0], "period": key[1], "events": 0, "max_per_frame": 0,
                                   "occurrences": 0, "labels": {}})
        row["occurrences"] += 1
        label = o.label if isinstance(o.label, str) else "unknown"
        row["labels"][label] = row["labels"].get(label, 0) + 1
    return [out[k] for k in sorted(out)]


def write_events(tables: Tables, tset: TableSet, events: pd.DataFrame, gap_s: float) -> str:
    table = pa.Table.from_pandas(events, schema=EVENTS_SCHEMA, preserve_index=False)
    meta = {"model": tset.metadata.get("model", {}), "filters": {"hash": tset.filters_hash},
            "events": {"gap_s": gap_s, "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}}
    parts = (EVENTS, *partition_parts(tset.model_name, tset.model_version), event_file_name(tset.filters_hash, gap_s))
    tables.storage.write_atomic(parquet_bytes(table, meta), *parts)
    return tables.storage.url(*parts)


def read_events(tables: Tables, model_name: str, model_version: str, filters_hash: str,
                gap_s: float = DEFAULT_GAP_S) -> pd.DataFrame:
    """The events file written by `run_events` for one set and gap (empty frame if none)."""
    import pyarrow.parquet as pq

    parts = (EVENTS, *partition_parts(model_name, model_version), event_file_name(filters_hash, gap_s))
    if not tables.storage.exists(*parts):
        return pd.DataFrame(columns=EVENTS_SCHEMA.names)
    with tables.storage.fs.open(tables.storage.path(*parts), "rb") as f:
        return pq.read_table(f).to_pandas()
