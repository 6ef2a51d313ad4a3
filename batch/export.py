"""Export the tables to formats other tools read: MegaDetector batch JSON, COCO results, Camtrap DP.

All three use the current row per image (newest processing of each uri) of one model version
and filter set, and only the kept detections. Category ids are `class_id + 1` in MegaDetector
and COCO output (both reserve 0 by convention), as strings in MegaDetector's.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import mimetypes
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import pyarrow.dataset as ds

from .archive import open_location
from .errors import BatchError
from .events import DEFAULT_GAP_S, group_events
from .options import parse_when
from .schema import CLASSIFICATIONS
from .tables import Tables, TableSet, resolve_table_set

Format = Literal["megadetector", "coco", "camtrap-dp"]
ObservationLevel = Literal["media", "event", "both"]
MD_FORMAT_VERSION = "1.4"
HUMAN_LABELS = {"person", "people", "human", "humans", "hiker"}
VEHICLE_LABELS = {"vehicle", "car", "truck", "bus", "motorcycle", "bicycle"}
BLANK_LABELS = {"blank", "empty"}

CAMTRAP_MEDIA_FIELDS = ["mediaID", "deploymentID", "captureMethod", "timestamp", "filePath", "filePublic",
                        "fileName", "fileMediatype", "exifData", "favorite", "mediaComments"]
CAMTRAP_OBSERVATION_FIELDS = [
    "observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd", "observationLevel",
    "observationType", "cameraSetupType", "scientificName", "count", "lifeStage", "sex", "behavior",
    "individualID", "individualPositionRadius", "individualPositionAngle", "individualSpeed", "bboxX", "bboxY",
    "bboxWidth", "bboxHeight", "classificationMethod", "classifiedBy", "classificationTimestamp",
    "classificationProbability", "observationTags", "observationComments",
]


@dataclass
class ExportReport:
    format: str
    model: str
    filters_hash: str
    images: int
    failed: int
    detections: int
    written: list[str]


def subset_filter(cameras: list[str] | None = None, since: Any = None, until: Any = None) -> ds.Expression | None:
    """An expression on the images table for --camera / --since / --until."""
    expr = None

    def both(e: ds.Expression) -> None:
        nonlocal expr
        expr = e if expr is None else expr & e

    if cameras:
        both(ds.field("camera_id").isin(list(cameras)))
    if since is not None:
        both(ds.field("capture_time") >= parse_when(since))
    if until is not None:
        both(ds.field("capture_time") <= parse_when(until, end_of_day=True))
    return expr


def load(tables: Tables, tset: TableSet, expr: ds.Expression | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(current image rows, their kept detections) for one table set; with classifiers, each detection row
    has `classifications`: its classifications table rows (a list of dicts, pipeline order)."""
    images = tables.current_images(tset.model_name, tset.model_version, tset.filters_hash, expr)
    dets = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                       kept_only=True)
    if tset.classifiers and not dets.empty:
        cls = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                          table=CLASSIFICATIONS)
        by_det: dict[tuple[str, int], list[dict]] = {}
        for row in cls.to_dict("records"):
            by_det.setdefault((row["uri"], int(row["detection_index"])), []).append(row)
        dets = dets.assign(classifications=[by_det.get((u, int(i)), []) for u, i in
                                            zip(dets["uri"], dets["detection_index"], strict=True)])
    return images, dets


def classification_categories(tset: TableSet, dets: pd.DataFrame) -> dict[str, str]:
    """label -> category id ("1".."N"): every classifier's labels in order, then rolled-up taxa as they occur."""
    ids: dict[str, str] = {}
    for c in tset.classifiers:
        for label in c.get("labels_out", []):
            ids.setdefault(label, str(len(ids) + 1))
    for rows in dets.get("classifications", []):
        for r in rows:
            ids.setdefault(r["label"], str(len(ids) + 1))
    return ids


def md_classifications(rows: list[dict], ids: dict[str, str]) -> list[list]:
    """MegaDetector's per-detection `classifications`: the answer first, then the rest of the model's top-k."""
    out = []
    for r in rows:
        out.append([ids[r["label"]], round(float(r["score"]), 3)])
        out += [[ids[label], round(float(score), 3)] for label, score in zip(r["top_labels"], r["top_scores"],
                                                                              strict=True) if label != r["label"]]
    return out


def scientific_name(row: dict) -> str:
    """Camtrap DP scientificName of a classification: its taxon (the taxonomy path's end), else its label."""
    path = row.get("taxon_path")
    path = [] if path is None else list(path)  # a numpy array when read through pandas
    return path[-1] if path else row["label"]


def clip_box(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
    """A normalised [x, y, w, h] box clipped to the image (every format requires boxes inside it)."""
    x0, y0 = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
    x1, y1 = min(max(x + w, 0.0), 1.0), min(max(y + h, 0.0), 1.0)
    return x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0)


