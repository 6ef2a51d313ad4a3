"""`end2end`: [B, K, 6] - x1, y1, x2, y2 in input pixels, score, class id: the graph has already chosen its
top K (YOLO26 / YOLOv10 one-to-one heads, any Ultralytics export with `nms=True`). No NMS of ours; the
rows above the threshold are kept in the graph's order, as Ultralytics' predictor keeps them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_store.core.heads.base import DecodeSpec, Dim, Head, Raw, RawDetections, fixed, one_output


def topk_rows(pred: np.ndarray, num_classes: int, threshold: float, layout: str, extra: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """The [K, 6 + extra] rows whose score is above `threshold` (strictly, as Ultralytics compares) and their
    class ids; a class id outside the labels is the graph contradicting the config, said in a ValueError.
    `extra` columns after the class id (a segmentation head's mask coefficients) are the caller's."""
    if pred.ndim != 2 or pred.shape[1] != 6 + extra:
        raise ValueError(f"{layout} output must be [K, {6 + extra}] per image, got shape {pred.shape}")
    rows = pred[pred[:, 4] > threshold]
    class_ids = rows[:, 5].astype(np.int64)
    if class_ids.size and (class_ids.min() < 0 or class_ids.max() >= num_classes):
        raise ValueError(f"{layout} output has class id {int(class_ids.max())} but the model has {num_classes} labels")
    return rows, class_ids


class End2EndHead(Head):
    name = "end2end"
    summary = "[B, K, 6] x1,y1,x2,y2,score,class: YOLO26/YOLOv10 end2end, Ultralytics nms=True; no NMS of ours"
    nms = False

    def fits(self, shapes: Sequence[Sequence[Dim]], num_classes: int) -> bool:
        return len(shapes[0]) == 3 and fixed(shapes[0][2], 6)

    def shape(self, num_classes: int) -> str:
        return "[N, K, 6]"

    def decode(self, raw: Raw, spec: DecodeSpec) -> RawDetections:
        rows, class_ids = topk_rows(one_output(raw), spec.num_classes, spec.score_threshold, self.name)
        return RawDetections(np.ascontiguousarray(rows[:, :4]), rows[:, 4].astype(np.float32), class_ids)


HEAD = End2EndHead()
