"""MegaDetector batch JSON and COCO results (Camtrap DP: batch/export/camtrap.py).

Every format uses the current row per image (newest processing of each uri) of one model version
and filter set, and only the kept detections. Category ids are `class_id + 1` in MegaDetector
and COCO output (both reserve 0 by convention), as strings in MegaDetector's.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from batch.export.base import Exporter, ExportJob, open_output
from batch.export.fields import box_of
from batch.export.md_metadata import classifier_info, detector_metadata
from model_store.tables.table_set import TableSet

MD_FORMAT_VERSION = "1.4"


class Categories:
    """The category ids of one export, gathered a slice at a time: detection labels (the model's, then any the rows
    name that its metadata lacks: old files) and classification labels ("1".."N": every classifier's labels in
    order, then rolled-up taxa as they occur)."""

    def __init__(self, tset: TableSet) -> None:
        self.labels: dict[int, str] = dict(enumerate(tset.labels))
        self.classes: dict[str, str] = {}
        for c in tset.classifiers:
            for label in c.get("labels_out", []):
                self.classes.setdefault(label, str(len(self.classes) + 1))

    def add(self, dets: pd.DataFrame) -> None:
        for cid, label in zip(dets.get("class_id", []), dets.get("label", []), strict=False):
            self.labels.setdefault(int(cid), label)  # metadata missing (old files): what the rows say
        for rows in dets.get("classifications", []):
            for r in rows:
                self.classes.setdefault(r["label"], str(len(self.classes) + 1))

    def detection(self) -> dict[int, str]:
        return dict(sorted(self.labels.items()))


def classification_categories(tset: TableSet, dets: pd.DataFrame) -> dict[str, str]:
    """label -> category id ("1".."N"): every classifier's labels in order, then rolled-up taxa as they occur."""
    found = Categories(tset)
    found.add(dets)
    return found.classes


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


def occurrence_of(d: Any) -> dict[str, str]:
    """The box's occurrence, as an extra key (MegaDetector and COCO readers keep keys they do not know); nothing
    when the set was not tracked."""
    oid = getattr(d, "occurrence_id", None)
    return {"occurrence_id": oid} if isinstance(oid, str) else {}


def _number(value: Any) -> float | None:
    """A column's value as a number, None for a missing one (pandas reads a null int as NaN)."""
    return None if value is None or value != value else value


class MegaDetectorDoc:
    """MegaDetector batch output format 1.4 (https://lila.science/megadetector-output-format) a slice at a time:
    `entries(images, dets)` are the slice's `images` entries; `rest()` the document's other keys, `info` as
    MegaDetector's writer fills it (batch/export/md_metadata.py), once every slice is in."""

    def __init__(self, tset: TableSet, store: str | None = None) -> None:
        self.tset, self.store, self.categories = tset, store, Categories(tset)
        self.done: Any = None  # the newest processed_at seen

    def entries(self, images: pd.DataFrame, dets: pd.DataFrame) -> list[dict[str, Any]]:
        self.categories.add(dets)
        cls_ids = self.categories.classes
        by_uri: dict[str, list[Any]] = {}
        for d in dets.itertuples(index=False):  # one pass: a groupby's itertuples per image cost 5 ms each
            by_uri.setdefault(d.uri, []).append(d)
        if not images.empty:
            newest = images["processed_at"].max()
            self.done = newest if self.done is None or (newest is not None and newest > self.done) else self.done
        out = []
        for row in images.itertuples(index=False):
            entry: dict[str, Any] = {"file": row.rel_path or row.uri}
            clip = getattr(row, "kind", None) == "video"
            if clip:  # MegaDetector's video convention: one entry per clip, its frame rate (-1: a clip not read)
                fps = _number(getattr(row, "fps", None))
                entry["frame_rate"] = round(float(fps), 3) if fps is not None else (-1 if row.status == "failed"
                                                                                     else 0)
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
                    for d in g
                ]
            out.append(entry)
        return out

    def rest(self) -> dict[str, Any]:
        tset = self.tset
        completed = pd.Timestamp(self.done).strftime("%Y-%m-%d %H:%M:%S") if self.done is not None else ""
        extra = md_categories(self.categories.classes) if tset.classifiers else {}
        return {
            "info": {
                "format_version": MD_FORMAT_VERSION,
                "detector": f"{tset.model_name} {tset.model_version}",
                "detection_completion_time": completed,
                "detector_metadata": detector_metadata(tset, self.store),
                **classifier_info(tset, completed),
            },
            "detection_categories": {str(cid + 1): label for cid, label in self.categories.detection().items()},
            **extra,
        }


def megadetector(images: pd.DataFrame, dets: pd.DataFrame, tset: TableSet, store: str | None = None) -> dict:
    """The whole MegaDetector document of these rows at once (`MegaDetectorDoc`)."""
    doc = MegaDetectorDoc(tset, store)
    entries = doc.entries(images, dets)
    return {**doc.rest(), "images": entries}


