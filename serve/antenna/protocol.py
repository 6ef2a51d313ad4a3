"""Antenna's processing-service schemas, as pydantic models (Antenna's `ami/ml/schemas.py` at the harness's commit).

Requests accept unknown keys (Antenna passes the project's pipeline `config` through verbatim and may add fields);
what trapline answers is exactly Antenna's shape, so Antenna's own pydantic models parse it.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DETECTION_TASK_TYPES = ("detection", "localization", "segmentation")
CLASSIFICATION_TASK_TYPES = ("classification", "tagging")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- /info ----------------------------------------------------------------------------------------------------------
class CategoryMap(_Answer):
    labels: list[str]
    data: list[dict[str, Any]] = Field(description='[{"index", "label", "taxon_rank"?}] in label order')
    version: str | None = None
    description: str | None = None
    uri: str | None = None


class AlgorithmConfig(_Answer):
    name: str
    key: str = Field(description="with the version: Antenna keys a pipeline's algorithms by key alone")
    task_type: Literal["detection", "localization", "segmentation", "classification", "tagging"]
    version: int
    version_name: str | None = None
    description: str | None = None
    uri: str | None = None
    category_map: CategoryMap | None = None


class PipelineStage(_Answer):
    """A stage of a pipeline, "mainly for display" in Antenna (its `PipelineStage`: params name configurable keys and
    carry no values, so what a stage runs with is said in its description)."""

    key: str
    name: str
    params: list[dict[str, Any]] = Field(default_factory=list)
    description: str | None = None


class PipelineConfig(_Answer):
    name: str
    slug: str
    version: int
    description: str | None = None
    algorithms: list[AlgorithmConfig]
    stages: list[PipelineStage] = Field(default_factory=list)


class ServiceInfo(_Answer):
    name: str
    description: str | None = None
    pipelines: list[PipelineConfig]


class ReadyAnswer(_Answer):
    status: list[str] = Field(description="the slugs of the pipelines whose models serve now")


class LiveAnswer(_Answer):
    status: bool = True


# -- /process -------------------------------------------------------------------------------------------------------
class SourceImageRequest(_Open):
    id: str
    url: str


class PipelineRequest(_Open):
    pipeline: str
    source_images: list[SourceImageRequest]
    detections: list[dict[str, Any]] | None = None
    config: dict[str, Any] | None = None


class AlgorithmReference(_Answer):
    name: str
    key: str


class BoundingBox(_Answer):
    x1: float
    y1: float
    x2: float
    y2: float


class ClassificationResponse(_Answer):
    classification: str
    labels: list[str] | None = None
    scores: list[float] = Field(min_length=1)
    logits: list[float] | None = None
    inference_time: float | None = None
    algorithm: AlgorithmReference
    terminal: bool = True
    timestamp: datetime.datetime


class DetectionResponse(_Answer):
    source_image_id: str
    bbox: BoundingBox | None
    inference_time: float | None = None
    algorithm: AlgorithmReference
    timestamp: datetime.datetime
    crop_image_url: str | None = None
    classifications: list[ClassificationResponse] = Field(default_factory=list)


class SourceImageResponse(_Answer):
    id: str
    url: str


class PipelineResults(_Answer):
    pipeline: str
    total_time: float
    source_images: list[SourceImageResponse]
    detections: list[DetectionResponse]
    errors: list[str] | None = None


# -- pull mode (Antenna's task API) ---------------------------------------------------------------------------------
class Task(_Open):
    id: str | int
    image_id: str | int
    image_url: str
    reply_subject: str


class TaskError(_Answer):
    """A task's result when its image could not be fetched or decoded: Antenna counts it failed, never lost."""

    error: str
    image_id: str


class TaskResult(_Answer):
    reply_subject: str
    result: PipelineResults | TaskError
