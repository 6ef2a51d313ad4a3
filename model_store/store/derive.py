"""A config.json derived from what an ONNX export says about itself, with the user's config on top.

Each producer's defaults are what its own predictor does with the same file, so a model published
with no config detects what the library it came from detects:
- Ultralytics (YOLOv8, YOLO11, ...): conf 0.25, IoU 0.7, 300 boxes; a graph with dynamic spatial dims
  is letterboxed `rect` (the predictor's `auto=True` for dynamic exports), a static one `square`.
- YOLOv5 `export.py`: conf 0.25, IoU 0.45, 1000 boxes, `square` (detect.py's `auto=False` off PyTorch).

The output layout comes from the metadata where the producer writes it (Ultralytics: `task`, `end2end`,
`head`, `args.nms`), else from the output shapes when exactly one layout fits them. An Ultralytics `-seg`
export (metadata `task: segment`) gets `task: segment` and the layout of its detection form: `yolov8`
(`[B, 4 + nc + 32, anchors]` + prototypes) or `end2end` (`[B, K, 38]` + prototypes).
Presets name the configuration a well-known model family is run with (MegaDetector v5).
"""

from __future__ import annotations

import copy
from typing import Any

from model_store.core.config import ConfigError
from model_store.core.graph import GraphFacts, labels_from_names
from model_store.core.heads import LAYOUTS, TASKS, fitting, layouts_table, shapes_str

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
    layout = ultralytics_layout(metadata) if graph.producer == "ultralytics" else None
    if graph.producer == "ultralytics" and str(metadata.get("task", "detect")) == "segment":
        cfg["task"] = "segment"  # Ultralytics' `-seg` exports: masks from the second output
    if graph.producer == "yolov5":
        layout = "yolov5"
    if layout:
        cfg["output_layout"] = layout
    if layout == "rtdetr":
        preprocess["letterbox"] = "stretch"  # RTDETRPredictor's scale_fill: the image is resized to imgsz, not padded
    if graph.input.dtype in ("float16", "uint8"):
        preprocess["input_dtype"] = graph.input.dtype
    cfg["preprocess"] = preprocess
    description = metadata.get("description")
    if isinstance(description, str) and description:
        cfg["description"] = description
    return cfg


# Ultralytics metadata -> layout: (task, NMS inside the graph) -> output_layout. A task this table lacks is
# refused by name (pose, obb, classify are not detectors trapline decodes).
ULTRALYTICS_LAYOUTS: dict[tuple[str, bool], str] = {
    ("detect", False): "yolov8",
    ("detect", True): "end2end",
    ("segment", False): "yolov8",  # with task segment: [B, 4 + nc + 32, anchors] + prototypes
    ("segment", True): "end2end",  # YOLO26-seg end2end / -seg nms=True: [B, K, 38] + prototypes
}


def ultralytics_layout(metadata: dict[str, Any]) -> str:
    """The output layout an Ultralytics export's metadata names: RT-DETR by its head, end-to-end graphs by
    `end2end` (YOLO26 / YOLOv10 one-to-one heads) or `args.nms` (NMS exported into the graph)."""
    if str(metadata.get("head", "")) == "RTDETRDecoder":
        return "rtdetr"
    task = str(metadata.get("task", "detect"))
    args = metadata.get("args") if isinstance(metadata.get("args"), dict) else {}
    in_graph = bool(metadata.get("end2end")) or bool(args.get("nms"))
    try:
        return ULTRALYTICS_LAYOUTS[(task, in_graph)]
    except KeyError:
        known = sorted({t for t, _ in ULTRALYTICS_LAYOUTS})
        raise ConfigError(f"this Ultralytics export is a {task!r} model{' with NMS in the graph' if in_graph else ''};"
                          f" trapline decodes the tasks {', '.join(known)}") from None


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
        keys = ['"labels"']
        if "output_layout" not in cfg:
            keys.append(f'"output_layout" (one of {", ".join(LAYOUTS)})')
        if "input_size" not in cfg:
            keys.append('"input_size"')
        raise ConfigError(f"the ONNX file has no class names (metadata keys: {sorted(graph.metadata) or 'none'}); "
                          f"pass --config with {', '.join(keys)}, and \"preprocess\" unless it takes a centred "
                          "114-grey letterbox at 1/255 in RGB")
    shapes = graph.output_shapes()
    task = str(cfg.get("task", "detect"))
    if "output_layout" not in cfg and isinstance(cfg["labels"], list):
        layouts = fitting(shapes, len(cfg["labels"]), task) if task in TASKS else []
        if len(layouts) == 1:
            cfg = {**cfg, "output_layout": layouts[0]}
        elif layouts:
            raise ConfigError(f"the graph's output {shapes_str(shapes)} fits the layouts {', '.join(layouts)} for "
                              f"{len(cfg['labels'])} labels and it has no producer metadata to choose; pass --config "
                              "with \"output_layout\" (and \"preprocess\" if it is not a centred 114-grey letterbox)")
    if "output_layout" not in cfg and task in TASKS:
        nc = len(cfg["labels"])
        other = "detect" if task == "segment" else "segment"
        if fitting(shapes, nc, other):
            raise ConfigError(f"the graph's output {shapes_str(shapes)} fits no {task} layout for {nc} labels but is "
                              f"a {'segmentation' if other == 'segment' else 'detection'} head; pass --config with "
                              f"\"task\": \"{other}\"")
        what = "layout" if task == "detect" else "segmentation layout"
        raise ConfigError(f"the graph's output {shapes_str(shapes)} fits no {what} for {nc} labels "
                          f"({layouts_table(nc, task)}); pass --config with \"output_layout\" and \"labels\"")
    if "input_size" not in cfg:
        raise ConfigError(f"the graph's input {graph.input.describe()} has dynamic spatial dims and no imgsz metadata; "
                          "pass --config with \"input_size\"")
    return cfg