def _box(d: Any) -> tuple[float, float, float, float]:
    return clip_box(float(d.bbox_x), float(d.bbox_y), float(d.bbox_w), float(d.bbox_h))


def _labels(tset: TableSet, dets: pd.DataFrame) -> dict[int, str]:
    labels = {i: name for i, name in enumerate(tset.labels)}
    for cid, label in zip(dets.get("class_id", []), dets.get("label", []), strict=False):
        labels.setdefault(int(cid), label)  # metadata missing (old files): what the rows say
    return dict(sorted(labels.items()))


def _iso(ts: Any, offset: str) -> str:
    if ts is None or pd.isna(ts):
        return ""
    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
        offset = "Z"
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + offset


def megadetector(images: pd.DataFrame, dets: pd.DataFrame, tset: TableSet) -> dict:
    """MegaDetector batch output format 1.4 (https://lila.science/megadetector-output-format)."""
    cls_ids = classification_categories(tset, dets)
    by_uri = {uri: g for uri, g in dets.groupby("uri", sort=False)} if not dets.empty else {}
    out_images = []
    for row in images.itertuples(index=False):
        entry: dict[str, Any] = {"file": row.rel_path or row.uri}
        if row.status == "failed":
            entry["failure"] = f"{row.error_reason}: {row.error}"
            entry["detections"] = None
        else:
            g = by_uri.get(row.uri)
            entry["detections"] = [] if g is None else [
                {"category": str(int(d.class_id) + 1), "conf": round(float(d.score), 3),
                 "bbox": [round(v, 4) for v in _box(d)],
                 **({"classifications": md_classifications(d.classifications, cls_ids)}
                    if getattr(d, "classifications", None) else {})}
                for d in g.itertuples(index=False)
            ]
        out_images.append(entry)
    done = images["processed_at"].max() if not images.empty else None
    extra = {"classification_categories": {v: k for k, v in cls_ids.items()}} if tset.classifiers else {}
    if tset.classifiers:
        extra["classifier_metadata"] = [{k: c[k] for k in ("name", "version", "sha256", "labels")}
                                        for c in tset.classifiers]
    return {**extra,
        "info": {
            "format_version": MD_FORMAT_VERSION,
            "detector": f"{tset.model_name} {tset.model_version}",
            "detection_completion_time": pd.Timestamp(done).strftime("%Y-%m-%d %H:%M:%S") if done is not None else "",
            "detector_metadata": {
                "model_name": tset.model_name, "model_version": tset.model_version,
                "model_sha256": tset.metadata.get("model", {}).get("sha256"),
                "filters_hash": tset.filters_hash, "filters": tset.filter_specs,
            },
        },
        "detection_categories": {str(cid + 1): label for cid, label in _labels(tset, dets).items()},
        "images": out_images,
    }


def coco(images: pd.DataFrame, dets: pd.DataFrame, tset: TableSet) -> tuple[list[dict], dict]:
    """COCO results (list of {image_id, category_id, bbox [x, y, w, h] pixels, score}) and its image index.

    With classifiers each result also has `classification` {category_id, label, score, classifier}, and the
    index `classification_categories`."""
    cls_ids = classification_categories(tset, dets)
    ok = images[images["status"] != "failed"].reset_index(drop=True)
    ids = {uri: i + 1 for i, uri in enumerate(ok["uri"])}
    sizes = {uri: (int(w), int(h)) for uri, w, h in zip(ok["uri"], ok["width"], ok["height"], strict=True)}
    results = []
    for d in dets.itertuples(index=False):
        if d.uri not in ids:
            continue
        w, h = sizes[d.uri]
        x, y, bw, bh = _box(d)
        result = {
            "image_id": ids[d.uri], "category_id": int(d.class_id) + 1,
            "bbox": [round(x * w, 2), round(y * h, 2), round(bw * w, 2), round(bh * h, 2)],
            "score": round(float(d.score), 5),
        }
        if getattr(d, "classifications", None):  # extra keys: pycocotools' loadRes keeps them
            c = d.classifications[0]
            result["classification"] = {"category_id": int(cls_ids[c["label"]]), "label": c["label"],
                                        "score": round(float(c["score"]), 5),
                                        "classifier": f"{c['classifier_name']}:{c['classifier_version']}"}
        results.append(result)
    index = {
        "info": {"description": f"images scored by {tset.model_name} {tset.model_version} "
                                f"(filters {tset.filters_hash})"},
        "images": [{"id": ids[r.uri], "file_name": r.rel_path or r.uri, "width": int(r.width),
                    "height": int(r.height)} for r in ok.itertuples(index=False)],
        "categories": [{"id": cid + 1, "name": label} for cid, label in _labels(tset, dets).items()],
        "annotations": [],
    }
    if tset.classifiers:
        index["classification_categories"] = [{"id": int(i), "name": label} for label, i in cls_ids.items()]
    return results, index


