"""`yolox`: [B, anchors, 5 + nc] after YOLOX's in-graph decode - cx, cy, w, h in input pixels, objectness,
per-class scores (the YOLOX package's ONNX export with `decode_in_inference`, MegadetectorLite).

The numbers are YOLOv5's layout and YOLOX's `postprocess` scores them the same way (objectness x best
class, kept when >= the threshold, class-aware NMS); it is its own layout because the family differs
everywhere else: no `max_det` (every box NMS keeps), and a preprocessing that pads at the top-left,
often in black with bicubic resizing, and feeds raw 0-255 pixels (see `preprocess` in the config)."""

from __future__ import annotations

from collections.abc import Sequence

from model_store.core.heads.base import DecodeSpec, Dim, Head, Raw, RawDetections, one_output
from model_store.core.heads.yolov5 import objectness_candidates


class YoloxHead(Head):
    name = "yolox"
    summary = "[B, anchors, 5+nc] after YOLOX's in-graph decode (objectness x class), NMS by trapline"

    def fits(self, shapes: Sequence[Sequence[Dim]], num_classes: int) -> bool:
        return len(shapes[0]) == 3 and shapes[0][2] == 5 + num_classes

    def shape(self, num_classes: int) -> str:
        return f"[N, anchors, {5 + num_classes}]"

    def decode(self, raw: Raw, spec: DecodeSpec) -> RawDetections:
        return objectness_candidates(one_output(raw), spec.num_classes, spec.score_threshold, self.name)


HEAD = YoloxHead()
