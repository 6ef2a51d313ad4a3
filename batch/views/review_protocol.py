"""The request and response bodies of the review routes (batch/views/review.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from batch.postprocessing.thresholds_rule import MIN_CAMERA, MIN_LABEL, TARGET
from batch.views.occurrences_protocol import DetectionRef
from batch.views.occurrences_protocol import _Body as DecisionBody


class _ReviewBody(DecisionBody):
    filters_hash: str | None = Field(None, description="the result set (default: the version's newest)")


class _DetectionBody(_ReviewBody, DetectionRef):
    pass


class _ImageBody(_ReviewBody):
    uri: str
    content_id: str


class ConfirmRequest(_DetectionBody):
    """`POST /v1/review/confirm`: this detection's box and label are right."""

    label: str | None = Field(None, min_length=1, max_length=200, description="the label confirmed (default: the "
                                                                              "version's)")


class RejectRequest(_DetectionBody):
    """`POST /v1/review/reject`: this detection is not an animal (or its box is wrong)."""

    reason: Literal["not_animal", "wrong_box"] = "not_animal"


class RelabelRequest(_DetectionBody):
    """`POST /v1/review/relabel`: this detection's box is right and its label is `label`."""

    label: str = Field(..., min_length=1, max_length=200)


class EmptyRequest(_ImageBody):
    """`POST /v1/review/empty`: no animal in this image."""


class AddBoxRequest(_ImageBody):
    """`POST /v1/review/add`: an animal the version missed."""

    bbox: tuple[float, float, float, float] = Field(description="x, y, w, h normalised to the image (0..1)")
    label: str = Field(..., min_length=1, max_length=200)


class ReviewBox(DetectionRef):
    label: str = Field(description="what the version says (its first classifier's label, else the detector's)")
    score: float
    bbox: list[float] = Field(description="x, y, w, h normalised")
    verdict: str | None = Field(description="what people said: the label, `(none)` for not an animal, null: "
                                            "not reviewed")
    decided: str | None = Field(None, description="the action of the decision in force")


class ReviewImage(BaseModel):
    uri: str
    content_id: str
    camera_id: str | None
    capture_time: str | None
    picture: str | None = Field(description="the picture's link, carrying its own grant (null: the tables record "
                                            "no archive the service may serve)")
    empty: bool = Field(description="people marked it empty")
    boxes: list[ReviewBox]
    added: list[dict[str, Any]] = Field(description="boxes people added (the decisions)")


class ReviewPage(BaseModel):
    model: str
    filters_hash: str
    total: int
    limit: int
    offset: int
    images: list[ReviewImage]


class ThresholdsQuery(BaseModel):
    """`GET /v1/models/{name}/{version}/thresholds`: where the reviews are and the rule's settings, as `trapline
    models thresholds` takes them."""

    model_config = ConfigDict(extra="forbid")
    tables: str | None = Field(None, min_length=1, max_length=4096, description=(
        "the tables (default: the recorder's tables of the serve config, else the first tables the pictures views "
        "show: GET /v1/pictures/sources)"))
    filters_hash: str | None = Field(None, min_length=1, max_length=64, description="the result set (default: newest)")
    target_precision: float = Field(TARGET, gt=0.0, le=1.0, description="the precision each threshold must reach")
    min_label_evidence: int = Field(MIN_LABEL, ge=1, description="reviewed detections a label needs for a threshold")
    min_camera_evidence: int = Field(MIN_CAMERA, ge=1, description=(
        "reviewed detections of a label a camera needs for a threshold of its own"))
