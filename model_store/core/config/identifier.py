"""`config.json` of an identifier version (backends `keypoints`, `onnx-embedding`), validated by pydantic.

An identifier tells individuals of the species in `applies_to` apart. `keypoints` has no weights: its
whole model is its parameters here (publish writes only config.json), so its provenance sha256 is the
sha256 of the canonical config. `onnx-embedding` is an ONNX image -> vector model; its input size is read
from the graph where the graph fixes it. Both turn their raw match score into P(same individual) through
`calibration`, so one threshold means the same thing for either backend.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from model_store.core.backend_specs import IDENTIFIER_BACKENDS
from model_store.core.config.classifier import ClassifierPreprocess, complete_classifier_config
from model_store.core.config.common import (
    ConfigError,
    Strict,
    WeightsConfig,
    format_validation_error,
    size_in_range,
    square_size,
    unique_labels,
)
from model_store.core.graph import GraphFacts


class KeypointParams(Strict):
    """Local matching: features on the snip, Lowe's ratio test, RANSAC-verified inliers as the score."""

    features: Literal["sift", "orb"] = "sift"
    max_features: int = Field(300, ge=16, le=5000, description="keypoints kept per snip (strongest first)")
    contrast: float = Field(0.02, gt=0.0, le=0.2, description="SIFT contrast threshold (lower: more keypoints "
                                                                "on faint or blurred coats)")
    snip_size: int = Field(256, ge=32, le=2048, description="the snip's longer side is resized to this first")
    ratio: float = Field(0.8, gt=0.0, lt=1.0, description="Lowe's ratio test: best / second-best distance")
    ransac_px: float = Field(6.0, gt=0.0, le=50.0, description="RANSAC reprojection threshold in pixels")
    min_keypoints: int = Field(12, ge=3, description="fewer keypoints than this: the snip is unidentifiable")
    index_per_snip: int = Field(64, ge=8, le=1000, description="strongest descriptors of each gallery snip that "
                                                                 "the shortlist's nearest-neighbour index holds")
    index_checks: int = Field(16, ge=1, le=1024, description="FLANN kd-tree leaves visited per search "
                                                               "(more: a better shortlist, slower)")


class Calibration(Strict):
    """raw score -> P(same individual). `logistic`: 1 / (1 + exp(-(score - center) / scale)), a default set
    per backend; `isotonic`: a monotone step curve through `points` ([score, p] pairs), fitted from
    people's confirmed and rejected pairs."""

    kind: Literal["logistic", "isotonic"] = "logistic"
    center: float | None = Field(None, description="score at P = 0.5 (default: 10 inliers, or cosine 0.6)")
    scale: float | None = Field(None, gt=0.0, description="score change from P = 0.5 to P = 0.73")
    points: list[tuple[float, float]] = Field(default_factory=list, description="isotonic knots, score ascending")
    fitted_pairs: int = Field(0, ge=0, description="how many labelled pairs the curve was fitted from")

    @model_validator(mode="after")
    def _knots(self) -> Calibration:
        if self.kind == "isotonic":
            xs = [x for x, _ in self.points]
            if len(xs) < 2 or xs != sorted(xs) or any(not 0.0 <= p <= 1.0 for _, p in self.points):
                raise ValueError(f"isotonic calibration needs >= 2 points with ascending scores and p in 0..1, "
                                 f"got {self.points!r}")
        return self


class IdentifierConfig(Strict):
    """config.json of an identifier version."""

    schema_version: Literal[1] = 1
    backend: Literal[IDENTIFIER_BACKENDS]
    applies_to: list[str] = Field(..., min_length=1, description="labels (species) whose detections it identifies")
    weights: WeightsConfig | None = Field(None, description="the ONNX file (onnx-embedding); keypoints has none")
    input_size: tuple[int, int] | None = Field(None, description="embedding input (width, height); from the graph")
    preprocess: ClassifierPreprocess = ClassifierPreprocess(resize="stretch")
    keypoints: KeypointParams = KeypointParams()
    calibration: Calibration = Calibration()
    min_snip_px: int = Field(24, ge=4, le=1024, description="a snip whose shorter side is less is unidentifiable")
    min_contrast: float = Field(4.0, ge=0.0, description="grey-level std below this: a blank snip, unidentifiable")
    shortlist: int = Field(30, ge=1, le=1000, description="candidates verified per query after the shortlist")
    description: str = ""
    graph: GraphFacts | None = Field(None, description="the ONNX graph's inspected facts (filled in by publish)")

    _square = field_validator("input_size", mode="before")(square_size)
    _unique = field_validator("applies_to")(unique_labels)

    @field_validator("input_size")
    @classmethod
    def _size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        return None if value is None else size_in_range(cls, value)

    @model_validator(mode="after")
    def _backend_fields(self) -> IdentifierConfig:
        if self.backend == "keypoints" and self.weights is not None:
            raise ValueError("backend keypoints has no weights: publish its config.json alone")
        if self.backend == "onnx-embedding":
            if self.weights is None:
                raise ValueError("backend onnx-embedding needs weights (an ONNX image -> vector model)")
            if self.input_size is None:
                raise ValueError("backend onnx-embedding needs input_size (the graph does not fix it)")
            g = self.graph
            if g is not None:
                if len(g.input.shape) != 4 or (isinstance(g.input.shape[1], int) and g.input.shape[1] != 3):
                    raise ValueError(f"the graph's input {g.input.describe()} is not an RGB image batch [N, 3, H, W]")
                if g.static_hw and g.static_hw != tuple(self.input_size):
                    raise ValueError(f"input_size is {self.input_size[0]}x{self.input_size[1]} but the graph's "
                                     f"input {g.input.describe()} is fixed at {g.static_hw[0]}x{g.static_hw[1]}")
                if len(g.outputs[0].shape) != 2:
                    raise ValueError(f"an embedding graph's output is [N, D], got {g.outputs[0].describe()}")
        return self

    @property
    def labels(self) -> list[str]:
        return self.applies_to

    @property
    def sha256(self) -> str:
        """Provenance: the weights' sha256, or (keypoints) the sha256 of the canonical config itself."""
        if self.weights is not None:
            return self.weights.sha256
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def complete_identifier_config(weights: Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """An identifier config with the ONNX graph's facts added (input size where the graph fixes it)."""
    if weights is None or given.get("backend") != "onnx-embedding":
        return dict(given)
    # an embedding model is, to its graph, what a classifier is: an image in, one tensor out; the same facts apply
    return complete_classifier_config(weights, given)


def parse_identifier_config(data: dict[str, Any], source: str) -> IdentifierConfig:
    try:
        return IdentifierConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, what="identifier config")) from None
