"""`config.json` of a model version, validated by pydantic."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .filters import FilterConfigError, FilterSet
from .refs import SAFE_SEGMENT

BACKENDS = ("onnx-yolo", "torch-export-yolo")


class ConfigError(ValueError):
    """config.json is missing, not JSON, or fails validation; the message names field and value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PreprocessConfig(_Strict):
    """How an RGB image becomes the model's input tensor."""

    letterbox: bool = Field(True, description="keep aspect ratio and pad (Ultralytics); false stretches")
    color_order: Literal["rgb", "bgr"] = "rgb"
    pad_value: int = Field(114, ge=0, le=255)
    scale: float = Field(1 / 255, gt=0, description="multiplier applied to uint8 pixels")
    reduced_decode: bool = Field(
        True, description="decode large JPEGs at 1/2, 1/4 or 1/8 scale when still larger than the model input")
    input_dtype: Literal["float32", "float16", "uint8"] = Field(
        "float32", description="uint8 means the model normalises inside the graph (cheaper transfer)"
    )


class WeightsConfig(_Strict):
    file: str = Field(..., description="weights file name inside the version directory")
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="hex sha256 of the weights file")

    @field_validator("file")
    @classmethod
    def _safe_file(cls, value: str) -> str:
        if not SAFE_SEGMENT.match(value) or ".." in value:
            raise ValueError(f"weights.file must be a plain file name, got {value!r}")
        return value


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
    preprocess: PreprocessConfig = PreprocessConfig()
    filters: list[dict[str, Any]] = Field(default_factory=list, description="default post-processing filters")
    description: str = ""

    @field_validator("input_size", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        return (value, value) if isinstance(value, int) else value

    @field_validator("input_size")
    @classmethod
    def _size_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not all(16 <= v <= 4096 for v in value):
            raise ValueError(f"input_size must be within 16..4096 pixels, got {value!r}")
        return value

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels) or any(not label for label in labels):
            raise ValueError(f"labels must be non-empty and unique, got {labels!r}")
        return labels

    @model_validator(mode="after")
    def _filters_valid(self) -> ModelConfig:
        try:
            FilterSet.from_specs(self.filters).check_labels(self.labels)
        except FilterConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def default_filters(self) -> FilterSet:
        """The model's default post-processing filters."""
        return FilterSet.from_specs(self.filters)

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: `field: message (got value)`."""
    lines = [
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']} (got {err.get('input')!r})"
        for err in exc.errors()
    ]
    return f"invalid model config {source}: " + "; ".join(lines)


def parse_config(data: bytes | str | dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Parse and validate a config from JSON text or a dict."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a JSON object, got {type(data).__name__}")
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
