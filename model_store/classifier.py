"""Classifier models: backend `onnx-classifier`, its typed config, and the loaded `Classifier`.

A classifier says what a detection is: it takes crops (RGB uint8, any size), resizes and
normalises them as it was trained, and returns one probability vector per crop. It lives in
the same store as the detectors (publish / verify / promote / rollback / sha256 before load);
`config.json`'s `backend` tells the two kinds apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator, model_validator

from .classifier_filters import ClassifierAnswer
from .config import ConfigError, WeightsConfig, _Strict, size_in_range, square_size, unique_labels
from .filters import FilterSet
from .graph import GraphFacts
from .preprocess import INTERPOLATION
from .records import Classification, LabelScore, ModelInfo

CLASSIFIER_BACKENDS = ("onnx-classifier",)


class ClassifierPreprocess(_Strict):
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


class ClassifierConfig(_Strict):
    """config.json of a classifier version."""

    schema_version: Literal[1] = 1
    backend: Literal["onnx-classifier"]
    weights: WeightsConfig
    input_size: tuple[int, int] = Field(..., description="model input (width, height) in pixels")
    labels: list[str] = Field(..., min_length=1)
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
    description: str = ""
    graph: GraphFacts | None = Field(None, description="the ONNX graph's inspected facts (filled in by publish)")

    _square = field_validator("input_size", mode="before")(square_size)
    _size_range = field_validator("input_size")(size_in_range)
    _unique_labels = field_validator("labels")(unique_labels)

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

    @property
    def num_classes(self) -> int:
        return len(self.labels)

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
    from .graph import inspect_onnx

    graph, _ = inspect_onnx(weights)
    out = dict(given)
    if "input_size" not in out and graph.static_hw:
        out["input_size"] = list(graph.static_hw)
    out["graph"] = graph.model_dump(mode="json")
    return out


def crop_input(crop: np.ndarray, cfg: ClassifierConfig) -> np.ndarray:
    """One RGB uint8 crop -> the classifier's CHW float32 input (resize, center crop, mean / std)."""
    p = cfg.preprocess
    w, h = cfg.input_size
    interp = INTERPOLATION[p.interpolation]
    ch, cw = crop.shape[:2]
    if p.resize == "stretch":
        img = cv2.resize(crop, (w, h), interpolation=interp)
    else:
        s = max(w / p.crop_pct / cw, h / p.crop_pct / ch)
        nw, nh = max(w, round(cw * s)), max(h, round(ch * s))
        img = cv2.resize(crop, (nw, nh), interpolation=interp)
        x0, y0 = (nw - w) // 2, (nh - h) // 2
        img = img[y0:y0 + h, x0:x0 + w]
    if p.color_order == "bgr":
        img = img[:, :, ::-1]
    x = img.astype(np.float32) * np.float32(p.scale)
    x = (x - np.asarray(p.mean, np.float32)) / np.asarray(p.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Classifier:
    """One loaded classifier version.

    Lifecycle: built once per process, replica or actor by `ModelStore.load_classifier`, which
    verifies the weights' sha256 first. `predict` (crops -> probabilities) and `classify` (crops ->
    `Classification` records with the classifier filters applied) may then be called any number
    of times; like `Detector`, give each worker its own instance.
    """

    def __init__(self, info: ModelInfo, config: ClassifierConfig, backend) -> None:
        self.info = info
        self.config = config
        self.backend = backend

    @property
    def ref(self) -> str:
        return f"{self.info.name}:{self.info.version}"

    @property
    def device(self) -> str:
        return self.backend.device

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities [N, num_labels] for RGB uint8 crops of any sizes (one forward pass per graph batch)."""
        from .backends import run_chunked

        if not crops:
            return np.zeros((0, self.config.num_classes), np.float32)
        tensor = np.stack([crop_input(c, self.config) for c in crops])
        raw = run_chunked(self.backend, tensor, self.ref)
        if raw.ndim != 2 or raw.shape[1] != self.config.num_classes:
            from .backends import ModelRunError

            raise ModelRunError(f"classifier {self.ref} returned shape {list(raw.shape)}; expected "
                                f"[{len(crops)}, {self.config.num_classes}] for its labels")
        raw = raw.astype(np.float32)
        return softmax(raw) if self.config.output == "logits" else raw

    def answer(self, scores: np.ndarray, filters: FilterSet | None = None, keep_scores: bool = True) -> Classification:
        """One probability vector -> a `Classification` (top-k, and the classifier filters of `filters` applied)."""
        return classification_from_scores(self.info, self.config, scores, filters, keep_scores)

    def classify(self, crops: Sequence[np.ndarray], filters: FilterSet | None = None) -> list[Classification]:
        """Crops -> one `Classification` each."""
        return [self.answer(row, filters) for row in self.predict(crops)]

    def warmup(self) -> None:
        """One blank crop through the whole path, so the first real request pays no allocation cost."""
        w, h = self.config.input_size
        self.classify([np.full((h, w, 3), 114, np.uint8)])


def classification_from_scores(info: ModelInfo, config: ClassifierConfig, scores: Sequence[float],
                               filters: FilterSet | None = None, keep_scores: bool = True) -> Classification:
    """The one place a probability vector becomes a `Classification`: live, and when stored tables are re-filtered."""
    scores = np.asarray(scores, dtype=np.float64)
    k = min(config.top_k, len(scores))
    order = np.argsort(-scores, kind="stable")[:k]
    answer = ClassifierAnswer.from_scores(scores, config.labels, config.taxonomy, config.taxonomy_ranks)
    if filters is not None:
        filters.classify(info.name, answer)
    return Classification(
        model=info, label=answer.label, score=round(float(answer.score), 6), rank=answer.rank,
        taxon_path=answer.taxon_path if config.taxonomy else [],
        top=[LabelScore(label=config.labels[i], score=round(float(scores[i]), 6)) for i in order],
        flags=answer.flags, scores=[round(float(s), 6) for s in scores] if keep_scores else None,
    )


def parse_classifier_config(data: dict[str, Any], source: str) -> ClassifierConfig:
    from pydantic import ValidationError

    from .config import format_validation_error

    try:
        return ClassifierConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, what="classifier config")) from None
