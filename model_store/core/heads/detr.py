"""`detr`: two outputs, boxes [B, Q, 4] (cx, cy, w, h normalised to the input) and class logits [B, Q, C]
(RF-DETR's and RT-DETR's raw exports). Scores are sigmoid(logit) per class; each query keeps its best
class, above the threshold. No NMS (a DETR's queries do not duplicate each other); the best queries first.

Boxes and logits are told apart by their last dim (4 against C); when C is 4 too, graph order decides."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_store.core.heads.base import (
    DecodeSpec,
    Dim,
    Head,
    Raw,
    RawDetections,
    best_class,
    fixed,
    xywh_to_xyxy,
)


class DetrHead(Head):
    name = "detr"
    summary = "[B, Q, 4] boxes (cx,cy,w,h normalised) + [B, Q, C] logits (sigmoid): RF-DETR / raw DETR exports"
    outputs = 2
    nms = False
    normalised = True

    def fits(self, shapes: Sequence[Sequence[Dim]], num_classes: int) -> bool:
        if len(shapes) < 2 or len(shapes[0]) != 3 or len(shapes[1]) != 3:
            return False
        a, b = shapes[0], shapes[1]
        # RF-DETR exports C = classes + 1 (a background / no-object column), others C = classes
        return fixed(a[2], 4) and isinstance(b[2], int) and b[2] in (num_classes, num_classes + 1) or \
            fixed(b[2], 4) and isinstance(a[2], int) and a[2] in (num_classes, num_classes + 1)

    def shape(self, num_classes: int) -> str:
        return f"[N, queries, 4] + [N, queries, {num_classes}]"

    def decode(self, raw: Raw, spec: DecodeSpec) -> RawDetections:
        if not isinstance(raw, tuple) or len(raw) < 2:
            raise ValueError("detr needs two outputs per image (boxes and logits)")
        boxes, logits = (np.asarray(r, np.float32) for r in raw[:2])
        if boxes.shape[-1] != 4 and logits.shape[-1] == 4:
            boxes, logits = logits, boxes
        if boxes.ndim != 2 or logits.ndim != 2 or len(boxes) != len(logits):
            raise ValueError(f"detr outputs must be [Q, 4] and [Q, C] per image, got {boxes.shape} and {logits.shape}")
        logits = logits[:, :spec.num_classes]  # a trailing no-object column is not a label
        # sigmoid is monotonic: compare logits with logit(threshold) and exponentiate only the survivors
        t = min(max(spec.score_threshold, 1e-7), 1 - 1e-7)
        keep = np.flatnonzero(logits.max(axis=1) >= np.log(t / (1 - t)) - 1e-6)
        scores = 1.0 / (1.0 + np.exp(-logits[keep]))
        xyxy, best, class_ids = best_class(scores, xywh_to_xyxy(boxes[keep]), spec.score_threshold)
        order = np.argsort(-best, kind="stable")
        w, h = spec.input_size
        xyxy = (xyxy[order] * np.array([w, h, w, h], np.float32)).astype(np.float32)
        return RawDetections(xyxy, best[order], class_ids[order])


HEAD = DetrHead()