def observation_type(label: str) -> str:
    """Camtrap DP observationType for a detector label."""
    key = label.lower()
    if key in HUMAN_LABELS:
        return "human"
    if key in VEHICLE_LABELS:
        return "vehicle"
    if key in BLANK_LABELS:
        return "blank"
    return "animal"


def media_id(uri: str, content_id: str) -> str:
    return hashlib.sha1(f"{uri}\0{content_id}".encode()).hexdigest()[:16]


def camtrap_dp(images: pd.DataFrame, dets: pd.DataFrame, tset: TableSet, offset: str = "Z",
               observation_level: ObservationLevel = "media",
               gap_s: float = DEFAULT_GAP_S) -> tuple[list[dict], list[dict]]:
    """Camtrap DP 1.0 media and observations rows (failed images are left out).

    `observation_level` media: one observation per kept box (blank images one `blank` row);
    event: one per event (batch/events.py, `gap_s`) and label, `count` the most boxes of that
    label in one image; both: the two, the media-level rows carrying their eventID.
    """
    by_uri = {uri: g for uri, g in dets.groupby("uri", sort=False)} if not dets.empty else {}
    classified_by = f"{tset.model_name} {tset.model_version}"
    media, observations = [], []
    events = group_events(images, dets, gap_s, tset.filters_hash) if observation_level != "media" else None
    event_of = {} if events is None else {uri: ev for ev in events.itertuples(index=False) for uri in ev.uris}
    for row in images[images["status"] != "failed"].itertuples(index=False):
        mid = media_id(row.uri, row.content_id)
        deployment = row.camera_id if isinstance(row.camera_id, str) and row.camera_id else "unknown"
        when = _iso(row.capture_time, offset)
        classified_at = _iso(row.processed_at, "Z")
        name = posixpath.basename(row.rel_path or row.uri)
        media.append({
            "mediaID": mid, "deploymentID": deployment, "captureMethod": "", "timestamp": when,
            "filePath": row.rel_path or row.uri, "filePublic": "false", "fileName": name,
            "fileMediatype": mimetypes.guess_type(name)[0] or "image/jpeg",
            "exifData": "", "favorite": "", "mediaComments": "",
        })
        ev = event_of.get(row.uri)
        base = {"deploymentID": deployment, "mediaID": mid, "eventID": ev.event_id if ev else "",
                "eventStart": when, "eventEnd": when, "observationLevel": "media", "classificationMethod": "machine",
                "classifiedBy": classified_by, "classificationTimestamp": classified_at}
        if observation_level == "event":
            continue
        g = by_uri.get(row.uri)
        if g is None:
            observations.append({**base, "observationID": f"{mid}_blank", "observationType": "blank",
                                 "observationTags": f"filters:{tset.filters_hash}"})
            continue
        for n, d in enumerate(g.itertuples(index=False), start=1):
            x, y, w, h = _box(d)
            bbox = {"bboxX": round(x, 4), "bboxY": round(y, 4), "bboxWidth": round(w, 4), "bboxHeight": round(h, 4)}
            if w <= 0 or h <= 0:
                bbox = {}  # a degenerate box: keep the observation, drop the geometry
            obs = {
                **base, **bbox, "observationID": f"{mid}_{n}", "observationType": observation_type(d.label),
                "count": 1, "classificationProbability": round(float(d.score), 4),
                "observationTags": f"label:{d.label}|filters:{tset.filters_hash}",
            }
            if getattr(d, "classifications", None):  # the species answer: the first classifier's
                c = d.classifications[0]
                obs.update(scientificName=scientific_name(c), classificationProbability=round(float(c["score"]), 4),
                           classifiedBy=f"{classified_by} + {c['classifier_name']} {c['classifier_version']}",
                           observationTags=f"{obs['observationTags']}|classification:{c['label']}")
            observations.append(obs)
    if events is not None:
        observations += _event_observations(events, by_uri, images, tset, offset)
    return media, observations


