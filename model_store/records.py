"""The detection record: the one output shape shared by the library, the service and batch jobs."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModelInfo(BaseModel):
    """Which model version produced a result."""

    name: str
    version: str
    sha256: str


class Detection(BaseModel):
    """One box. `bbox` is normalised [x, y, width, height] from the top-left (MegaDetector / Camtrap DP)."""

    label: str
    class_id: int
    score: float
    bbox: tuple[float, float, float, float]
    box_px: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in original image pixels")
    flags: list[str] = Field(default_factory=list, description="post-processing filters that fired")


class FiltersApplied(BaseModel):
    """The post-processing filters that ran, in order, with their full configs and a stable hash."""

    names: list[str]
    hash: str
    configs: list[dict]


class ImageDetections(BaseModel):
    """All detections of one image by one model version.

    `detections` are the kept boxes; `dropped` are raw detections that a filter with
    action "drop" removed, kept here so callers and tables can re-filter without the model.
    """

    model: ModelInfo
    width: int
    height: int
    detections: list[Detection]
    dropped: list[Detection] = Field(default_factory=list)
    filters: FiltersApplied
    timing_ms: dict[str, float] = Field(default_factory=dict)
