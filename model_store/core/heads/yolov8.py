"""`yolov8`: [B, 4 + nc, anchors] - cx, cy, w, h in input pixels, then per-class scores (Ultralytics YOLOv8,
YOLO11, YOLO26 default exports). trapline runs NMS after it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_store.core.heads.base import DecodeSpec, Dim, Head, Raw, RawDetections, one_output, xywh_to_xyxy


def class_score_candidates(pred: np.ndarray, num_classes: int, threshold: float, extra: int = 0,
                           layout: str = "yolov8") -> RawDetections:
    """Columns of a [4 + nc + extra, anchors] output whose best class score reaches `threshold`, as boxes.

    `extra` rows after the class scores are not scores: they ride along as `RawDetections.extra` (a
    segmentation head's 32 mask coefficients), through NMS to the boxes that survive it."""
    if pred.ndim != 2 or pred.shape[0] != 4 + num_classes + extra:
        raise ValueError(f"{layout} output must have 4+{num_classes}{f'+{extra}' if extra else ''} rows, "
                         f"got shape {pred.shape}")
    # Threshold on the channel-major array first: with 8400 anchors x 80 classes a max over
    # axis 0 is contiguous and cheap, and only the few survivors get transposed (~8x faster).
    best = pred[4:4 + num_classes].max(axis=0)
    keep = np.flatnonzero(best >= threshold)
    if keep.size == 0:
        return RawDetections.empty()
    cls_scores = pred[4:4 + num_classes, keep].T
    class_ids = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(cls_scores)), class_ids]
    ok = scores >= threshold
    boxes = xywh_to_xyxy(pred[:4, keep].T[ok])
    rest = pred[4 + num_classes:, keep[ok]].T.copy() if extra else None
    return RawDetections(boxes, scores[ok].astype(np.float32), class_ids[ok].astype(np.int64), rest)


class Yolov8Head(Head):
    name = "yolov8"
    summary = "[B, 4+nc, anchors]: Ultralytics YOLOv8 / YOLO11 / YOLO26 default export, NMS by trapline"

    def fits(self, shapes: Sequence[Sequence[Dim]], num_classes: int) -> bool:
        return len(shapes[0]) == 3 and shapes[0][1] == 4 + num_classes

    def shape(self, num_classes: int) -> str:
        return f"[N, {4 + num_classes}, anchors]"

    def decode(self, raw: Raw, spec: DecodeSpec) -> RawDetections:
        return class_score_candidates(one_output(raw), spec.num_classes, spec.score_threshold)


HEAD = Yolov8Head()
