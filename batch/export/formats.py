"""Export the tables to formats other tools read: MegaDetector batch JSON, COCO results, Camtrap DP.

All three use the current row per image (newest processing of each uri) of one model version
and filter set, and only the kept detections. Category ids are `class_id + 1` in MegaDetector
and COCO output (both reserve 0 by convention), as strings in MegaDetector's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
import pyarrow.dataset as ds

from batch.export.camtrap import (
    CAMTRAP_MEDIA_FIELDS,
    CAMTRAP_OBSERVATION_FIELDS,
    ObservationLevel,
    camtrap_dp,
    csv_bytes,
)
from batch.export.camtrap_package import camtrap_package, load_package_meta
from batch.export.deployments import CAMTRAP_DEPLOYMENT_FIELDS, load_deployments
from batch.export.fields import box_of
from batch.export.md_metadata import classifier_info, detector_metadata
from batch.refilter.events import DEFAULT_GAP_S
from batch.tables.archive import open_location
from batch.tables.reader import Tables, TableSet, resolve_table_set
from batch.tables.schema import CLASSIFICATIONS
from batch.tables.scope import Scope
from trapline.errors import BatchError

Format = Literal["megadetector", "coco", "camtrap-dp"]
MD_FORMAT_VERSION = "1.4"


@dataclass
class ExportReport:
    format: str
    model: str
    filters_hash: str
    images: int
    failed: int
    detections: int
    written: list[str]
    notes: list[str] = field(default_factory=list)  # what the user should know about the output (camtrap-dp)


def subset_filter(cameras: list[str] | None = None, since: Any = None, until: Any = None) -> ds.Expression | None:
    """An expression on the images table for --camera / --since / --until (they intersect: tables/scope.py)."""
    return Scope.of(cameras, since, until).expression()


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


def _labels(tset: TableSet, dets: pd.DataFrame) -> dict[int, str]:
    labels = {i: name for i, name in enumerate(tset.labels)}
    for cid, label in zip(dets.get("class_id", []), dets.get("label", []), strict=False):
        labels.setdefault(int(cid), label)  # metadata missing (old files): what the rows say
    return dict(sorted(labels.items()))


def megadetector(images: pd.DataFrame, dets: pd.DataFrame, tset: TableSet, store: str | None = None) -> dict:
    """MegaDetector batch output format 1.4 (https://lila.science/megadetector-output-format); `info` as
    MegaDetector's writer fills it (batch/export/md_metadata.py)."""
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
                 "bbox": [round(v, 4) for v in box_of(d)],
                 **({"classifications": md_classifications(d.classifications, cls_ids)}
                    if getattr(d, "classifications", None) else {})}
                for d in g.itertuples(index=False)
            ]
        out_images.append(entry)
    done = images["processed_at"].max() if not images.empty else None
    completed = pd.Timestamp(done).strftime("%Y-%m-%d %H:%M:%S") if done is not None else ""
    extra = {"classification_categories": {v: k for k, v in cls_ids.items()}} if tset.classifiers else {}
    return {
        "info": {
            "format_version": MD_FORMAT_VERSION,
            "detector": f"{tset.model_name} {tset.model_version}",
            "detection_completion_time": completed,
            "detector_metadata": detector_metadata(tset, store),
            **classifier_info(tset, completed),
        },
        "detection_categories": {str(cid + 1): label for cid, label in _labels(tset, dets).items()},
        **extra,
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
        x, y, bw, bh = box_of(d)
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
               gap_s: float = DEFAULT_GAP_S, deployments: str | None = None,
               allow_missing_deployments: bool = False, package_meta: str | None = None) -> ExportReport:
    """Export one model version and filter set; `out` is a file (megadetector, coco) or a directory (camtrap-dp:
    a Camtrap DP package, with `deployments` and `package_meta` files; see batch/export/camtrap_package.py)."""
    if not re.fullmatch(r"Z|[+-]\d{2}:\d{2}", timezone):
        raise BatchError(f"--timezone must be Z or +HH:MM / -HH:MM, got {timezone!r}")
    package_inputs = None
    if fmt == "camtrap-dp":  # read and check the user's files before any table is read
        package_inputs = (load_deployments(deployments) if deployments else {}, load_package_meta(package_meta))
    tables = Tables(tables_url)
    tset = resolve_table_set(tables, model, filters_hash, store)
    images, dets = load(tables, tset, subset_filter(cameras, since, until))
    failed = int((images["status"] == "failed").sum()) if not images.empty else 0
    written, notes = [], []
    if fmt == "megadetector":
        doc = megadetector(images, dets, tset, store)
        if "typical_detection_threshold" not in doc["info"]["detector_metadata"]:
            notes.append("info.detector_metadata has no detection thresholds (tables from before they were "
                         "recorded, and the model store is not reachable: pass --store); MegaDetector's tools "
                         "will fall back to a default threshold")
        written.append(_write(out, json.dumps(doc, indent=1).encode()))
    elif fmt == "coco":
        results, index = coco(images, dets, tset)
        written.append(_write(out, json.dumps(results).encode()))
        stem = out[:-5] if out.endswith(".json") else out
        written.append(_write(f"{stem}.images.json", json.dumps(index, indent=1).encode()))
    elif fmt == "camtrap-dp":
        media, observations = camtrap_dp(images, dets, tset, timezone, observation_level, gap_s)
        package = camtrap_package(media, observations, tset, package_inputs, timezone, observation_level,
                                  allow_missing_deployments)
        base = out.rstrip("/")
        written.append(_write(f"{base}/deployments.csv", csv_bytes(package.deployments, CAMTRAP_DEPLOYMENT_FIELDS)))
        written.append(_write(f"{base}/media.csv", csv_bytes(media, CAMTRAP_MEDIA_FIELDS)))
        written.append(_write(f"{base}/observations.csv", csv_bytes(observations, CAMTRAP_OBSERVATION_FIELDS)))
        written.append(_write(f"{base}/datapackage.json", json.dumps(package.descriptor, indent=2).encode()))
        notes = package.notes
    else:
        raise BatchError(f"unknown export format {fmt!r}; use megadetector, coco or camtrap-dp")
    return ExportReport(fmt, f"{tset.model_name}:{tset.model_version}", tset.filters_hash, len(images), failed,
                        len(dets), written, notes)
