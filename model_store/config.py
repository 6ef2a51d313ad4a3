"""`config.json` of a model version, validated by pydantic."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trapline.errors import TraplineError

from .filters import FilterConfigError, FilterSet
from .graph import GraphFacts, output_layouts
from .refs import SAFE_SEGMENT

BACKENDS = ("onnx-yolo", "torch-export-yolo")


class ConfigError(TraplineError, ValueError):
    """config.json is missing, not JSON, or fails validation; the message names field and value."""

    code = "invalid_config"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PreprocessConfig(_Strict):
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
                           "the model input (moves scores; see BENCHMARKS.md for the measured deviation)")
    input_dtype: Literal["float32", "float16", "uint8"] = Field(
        "float32", description="uint8 means the model normalises inside the graph (cheaper transfer)"
    )

    @field_validator("letterbox", mode="before")
    @classmethod
    def _legacy_bool(cls, value: Any) -> Any:
        # Configs published before `rect` existed say true (square) or false (stretch).
        return {True: "square", False: "stretch"}.get(value, value) if isinstance(value, bool) else value


class WeightsConfig(_Strict):
    file: str = Field(..., description="weights file name inside the version directory")
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="hex sha256 of the weights file")

    @field_validator("file")
    @classmethod
    def _safe_file(cls, value: str) -> str:
        if not SAFE_SEGMENT.match(value) or ".." in value:
            raise ValueError(f"weights.file must be a plain file name, got {value!r}")
        return value


def square_size(cls, value: Any) -> Any:
    """`input_size: 640` means 640x640."""
    return (value, value) if isinstance(value, int) else value


def size_in_range(cls, value: tuple[int, int]) -> tuple[int, int]:
    if not all(16 <= v <= 4096 for v in value):
        raise ValueError(f"input_size must be within 16..4096 pixels, got {value!r}")
    return value


def unique_labels(cls, labels: list[str]) -> list[str]:
    if len(set(labels)) != len(labels) or any(not label for label in labels):
        raise ValueError(f"labels must be non-empty and unique, got {labels!r}")
    return labels


class ModelConfig(_Strict):
    """Everything needed to run one model version; the backend is chosen here, never by extension."""

    schema_version: Literal[1] = 1
    backend: Literal["onnx-yolo", "torch-export-yolo"]
    weights: WeightsConfig
    input_size: tuple[int, int] = Field(..., description="model input (width, height) in pixels")
    labels: list[str] = Field(..., min_length=1)
    output_layout: Literal["yolov8", "yolov5"] = Field(
        ..., description="yolov8: [B, 4+nc, N]; yolov5 / MegaDetector v5: [B, N, 5+nc] with objectness"
    )
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

    _square = field_validator("input_size", mode="before")(square_size)
    _size_range = field_validator("input_size")(size_in_range)
    _unique_labels = field_validator("labels")(unique_labels)

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

    def default_filters(self) -> FilterSet:
        """The model's default post-processing filters."""
        return FilterSet.from_specs(self.filters)

    @property
    def num_classes(self) -> int:
        return len(self.labels)


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
    fits = output_layouts(out.shape, nc)
    if cfg.output_layout in fits or not all(isinstance(d, int) for d in out.shape[1:]):
        return None
    want = f"[N, {4 + nc}, anchors]" if cfg.output_layout == "yolov8" else f"[N, anchors, {5 + nc}]"
    if fits:
        return (f"output_layout is {cfg.output_layout} (output {want}) but the graph's output {out.describe()} is "
                f"the {fits.pop()} layout for {nc} labels")
    return (f"{nc} labels with output_layout {cfg.output_layout} mean an output of {want}, but the graph's "
            f"output is {out.describe()}")


def format_validation_error(exc: ValidationError, source: str, what: str = "model config") -> str:
    """One line per problem: `field: message (got value)`."""
    lines = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        if err["loc"]:  # a field: name it and quote the bad value
            lines.append(f"{'.'.join(str(p) for p in err['loc'])}: {msg} (got {err.get('input')!r})")
        else:  # a cross-field check: its message names both values; the whole config would be noise
            lines.append(msg)
    return f"invalid {what + ' ' if what else ''}{source}: " + "; ".join(lines)


def parse_config(data: bytes | str | dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Parse and validate a config from JSON text or a dict (a detector's; see `parse_any_config`)."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a JSON object, got {type(data).__name__}")
    if data.get("backend") == "onnx-classifier":
        raise ConfigError(f"{source} is a classifier (backend onnx-classifier), not a detector")
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def parse_any_config(data: bytes | str | dict[str, Any], source: str = "config.json"):
    """A detector's `ModelConfig` or a classifier's `ClassifierConfig`, chosen by the `backend` field."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and data.get("backend") == "onnx-classifier":
        from .classifier import parse_classifier_config

        return parse_classifier_config(data, source)
    return parse_config(data, source)
