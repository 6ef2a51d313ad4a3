"""`config.json` of a classifier version (backend `onnx-classifier`), validated by pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from model_store.core.backend_specs import CLASSIFIER_BACKENDS
from model_store.core.config.common import (
    ConfigError,
    Strict,
    VersionConfig,
    format_validation_error,
)
from model_store.core.graph import GraphFacts, inspect_onnx
from model_store.core.species.files import SpeciesFiles


class ClassifierPreprocess(Strict):
    """How a detection's box becomes the classifier's input tensor (what it was trained with)."""

    crop_padding: float = Field(0.0, ge=0.0, le=2.0, description="box grown by this fraction of its size per side")
    crop_square: bool = Field(False, description="grow the shorter side of the box to make a square crop")
    resize: Literal["shorter_side", "stretch"] = Field(
        "shorter_side", description="shorter_side: keep aspect, scale the shorter side to input / crop_pct, then "
                                    "center-crop input_size (timm / torchvision eval); stretch: resize to input_size")
    crop_pct: float = Field(1.0, gt=0.0, le=1.0, description="center-crop fraction after a shorter_side resize")
    interpolation: Literal["linear", "area", "nearest", "cubic"] = "linear"
    color_order: Literal["rgb", "bgr"] = "rgb"
    scale: float = Field(1 / 255, gt=0, description="multiplier applied to uint8 pixels before mean / std")
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @field_validator("std")
    @classmethod
    def _positive(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v <= 0 for v in value):
            raise ValueError(f"std must be > 0 in every channel, got {value!r}")
        return value


class ClassifierConfig(VersionConfig):
    """config.json of a classifier version."""

    backend: Literal[CLASSIFIER_BACKENDS]
    output: Literal["logits", "probabilities"] = Field(
        "logits", description="logits get a softmax; probabilities are used as they are")
    top_k: int = Field(5, ge=1, le=100, description="labels reported per detection")
    applies_to: list[str] = Field(default_factory=list, description=(
        "detector labels whose detections this classifier is for (e.g. ['animal']); empty: every kept detection. "
        "A pipeline's routing overrides it"))
    taxonomy: dict[str, list[str]] = Field(default_factory=dict, description=(
        "label -> taxonomy path from the root down to the label's own taxon (its last entry, e.g. the "
        "scientific name); rank_rollup and Camtrap DP scientificName use it"))
    taxonomy_ranks: list[str] = Field(default_factory=list, description="names of the path levels, root first")
    preprocess: ClassifierPreprocess = ClassifierPreprocess()
    species: SpeciesFiles | None = Field(None, description="taxonomy and geofence files for the species ensemble")
    description: str = ""
    graph: GraphFacts | None = Field(None, description="the ONNX graph's inspected facts (filled in by publish)")

    @model_validator(mode="after")
    def _taxonomy(self) -> ClassifierConfig:
        unknown = sorted(set(self.taxonomy) - set(self.labels))
        if unknown:
            raise ValueError(f"taxonomy names labels the classifier does not have: {unknown!r}")
        for label, path in self.taxonomy.items():
            if not path or any(not isinstance(p, str) or not p for p in path):
                raise ValueError(f"taxonomy[{label!r}] must be a non-empty list of names, got {path!r}")
            if self.taxonomy_ranks and len(path) > len(self.taxonomy_ranks):
                raise ValueError(f"taxonomy[{label!r}] has {len(path)} levels but taxonomy_ranks names "
                                 f"{len(self.taxonomy_ranks)}: {self.taxonomy_ranks!r}")
        problem = classifier_graph_contradiction(self)
        if problem:
            raise ValueError(problem)
        return self

    def scientific_name(self, label: str) -> str:
        """The taxon name of a label (its taxonomy path's last entry), else the label itself."""
        path = self.taxonomy.get(label)
        return path[-1] if path else label


def classifier_graph_contradiction(cfg: ClassifierConfig) -> str | None:
    """One line naming both values when the config and the inspected graph disagree, else None."""
    g = cfg.graph
    if g is None:
        return None
    if len(g.input.shape) != 4 or (isinstance(g.input.shape[1], int) and g.input.shape[1] != 3):
        return f"the graph's input {g.input.describe()} is not an RGB image batch [N, 3, H, W]"
    if g.static_hw and g.static_hw != tuple(cfg.input_size):
        w, h = cfg.input_size
        return f"input_size is {w}x{h} but the graph's input {g.input.describe()} is fixed at " \
               f"{g.static_hw[0]}x{g.static_hw[1]}"
    out = g.outputs[0]
    if len(out.shape) != 2 or (isinstance(out.shape[1], int) and out.shape[1] != cfg.num_classes):
        return (f"{cfg.num_classes} labels mean an output of [N, {cfg.num_classes}], but the graph's output is "
                f"{out.describe()}")
    return None


def complete_classifier_config(weights: Path, given: dict[str, Any]) -> dict[str, Any]:
    """A classifier config with the graph's facts added (read from the ONNX file), so publish checks them."""
    graph, _ = inspect_onnx(weights)
    out = dict(given)
    if "input_size" not in out and graph.static_hw:
        out["input_size"] = list(graph.static_hw)
    out["graph"] = graph.model_dump(mode="json")
    return out


def parse_classifier_config(data: dict[str, Any], source: str) -> ClassifierConfig:
    try:
        return ClassifierConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, what="classifier config")) from None
