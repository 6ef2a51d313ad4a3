"""Detection records <-> table rows: the one place an `ImageDetections` record becomes a result row (its image
columns and its detections nested, as RESULT_SCHEMA / STAGE_SCHEMA hold them), a `Classification` becomes a
`classifications` row, and a stored row becomes a `Detection` again.

Both doors write through here: the batch job's inference stage (`batch/reprocess/detect.py`) and the online
door's recorder (`serve/recording/`), so an uploaded image and an archive image give the same rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from model_store.core.clips import ClipDetections
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
    return {"status": "ok" if record.detections else "empty", "error_reason": None, "error": None, "kind": "image",
            "width": record.width, "height": record.height, "detection_count": len(record.detections),
            "raw_detection_count": len(every), "max_score": max((d.score for d in record.detections), default=None),
            "detections": [detection_row(j, d, kept) for j, (d, kept) in enumerate(every)]}


def clip_fields(clip: ClipDetections, capture_time_us: int | None = None) -> dict[str, Any]:
    """What one clip fills in of its result row: one row for the clip, every sampled frame's raw detections nested
    with their frame number, time offset and frame time (capture time + offset), its tracks and its summary. A clip
    that broke is `failed` with its reason, and still carries the frames it did read."""
    info = clip.info
    label, score = clip.determination()
    kept = [d for _, _, _, d, k in clip.ranked() if k]
    detections = []
    for number, offset, index, d, is_kept in clip.ranked():
        row = detection_row(index, d, is_kept)
        row.update(frame_number=number, frame_offset_s=offset, clip_track=clip.track_of.get(index),
                   frame_time=(capture_time_us + round(offset * 1e6)) if capture_time_us is not None and
                   capture_time_us >= 0 else None)
        detections.append(row)
    status = "failed" if clip.reason else ("ok" if kept else "empty")
    return {"status": status, "error_reason": clip.reason, "error": clip.error,
            "width": info.width if info else None, "height": info.height if info else None,
            "detection_count": len(kept), "raw_detection_count": len(detections),
            "max_score": max((d.score for d in kept), default=None), "detections": detections,
            "kind": "video", "duration_s": info.duration_s if info else None, "fps": info.fps if info else None,
            "frame_count": info.frame_count if info else None, "frames_sampled": len(clip.frames),
            "max_per_frame": clip.max_per_frame, "clip_animals": clip.animals, "clip_label": label,
            "clip_score": score, "clip_tracks": json.dumps([
                {"track": t.track, "label": t.label, "score": round(t.score, 6), "detections": t.detections,
                 "first_offset_s": t.first_offset_s, "last_offset_s": t.last_offset_s, "best_frame": t.best_frame,
                 "best_detection_index": t.best_detection, "confirmed": t.confirmed} for t in clip.tracks])}


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
            "top_scores": [t.score for t in c.top], "scores": c.scores, "flags": c.flags,
            "source": c.source, "pre_smoothing_description": None}  # set only by a smoothing pass over tables
