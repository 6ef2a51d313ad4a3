"""Segmentation heads (Ultralytics `-seg`: YOLOv8, YOLO11, YOLO26), registered for the task `segment` under the
layout names of their detection forms. A segmentation export has two outputs: the detection head with 32 mask
coefficients after each box's detection columns, and the prototypes `[B, 32, H/4, W/4]`:

- `yolov8` (NMS form): `[B, 4 + nc + 32, anchors]`, boxes cx, cy, w, h; thresholded and NMS'd exactly as the
  detection head, the coefficients riding along as `RawDetections.extra`;
- `end2end` (YOLO26 `end2end=True`): `[B, K, 6 + 32]`, rows x1, y1, x2, y2, score, class, coefficients: the
  graph's top-K kept as they are, the score threshold applied, no NMS.

The detector assembles masks only for the boxes that survive NMS and `max_detections`
(`model_store.core.masks.detection_masks`, with the coefficients in `extra` and this head's `prototypes`), from
prototypes at stride 4 whatever the input size (a rect letterbox's inputs vary per image).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_store.core.heads.base import DecodeSpec, Dim, Head, Raw, RawDetections, fixed
from model_store.core.heads.end2end import topk_rows
from model_store.core.heads.yolov8 import class_score_candidates

MASK_COEFFICIENTS = 32
PROTO_STRIDE = 4  # Ultralytics' prototypes are at 1/4 of the model input, P3 upsampled twice
PROTOS = f"[N, {MASK_COEFFICIENTS}, H/4, W/4]"


def split_outputs(raw: Raw) -> tuple[np.ndarray, np.ndarray]:
    """(head, protos) of one image's outputs, whichever order the graph lists them in."""
    if not isinstance(raw, tuple | list) or len(raw) != 2:
        got = type(raw).__name__ if not isinstance(raw, np.ndarray) else f"one output {list(raw.shape)}"
        raise ValueError(f"a segmentation model has two outputs (detections, prototypes [32, H/4, W/4]); got {got}")
    a, b = (np.asarray(x) for x in raw)
    head, protos = (a, b) if a.ndim == 2 else (b, a)
    if protos.ndim != 3 or protos.shape[0] != MASK_COEFFICIENTS or head.ndim != 2:
        raise ValueError(f"a segmentation model's outputs are detections [rows, anchors] and prototypes "
                         f"[{MASK_COEFFICIENTS}, H/4, W/4]; got {list(a.shape)} and {list(b.shape)}")
    return np.asarray(head, np.float32), protos


class SegmentHead(Head):
    """What both segmentation forms share: two outputs, the prototypes and their checks."""

    task = "segment"
    outputs = 2

    def protos_fit(self, shapes: Sequence[Sequence[Dim]]) -> bool:
        return len(shapes) >= 2 and len(shapes[1]) == 4 and fixed(shapes[1][1], MASK_COEFFICIENTS)

    def check(self, shapes: Sequence[Sequence[Dim]], input_wh: tuple[int, int] | None) -> str | None:
        protos = shapes[1]
        if input_wh and all(isinstance(d, int) for d in protos[2:]) and \
                (protos[3] * PROTO_STRIDE, protos[2] * PROTO_STRIDE) != tuple(input_wh):
            return (f"the prototypes {list(protos)} are not at 1/4 of the input {input_wh[0]}x{input_wh[1]}; "
                    "trapline assembles masks as Ultralytics does, from prototypes at stride 4")
        return None

    def prototypes(self, raw: Raw) -> np.ndarray:
        return split_outputs(raw)[1]


class SegmentNmsHead(SegmentHead):
    name = "yolov8"
    summary = (f"[B, 4+nc+32, anchors] + prototypes {PROTOS}: Ultralytics -seg (YOLOv8 / YOLO11 / YOLO26), "
               "NMS by trapline")

    def fits(self, shapes: Sequence[Sequence[Dim]], num_classes: int) -> bool:
        return len(shapes[0]) == 3 and shapes[0][1] == 4 + num_classes + MASK_COEFFICIENTS and self.protos_fit(shapes)

    def shape(self, num_classes: int) -> str:
        return f"[N, {4 + num_classes + MASK_COEFFICIENTS}, anchors] + {PROTOS}"

    def decode(self, raw: Raw, spec: DecodeSpec) -> RawDetections:
        head, _ = split_outputs(raw)
        return class_score_candidates(head, spec.num_classes, spec.score_threshold, MASK_COEFFICIENTS,
                                      "yolov8 segmentation")


class SegmentEnd2EndHead(SegmentHead):
    name = "end2end"
    summary = f"[B, K, 6+32] x1,y1,x2,y2,score,class,coefficients + prototypes {PROTOS}: YOLO26-seg end2end"
    nms = False

    def fits(self, shapes: Sequence[Sequence[Dim]], num_classes: int) -> bool:
        return len(shapes[0]) == 3 and fixed(shapes[0][2], 6 + MASK_COEFFICIENTS) and self.protos_fit(shapes)

    def shape(self, num_classes: int) -> str:
        return f"[N, K, {6 + MASK_COEFFICIENTS}] + {PROTOS}"

    def decode(self, raw: Raw, spec: DecodeSpec) -> RawDetections:
        head, _ = split_outputs(raw)
        rows, class_ids = topk_rows(head, spec.num_classes, spec.score_threshold, "end2end segmentation",
                                    MASK_COEFFICIENTS)
        return RawDetections(np.ascontiguousarray(rows[:, :4]), rows[:, 4].astype(np.float32), class_ids,
                             np.ascontiguousarray(rows[:, 6:]))


NMS_HEAD = SegmentNmsHead()
END2END_HEAD = SegmentEnd2EndHead()
