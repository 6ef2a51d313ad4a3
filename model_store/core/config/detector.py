"""`config.json` of a detector version, validated by pydantic."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from model_store.core.backends import CLASSIFIER_BACKENDS, DETECTOR_BACKENDS
from model_store.core.config.common import (
    ConfigError,
    Strict,
    VersionConfig,
    format_validation_error,
    json_object,
)
from model_store.core.filters import FilterConfigError, FilterSet
from model_store.core.graph import GraphFacts, output_layouts, segment_contradiction, segment_layouts


class PreprocessConfig(Strict):
    """How an RGB image becomes the model's input tensor."""

    letterbox: Literal["square", "rect", "stretch"] = Field(
        "square", description="square: keep aspect and pad to input_size (Ultralytics/YOLOv5 auto=False); rect: "
                              "pad only to a multiple of `stride` (auto=True; needs dynamic spatial dims); "
                              "stretch: resize to input_size ignoring aspect")
    interpolation: Literal["linear", "area", "nearest", "cubic"] = Field(
        "linear", description="resize filter; linear is what Ultralytics and YOLOv5 use")
    color_order: Literal["rgb", "bgr"] = "rgb"
    pad_value: int = Field(114, ge=0, le=255)
    scale: float = Field(1 / 255, gt=0, description="multiplier applied to uint8 pixels")
    reduced_decode: bool = Field(
        False, description="opt-in speed-up: decode large JPEGs at 1/2, 1/4 or 1/8 scale when still larger than "
                           "the model input (moves scores; see BENCHMARKS.md, section 6, for the measured deviation)")
    input_dtype: Literal["float32", "float16", "uint8"] = Field(
        "float32", description="uint8 means the model normalises inside the graph (cheaper transfer)"
    )

    @field_validator("letterbox", mode="before")
    @classmethod
    def _legacy_bool(cls, value: Any) -> Any:
        # Configs published before `rect` existed say true (square) or false (stretch).
        return {True: "square", False: "stretch"}.get(value, value) if isinstance(value, bool) else value


class ModelConfig(VersionConfig):
    """Everything needed to run one model version; the backend is chosen here, never by extension."""

    backend: Literal[DETECTOR_BACKENDS]
    output_layout: Literal["yolov8", "yolov5", "end2end"] = Field(
        ..., description="yolov8: [B, 4+nc, N]; yolov5 / MegaDetector v5: [B, N, 5+nc] with objectness; "
                         "end2end: [B, K, 6] x1, y1, x2, y2, score, class (no NMS)"
    )
    task: Literal["detect", "segment"] = Field(
        "detect", description="segment: the head also gives 32 mask coefficients per box (after the class "
                              "scores, or after score and class for end2end) and a second output of prototypes "
                              "[B, 32, H/4, W/4]; every detection then carries its mask")
    score_threshold: float = Field(0.25, ge=0.0, le=1.0)
    nms_iou: float = Field(0.45, gt=0.0, le=1.0)
    class_agnostic_nms: bool = False
    max_detections: int = Field(300, ge=1, le=10_000)
    stride: int = Field(32, ge=1, le=256, description="the model's largest stride; rect letterbox pads to it")
    preprocess: PreprocessConfig = PreprocessConfig()
    filters: list[dict[str, Any]] = Field(default_factory=list, description="default post-processing filters")
    typical_detection_threshold: float | None = Field(None, ge=0.0, le=1.0, description=(
        "the score most users keep (MegaDetector's detector_metadata; previews default to it); "
        "exports fall back to score_threshold"))
    conservative_detection_threshold: float | None = Field(None, ge=0.0, le=1.0, description=(
        "a lower score, for when a missed animal costs more than a false box"))
    description: str = ""
    graph: GraphFacts | None = Field(None, description="the ONNX graph's inspected facts (filled in by publish)")

    @model_validator(mode="after")
    def _filters_valid(self) -> ModelConfig:
        try:
            filters = FilterSet.from_specs(self.filters)
            filters.require_per_image()
            filters.check_labels(self.labels)
        except FilterConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> ModelConfig:
        typical, conservative = self.typical_detection_threshold, self.conservative_detection_threshold
        if typical is not None and conservative is not None and conservative > typical:
            raise ValueError(f"conservative_detection_threshold {conservative} is above "
                             f"typical_detection_threshold {typical}")
        return self

    @model_validator(mode="after")
    def _agrees_with_graph(self) -> ModelConfig:
        problem = graph_contradiction(self)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def output_count(self) -> int:
        """How many graph outputs the decoder reads (a segmentation head's prototypes are the second)."""
        return 2 if self.task == "segment" else 1

    def default_filters(self) -> FilterSet:
        """The model's default post-processing filters."""
        return FilterSet.from_specs(self.filters)


def graph_contradiction(cfg: ModelConfig) -> str | None:
    """One line naming both values when the config and the inspected graph disagree, else None."""
    g = cfg.graph
    if g is None:
        return None
    w, h = cfg.input_size
    if len(g.input.shape) != 4:
        return f"the graph's input {g.input.describe()} is not an image batch [N, 3, H, W]"
    if isinstance(g.input.shape[1], int) and g.input.shape[1] != 3:
        return f"the graph's input {g.input.describe()} has {g.input.shape[1]} channels; trapline feeds 3 (RGB/BGR)"
    if g.static_hw and g.static_hw != (w, h):
        return (f"input_size is {w}x{h} but the graph's input {g.input.describe()} is fixed at "
                f"{g.static_hw[0]}x{g.static_hw[1]}")
    if cfg.preprocess.letterbox == "rect" and g.static_hw:
        return (f"preprocess.letterbox is 'rect' but the graph's input {g.input.describe()} has fixed spatial dims; "
                "use 'square' or export with dynamic=True")
    if g.input.dtype in ("float32", "float16", "uint8") and g.input.dtype != cfg.preprocess.input_dtype:
        return (f"preprocess.input_dtype is {cfg.preprocess.input_dtype} but the graph's input "
                f"{g.input.describe()} takes {g.input.dtype}")
    out = g.outputs[0]
    nc = cfg.num_classes
    if cfg.task == "segment":
        return segment_contradiction(g, cfg.output_layout, nc)
    fits = output_layouts(out.shape, nc)
    if cfg.output_layout in fits or not all(isinstance(d, int) for d in out.shape[1:]):
        return None
    want = f"[N, {4 + nc}, anchors]" if cfg.output_layout == "yolov8" else f"[N, anchors, {5 + nc}]"
    if fits:
        return (f"output_layout is {cfg.output_layout} (output {want}) but the graph's output {out.describe()} is "
                f"the {fits.pop()} layout for {nc} labels")
    hint = ""
    if len(g.outputs) > 1 and segment_layouts(out.shape, nc):
        hint = (f"; with its second output {g.outputs[1].describe()} it is a segmentation head: "
                "set \"task\": \"segment\"")
    return (f"{nc} labels with output_layout {cfg.output_layout} mean an output of {want}, but the graph's "
            f"output is {out.describe()}{hint}")


def parse_config(data: bytes | str | dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Parse and validate a config from JSON text or a dict (a detector's; see `parse_any_config`)."""
    data = json_object(data, source)
    if data.get("backend") in CLASSIFIER_BACKENDS:
        raise ConfigError(f"{source} is a classifier (backend {data['backend']}), not a detector")
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