class CocoDoc:
    """COCO results (a list of {image_id, category_id, bbox [x, y, w, h] pixels, score}) and their image index, a
    slice at a time: `add(images, dets)` gives the slice's results and index images, `index_head()` and
    `index_rest()` the index's other keys. A segmentation model's results also have `segmentation` (COCO RLE in
    image pixels); MegaDetector's format has no place for masks, so that export keeps the boxes only.

    With classifiers each result also has `classification` {category_id, label, score, classifier}, and the
    index `classification_categories`."""

    def __init__(self, tset: TableSet) -> None:
        self.tset, self.categories, self.images = tset, Categories(tset), 0

    def add(self, images: pd.DataFrame, dets: pd.DataFrame) -> tuple[list[dict], list[dict]]:
        self.categories.add(dets)
        cls_ids = self.categories.classes
        ok = images[images["status"] != "failed"].reset_index(drop=True) if not images.empty else images
        ids = {uri: self.images + i + 1 for i, uri in enumerate(ok.get("uri", []))}
        self.images += len(ids)
        sizes = {uri: (int(w), int(h)) for uri, w, h in zip(ok.get("uri", []), ok.get("width", []),
                                                              ok.get("height", []), strict=True)}
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
        index = [{"id": ids[r.uri], "file_name": r.rel_path or r.uri, "width": int(r.width), "height": int(r.height)}
                 for r in ok.itertuples(index=False)]
        return results, index

    def index_head(self) -> dict[str, Any]:
        tset = self.tset
        return {"info": {"description": f"images scored by {tset.model_name} {tset.model_version} "
                                        f"(filters {tset.filters_hash})"}}

    def index_rest(self) -> dict[str, Any]:
        rest: dict[str, Any] = {
            "categories": [{"id": cid + 1, "name": label} for cid, label in self.categories.detection().items()],
            "annotations": []}
        if self.tset.classifiers:
            rest["classification_categories"] = [{"id": int(i), "name": label}
                                                 for label, i in self.categories.classes.items()]
        return rest


def coco(images: pd.DataFrame, dets: pd.DataFrame, tset: TableSet) -> tuple[list[dict], dict]:
    """The COCO results and image index of these rows at once (`CocoDoc`)."""
    doc = CocoDoc(tset)
    results, index = doc.add(images, dets)
    return results, {**doc.index_head(), "images": index, **doc.index_rest()}


def _json_rest(keys: dict[str, Any]) -> str:
    """`keys` as the end of a JSON object whose first keys are written already: `,\n "key": value, ...}`."""
    return "," + json.dumps(keys, indent=1)[1:] if keys else "}"


class JsonList:
    """A JSON array written into `out` an item at a time (`add`), ended by `close()`."""

    def __init__(self, out: Any) -> None:
        self.out, self.first = out, True
        out.write("[")

    def add(self, items: list[Any]) -> None:
        for item in items:
            self.out.write("\n" if self.first else ",\n")
            self.out.write(json.dumps(item))
            self.first = False

    def close(self) -> None:
        self.out.write("\n]")


class MegaDetectorExporter(Exporter):
    """The `megadetector` format (batch/export/registry.py): one JSON document, written a slice of whole cameras at
    a time (`images` first, the keys that depend on every row after them), so its memory does not grow with the
    archive."""

    def write(self, job: ExportJob) -> tuple[list[str], list[str]]:
        doc = MegaDetectorDoc(job.tset, job.options.store)
        with open_output(job.out) as (out, url):
            out.write('{"images": ')
            images = JsonList(out)
            for rows in job.rows():
                images.add(doc.entries(rows.images, rows.dets))
            images.close()
            rest = doc.rest()
            out.write(_json_rest(rest))
        notes = []
        if "typical_detection_threshold" not in rest["info"]["detector_metadata"]:
            notes.append("info.detector_metadata has no detection thresholds (tables from before they were "
                         "recorded, and the model store is not reachable: pass --store); MegaDetector's tools "
                         "will fall back to a default threshold")
        return [url], notes


class CocoExporter(Exporter):
    """The `coco` format (batch/export/registry.py): the results and the image index, both written a slice of whole
    cameras at a time."""

    def write(self, job: ExportJob) -> tuple[list[str], list[str]]:
        doc = CocoDoc(job.tset)
        stem = job.out[:-5] if job.out.endswith(".json") else job.out
        with open_output(job.out) as (res_out, res_url), open_output(f"{stem}.images.json") as (idx_out, idx_url):
            results = JsonList(res_out)
            idx_out.write(json.dumps(doc.index_head(), indent=1)[:-2] + ',\n "images": ')
            index = JsonList(idx_out)
            for rows in job.rows():
                found, images = doc.add(rows.images, rows.dets)
                results.add(found)
                index.add(images)
            results.close()
            index.close()
            idx_out.write(_json_rest(doc.index_rest()))
        return [res_url, idx_url], []
