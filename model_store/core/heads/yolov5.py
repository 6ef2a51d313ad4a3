"""`yolov5`: [B, anchors, 5 + nc] - cx, cy, w, h in input pixels, objectness, per-class scores (YOLOv5,
MegaDetector v5). Score = objectness x best class score; trapline runs NMS after it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_store.core.heads.base import DecodeSpec, Dim, Head, Raw, RawDetections, one_output, xywh_to_xyxy


def objectness_candidates(pred: np.ndarray, num_classes: int, threshold: float, layout: str) -> RawDetections:
    """Rows of an [anchors, 5 + nc] output whose objectness x best class score reaches `threshold`."""
    if pred.ndim != 2 or pred.shape[1] != 5 + num_classes:
        raise ValueError(f"{layout} output must have 5+{num_classes} columns, got shape {pred.shape}")
    # objectness bounds every class score, so rows below the threshold can be dropped first
    keep = np.flatnonzero(pred[:, 4] >= threshold)
    cls_scores = pred[keep, 5:] * pred[keep, 4:5]
    class_ids = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(cls_scores)), class_ids]
    ok = scores >= threshold
    if not ok.any():
        return RawDetections.empty()
    boxes = xywh_to_xyxy(pred[keep[ok], :4])
    return RawDetections(boxes, scores[ok].astype(np.float32), class_ids[ok].astype(np.int64))


class Yolov5Head(Head):
    name = "yolov5"
    summary = "[B, anchors, 5+nc] with objectness: YOLOv5 / MegaDetector v5, NMS by trapline"

    def fits(self, shapes: Sequence[Sequence[Dim]], num_classes: int) -> bool:
        return len(shapes[0]) == 3 and shapes[0][2] == 5 + num_classes

    def shape(self, num_classes: int) -> str:
        return f"[N, anchors, {5 + num_classes}]"

    def decode(self, raw: Raw, spec: DecodeSpec) -> RawDetections:
        return objectness_candidates(one_output(raw), spec.num_classes, spec.score_threshold, self.name)


HEAD = Yolov5Head()
