"""`rtdetr`: [B, K, 6] - cx, cy, w, h normalised to the input (0-1), score, class id: Ultralytics' RT-DETR
export, whose decoder has already chosen its top K queries. No NMS; rows above the threshold kept in the
graph's order (Ultralytics' RTDETRPredictor). Ultralytics feeds RT-DETR a stretched image (`scale_fill`),
which `trapline models publish` sets from the graph's metadata."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_store.core.heads.base import DecodeSpec, Dim, Head, Raw, RawDetections, fixed, one_output, xywh_to_xyxy
from model_store.core.heads.end2end import topk_rows


class RtdetrHead(Head):
    name = "rtdetr"
    summary = "[B, K, 6] cx,cy,w,h (normalised),score,class: Ultralytics RT-DETR export; no NMS"
    nms = False
    normalised = True

    def fits(self, shapes: Sequence[Sequence[Dim]], num_classes: int) -> bool:
        return len(shapes[0]) == 3 and fixed(shapes[0][2], 6)

    def shape(self, num_classes: int) -> str:
        return "[N, queries, 6]"

    def decode(self, raw: Raw, spec: DecodeSpec) -> RawDetections:
        rows, class_ids = topk_rows(one_output(raw), spec.num_classes, spec.score_threshold, self.name)
        w, h = spec.input_size
        boxes = xywh_to_xyxy(rows[:, :4]) * np.array([w, h, w, h], np.float32)
        return RawDetections(boxes.astype(np.float32), rows[:, 4].astype(np.float32), class_ids)


HEAD = RtdetrHead()
