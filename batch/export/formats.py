"""MegaDetector batch JSON and COCO results (Camtrap DP: batch/export/camtrap.py).

Every format uses the current row per image (newest processing of each uri) of one model version
and filter set, and only the kept detections. Category ids are `class_id + 1` in MegaDetector
and COCO output (both reserve 0 by convention), as strings in MegaDetector's.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from batch.export.base import Exporter, ExportJob, write_file
from batch.export.fields import box_of
from batch.export.md_metadata import classifier_info, detector_metadata
from model_store.tables.reader import TableSet

MD_FORMAT_VERSION = "1.4"


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


def md_categories(ids: dict[str, str]) -> dict[str, dict[str, str]]:
    """MegaDetector's category tables: id -> label; for SpeciesNet's 7-field labels (`uuid;class;...;common name`) id
    -> common name beside `classification_category_descriptions` id -> label, as MegaDetector writes SpeciesNet
    results (its smoothing and taxa-list tools read them)."""
    if ids and all(label.count(";") == 6 for label in ids):
        return {"classification_categories": {i: label.rsplit(";", 1)[1] for label, i in ids.items()},
                "classification_category_descriptions": {i: label for label, i in ids.items()}}
    return {"classification_categories": {v: k for k, v in ids.items()}}


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


def occurrence_of(d: Any) -> dict[str, str]:
    """The box's occurrence, as an extra key (MegaDetector and COCO readers keep keys they do not know); nothing
    when the set was not tracked."""
    oid = getattr(d, "occurrence_id", None)
    return {"occurrence_id": oid} if isinstance(oid, str) else {}


def _number(value: Any) -> float | None:
    """A column's value as a number, None for a missing one (pandas reads a null int as NaN)."""
    return None if value is None or value != value else value


def megadetector(images: pd.DataFrame, dets: pd.DataFrame, tset: TableSet, store: str | None = None) -> dict:
    """MegaDetector batch output format 1.4 (https://lila.science/megadetector-output-format); `info` as
    MegaDetector's writer fills it (batch/export/md_metadata.py)."""
    cls_ids = classification_categories(tset, dets)
    by_uri = {uri: g for uri, g in dets.groupby("uri", sort=False)} if not dets.empty else {}
    out_images = []
    for row in images.itertuples(index=False):
        entry: dict[str, Any] = {"file": row.rel_path or row.uri}
        clip = getattr(row, "kind", None) == "video"
        if clip:  # MegaDetector's video convention: one entry per clip, its frame rate (-1: a clip not read)
            fps = _number(getattr(row, "fps", None))
            entry["frame_rate"] = round(float(fps), 3) if fps is not None else (-1 if row.status == "failed" else 0)
        if row.status == "failed":
            entry["failure"] = f"{row.error_reason}: {row.error}"
            entry["detections"] = None
        else:
            g = by_uri.get(row.uri)
            entry["detections"] = [] if g is None else [
                {"category": str(int(d.class_id) + 1), "conf": round(float(d.score), 3),
                 "bbox": [round(v, 4) for v in box_of(d)],
                 **({"classifications": md_classifications(d.classifications, cls_ids)}
                    if getattr(d, "classifications", None) else {}),
                 **occurrence_of(d),
                 **({"frame_number": int(d.frame_number)} if clip and _number(getattr(d, "frame_number", None))
                    is not None else {})}
                for d in g.itertuples(index=False)
            ]
        out_images.append(entry)
    done = images["processed_at"].max() if not images.empty else None
    completed = pd.Timestamp(done).strftime("%Y-%m-%d %H:%M:%S") if done is not None else ""
    extra = md_categories(cls_ids) if tset.classifiers else {}
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
    A segmentation model's results also have `segmentation` (COCO RLE in image pixels); MegaDetector's format
    has no place for masks, so that export keeps the boxes only.

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
            "score": round(float(d.score), 5), **occurrence_of(d),
        }
        mask = getattr(d, "mask", None)  # a segmentation model's: COCO's own RLE, as loadRes reads it
        if isinstance(mask, dict) and mask.get("counts"):
            result["segmentation"] = {"size": [int(v) for v in mask["size"]], "counts": mask["counts"]}
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


class MegaDetectorExporter(Exporter):
    """The `megadetector` format (batch/export/registry.py)."""

    def write(self, job: ExportJob) -> tuple[list[str], list[str]]:
        rows = job.whole()  # one JSON document: every row at once
        doc = megadetector(rows.images, rows.dets, job.tset, job.options.store)
        notes = []
        if "typical_detection_threshold" not in doc["info"]["detector_metadata"]:
            notes.append("info.detector_metadata has no detection thresholds (tables from before they were "
                         "recorded, and the model store is not reachable: pass --store); MegaDetector's tools "
                         "will fall back to a default threshold")
        return [write_file(job.out, json.dumps(doc, indent=1).encode())], notes


class CocoExporter(Exporter):
    """The `coco` format (batch/export/registry.py)."""

    def write(self, job: ExportJob) -> tuple[list[str], list[str]]:
        rows = job.whole()  # one JSON document: every row at once
        results, index = coco(rows.images, rows.dets, job.tset)
        stem = job.out[:-5] if job.out.endswith(".json") else job.out
        return [write_file(job.out, json.dumps(results).encode()),
                write_file(f"{stem}.images.json", json.dumps(index, indent=1).encode())], []
