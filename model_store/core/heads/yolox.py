"""`yolox`: [B, anchors, 5 + nc] after YOLOX's in-graph decode - cx, cy, w, h in input pixels, objectness,
per-class scores (the YOLOX package's ONNX export with `decode_in_inference`, MegadetectorLite).

The numbers are YOLOv5's layout and YOLOX's `postprocess` scores them the same way (objectness x best
class, kept when >= the threshold, class-aware NMS); it is its own layout because the family differs
everywhere else: no `max_det` (every box NMS keeps), and a preprocessing that pads at the top-left,
often in black with bicubic resizing, and feeds raw 0-255 pixels (see `preprocess` in the config)."""

from __future__ import annotations

from model_store.core.heads.yolov5 import Yolov5Head


class YoloxHead(Yolov5Head):
    """YOLOv5's shape and decode under its own name (see the module docstring for why it is a layout of its own)."""

    name = "yolox"
    summary = "[B, anchors, 5+nc] after YOLOX's in-graph decode (objectness x class), NMS by trapline"


HEAD = YoloxHead()
