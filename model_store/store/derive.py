"""A config.json derived from what an ONNX export says about itself, with the user's config on top.

Each producer's defaults are what its own predictor does with the same file, so a model published
with no config detects what the library it came from detects:
- Ultralytics (YOLOv8, YOLO11, ...): conf 0.25, IoU 0.7, 300 boxes; a graph with dynamic spatial dims
  is letterboxed `rect` (the predictor's `auto=True` for dynamic exports), a static one `square`.
- YOLOv5 `export.py`: conf 0.25, IoU 0.45, 1000 boxes, `square` (detect.py's `auto=False` off PyTorch).
- An Ultralytics `-seg` export (metadata `task: segment`) gets `task: segment`; its layout is read from the
  first output: `[B, 4 + nc + 32, anchors]` (yolov8) or `[B, K, 38]` (end2end).
Presets name the configuration a well-known model family is run with (MegaDetector v5).
"""

from __future__ import annotations

import copy
from typing import Any

from model_store.core.config import ConfigError
from model_store.core.graph import GraphFacts, labels_from_names, output_layouts, segment_layouts

PRODUCER_DEFAULTS: dict[str, dict[str, Any]] = {
    "ultralytics": {"score_threshold": 0.25, "nms_iou": 0.7, "max_detections": 300},
    "yolov5": {"score_threshold": 0.25, "nms_iou": 0.45, "max_detections": 1000},
    "unknown": {"score_threshold": 0.25, "nms_iou": 0.45, "max_detections": 300},
}

# MegaDetector v5 (a YOLOv5x6 at 1280 px): its own runner letterboxes with stride 64 and auto=True,
# and batch runs keep everything above 0.005 so users pick their threshold afterwards.
PRESETS: dict[str, dict[str, Any]] = {
    "megadetector-v5": {
        "labels": ["animal", "person", "vehicle"], "input_size": 1280, "stride": 64, "output_layout": "yolov5",
        "score_threshold": 0.005, "nms_iou": 0.45, "max_detections": 300,
        # what MegaDetector itself records for v5 (run_detector.known_models): previews and exports default to them
        "typical_detection_threshold": 0.2, "conservative_detection_threshold": 0.05,
        "preprocess": {"letterbox": "rect"},
        "description": "MegaDetector v5 configuration: 1280 px, stride 64, rect letterbox, threshold 0.005",
    },
}


def derive_config(graph: GraphFacts, metadata: dict[str, Any], weights_file: str) -> dict[str, Any]:
    """The config the graph and its producer's metadata imply (labels may be missing: then the user must give them)."""
    cfg: dict[str, Any] = {"backend": "onnx-yolo", "weights": {"file": weights_file}}
    cfg.update(PRODUCER_DEFAULTS[graph.producer])
    labels = labels_from_names(metadata.get("names"))
    if labels:
        cfg["labels"] = labels
    size = _input_size(graph, metadata)
    if size:
        cfg["input_size"] = list(size)
    stride = metadata.get("stride")
    if isinstance(stride, int) and stride > 0:
        cfg["stride"] = stride
    rect = graph.producer == "ultralytics" and graph.static_hw is None
    preprocess: dict[str, Any] = {"letterbox": "rect" if rect else "square"}
    if graph.input.dtype in ("float16", "uint8"):
        preprocess["input_dtype"] = graph.input.dtype
    cfg["preprocess"] = preprocess
    if str(metadata.get("task", "")).lower() == "segment":
        cfg["task"] = "segment"  # Ultralytics' `-seg` exports: masks from the second output
    description = metadata.get("description")
    if isinstance(description, str) and description:
        cfg["description"] = description
    return cfg


def _input_size(graph: GraphFacts, metadata: dict[str, Any]) -> tuple[int, int] | None:
    if graph.static_hw:
        return graph.static_hw
    imgsz = metadata.get("imgsz")  # Ultralytics writes [height, width]
    if isinstance(imgsz, list | tuple) and len(imgsz) == 2 and all(isinstance(v, int) for v in imgsz):
        return imgsz[1], imgsz[0]
    if isinstance(imgsz, int):
        return imgsz, imgsz
    if graph.producer == "yolov5":
        return 640, 640  # YOLOv5 writes no imgsz; detect.py's default --imgsz is 640
    return None


def merge_config(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`; nested objects (preprocess, weights) merge key by key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def preset(name: str) -> dict[str, Any]:
    """A named preset's config fragment."""
    try:
        return copy.deepcopy(PRESETS[name])
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None


def complete_config(cfg: dict[str, Any], graph: GraphFacts) -> dict[str, Any]:
    """Fill in the output layout from the labels and the output shape; say what the user must add when the
    graph could not supply a required field."""
    if "labels" not in cfg:
        raise ConfigError(f"the ONNX file has no class names (metadata keys: {sorted(graph.metadata) or 'none'}); "
                          "pass --config with \"labels\" (and anything else to override)")
    if "output_layout" not in cfg and isinstance(cfg["labels"], list) and cfg.get("task") == "segment":
        layouts = segment_layouts(graph.outputs[0].shape, len(cfg["labels"]))
        if len(layouts) == 1:
            cfg = {**cfg, "output_layout": layouts.pop()}
    if "output_layout" not in cfg and isinstance(cfg["labels"], list):
        layouts = output_layouts(graph.outputs[0].shape, len(cfg["labels"]))
        if len(layouts) != 1 and graph.producer != "unknown":
            # Ambiguous (6 anchors for 2 classes) or fitting neither (a wrong label count, which the config
            # check then reports with both numbers): the producer has one layout.
            layouts = {"ultralytics": {"yolov8"}, "yolov5": {"yolov5"}}[graph.producer]
        if len(layouts) == 1:
            cfg = {**cfg, "output_layout": layouts.pop()}
    if "output_layout" not in cfg:
        raise ConfigError(f"cannot tell the output layout of {graph.outputs[0].describe()} for "
                          f"{len(cfg['labels'])} labels; pass --config with \"output_layout\" (yolov8 or yolov5)")
    if "input_size" not in cfg:
        raise ConfigError(f"the graph's input {graph.input.describe()} has dynamic spatial dims and no imgsz metadata; "
                          "pass --config with \"input_size\"")
    return cfg
