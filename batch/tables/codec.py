"""Detection records <-> table rows: the one place a stored row becomes a `Detection` again, and a
`Classification` becomes a `classifications` row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model_store.core.records import Classification, Detection


def ranked_from_rows(detections: Sequence[dict], width: int, height: int) -> list[tuple[Detection, bool]]:
    """A table's (or a result batch's) detection rows back as `(Detection, kept)` in detection_index order."""
    out = []
    for d in sorted(detections, key=lambda d: d["detection_index"]):
        x, y, w, h = d["bbox_x"], d["bbox_y"], d["bbox_w"], d["bbox_h"]
        box = (x * width, y * height, (x + w) * width, (y + h) * height)
        out.append((Detection(label=d["label"], class_id=d["class_id"], score=d["score"], bbox=(x, y, w, h),
                              box_px=box, flags=list(d.get("flags") or [])), bool(d["kept"])))
    return out


def classification_row(detection_index: int, c: Classification) -> dict[str, Any]:
    return {"detection_index": detection_index, "classifier_name": c.model.name,
            "classifier_version": c.model.version, "classifier_sha256": c.model.sha256, "label": c.label,
            "score": c.score, "rank": c.rank, "taxon_path": c.taxon_path, "top_labels": [t.label for t in c.top],
            "top_scores": [t.score for t in c.top], "scores": c.scores, "flags": c.flags}
