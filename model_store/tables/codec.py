"""Detection records <-> table rows: the one place an `ImageDetections` record becomes a result row (its image
columns and its detections nested, as RESULT_SCHEMA / STAGE_SCHEMA hold them), a `Classification` becomes a
`classifications` row, and a stored row becomes a `Detection` again.

Both doors write through here: the batch job's inference stage (`batch/reprocess/detect.py`) and the online
door's recorder (`serve/recording/`), so an uploaded image and an archive image give the same rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model_store.core.records import Classification, Detection, ImageDetections

FAILED_FIELDS = ("width", "height", "detection_count", "raw_detection_count", "max_score")


def detection_row(index: int, d: Detection, kept: bool) -> dict[str, Any]:
    return {"detection_index": index, "label": d.label, "class_id": d.class_id, "score": d.score,
            "bbox_x": d.bbox[0], "bbox_y": d.bbox[1], "bbox_w": d.bbox[2], "bbox_h": d.bbox[3],
            "kept": kept, "flags": list(d.flags), "mask": d.mask.model_dump(mode="json") if d.mask else None}


def result_fields(record: ImageDetections) -> dict[str, Any]:
    """What one image's record fills in of its result row: status, size, counts and every raw detection
    (kept and dropped, `detection_index` = position in `record.ranked()`)."""
    every = record.ranked()
    return {"status": "ok" if record.detections else "empty", "error_reason": None, "error": None,
            "width": record.width, "height": record.height, "detection_count": len(record.detections),
            "raw_detection_count": len(every), "max_score": max((d.score for d in record.detections), default=None),
            "detections": [detection_row(j, d, kept) for j, (d, kept) in enumerate(every)]}


def failed_fields(reason: str, message: str) -> dict[str, Any]:
    """The result-row fields of an image that could not be processed (`reason` is the row's error_reason)."""
    return {"status": "failed", "error_reason": reason, "error": message, **dict.fromkeys(FAILED_FIELDS),
            "detections": []}


def classification_rows(record: ImageDetections) -> list[dict[str, Any]]:
    """The `classifications` rows of a record whose detections carry their classifiers' answers."""
    return [classification_row(j, c) for j, (d, _) in enumerate(record.ranked()) for c in d.classifications]


def ranked_from_rows(detections: Sequence[dict], width: int, height: int) -> list[tuple[Detection, bool]]:
    """A table's (or a result batch's) detection rows back as `(Detection, kept)` in detection_index order."""
    out = []
    for d in sorted(detections, key=lambda d: d["detection_index"]):
        x, y, w, h = d["bbox_x"], d["bbox_y"], d["bbox_w"], d["bbox_h"]
        box = (x * width, y * height, (x + w) * width, (y + h) * height)
        out.append((Detection(label=d["label"], class_id=d["class_id"], score=d["score"], bbox=(x, y, w, h),
                              box_px=box, flags=list(d.get("flags") or []), mask=d.get("mask")), bool(d["kept"])))
    return out


def classification_row(detection_index: int, c: Classification) -> dict[str, Any]:
    return {"detection_index": detection_index, "classifier_name": c.model.name,
            "classifier_version": c.model.version, "classifier_sha256": c.model.sha256, "label": c.label,
            "score": c.score, "rank": c.rank, "taxon_path": c.taxon_path, "top_labels": [t.label for t in c.top],
            "top_scores": [t.score for t in c.top], "scores": c.scores, "flags": c.flags}