def _event_observations(events: pd.DataFrame, by_uri: dict[str, pd.DataFrame], images: pd.DataFrame,
                        tset: TableSet, offset: str) -> list[dict]:
    """Event-level observations: one per event and what was seen (a blank event: one `blank` row).

    "What was seen" is the detector label, or with a classifier its taxon (the first classifier's,
    as at media level): `count` is the most such boxes in one image of the event (the same animal is
    in every frame), `classificationProbability` the highest score among them.
    """
    classified_at = _iso(images["processed_at"].max(), "Z") if not images.empty else ""
    classified_by = f"{tset.model_name} {tset.model_version}"
    rows = []
    for ev in events.itertuples(index=False):
        counts: dict[tuple[str, str], int] = {}
        scores: dict[tuple[str, str], float] = {}
        classifier: dict[tuple[str, str], str] = {}
        for uri in ev.uris:
            per_image: dict[tuple[str, str], int] = {}
            g = by_uri.get(uri)
            for d in [] if g is None else g.itertuples(index=False):
                c = d.classifications[0] if getattr(d, "classifications", None) else None
                key = (d.label, scientific_name(c) if c is not None else "")
                per_image[key] = per_image.get(key, 0) + 1
                scores[key] = max(scores.get(key, 0.0), float(c["score"] if c is not None else d.score))
                if c is not None:
                    classifier[key] = f"{c['classifier_name']} {c['classifier_version']}"
            for key, n in per_image.items():
                counts[key] = max(counts.get(key, 0), n)
        base = {"deploymentID": ev.camera_id if isinstance(ev.camera_id, str) and ev.camera_id else "unknown",
                "mediaID": "", "eventID": ev.event_id, "eventStart": _iso(ev.start, offset),
                "eventEnd": _iso(ev.end, offset), "observationLevel": "event", "classificationMethod": "machine",
                "classifiedBy": classified_by, "classificationTimestamp": classified_at}
        if not counts:
            rows.append({**base, "observationID": f"{ev.event_id}_blank", "observationType": "blank",
                         "observationTags": f"images:{ev.images}|filters:{tset.filters_hash}"})
        for label, taxon in sorted(counts):
            key = (label, taxon)
            row = {**base, "observationID": "_".join(filter(None, (ev.event_id, label, taxon))),
                   "observationType": observation_type(label), "count": counts[key],
                   "classificationProbability": round(scores[key], 4),
                   "observationTags": f"label:{label}|images:{ev.images}|filters:{tset.filters_hash}"}
            if taxon:
                row.update(scientificName=taxon, classifiedBy=f"{classified_by} + {classifier[key]}",
                           observationTags=f"{row['observationTags']}|classification:{taxon}")
            rows.append(row)
    return rows


def _csv(rows: list[dict], fields: list[str]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k, "") for k in fields})
    return buf.getvalue().encode()


def _write(url: str, data: bytes) -> str:
    """Write one output file atomically (local or s3://)."""
    if "://" in url:
        parent, _, name = url.rstrip("/").rpartition("/")
    else:
        import os

        url = os.path.abspath(url)
        parent, name = os.path.dirname(url), os.path.basename(url)
    storage = open_location(parent)
    storage.makedirs()
    storage.write_atomic(data, name)
    return storage.url(name)


def run_export(tables_url: str, fmt: Format, out: str, model: str | None = None, filters_hash: str | None = None,
               cameras: list[str] | None = None, since: Any = None, until: Any = None, timezone: str = "Z",
               store: str | None = None, observation_level: ObservationLevel = "media",
               gap_s: float = DEFAULT_GAP_S) -> ExportReport:
    """Export one model version and filter set; `out` is a file (megadetector, coco) or a directory (camtrap-dp)."""
    if not re.fullmatch(r"Z|[+-]\d{2}:\d{2}", timezone):
        raise BatchError(f"--timezone must be Z or +HH:MM / -HH:MM, got {timezone!r}")
    tables = Tables(tables_url)
    tset = resolve_table_set(tables, model, filters_hash, store)
    images, dets = load(tables, tset, subset_filter(cameras, since, until))
    failed = int((images["status"] == "failed").sum()) if not images.empty else 0
    written = []
    if fmt == "megadetector":
        written.append(_write(out, json.dumps(megadetector(images, dets, tset), indent=1).encode()))
    elif fmt == "coco":
        results, index = coco(images, dets, tset)
        written.append(_write(out, json.dumps(results).encode()))
        stem = out[:-5] if out.endswith(".json") else out
        written.append(_write(f"{stem}.images.json", json.dumps(index, indent=1).encode()))
    elif fmt == "camtrap-dp":
        media, observations = camtrap_dp(images, dets, tset, timezone, observation_level, gap_s)
        base = out.rstrip("/")
        written.append(_write(f"{base}/media.csv", _csv(media, CAMTRAP_MEDIA_FIELDS)))
        written.append(_write(f"{base}/observations.csv", _csv(observations, CAMTRAP_OBSERVATION_FIELDS)))
    else:
        raise BatchError(f"unknown export format {fmt!r}; use megadetector, coco or camtrap-dp")
    return ExportReport(fmt, f"{tset.model_name}:{tset.model_version}", tset.filters_hash, len(images), failed,
                        len(dets), written)
