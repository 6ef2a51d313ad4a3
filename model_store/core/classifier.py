"""Classifier models (backend `onnx-classifier`): the loaded `Classifier` (its config: core/config/classifier.py).

A classifier says what a detection is: it takes crops (RGB uint8, any size), resizes and
normalises them as it was trained, and returns one probability vector per crop. It lives in
the same store as the detectors (publish / verify / promote / rollback / sha256 before load);
`config.json`'s `backend` tells the two kinds apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from model_store.core.backends import ModelRunError, run_chunked
from model_store.core.config.classifier import ClassifierConfig
from model_store.core.filters import FilterSet
from model_store.core.filters.classifier import ClassifierAnswer
from model_store.core.preprocess import INTERPOLATION
from model_store.core.records import Classification, LabelScore, ModelInfo
from model_store.core.species.ensemble import SpeciesData
from model_store.core.species.geofence import Location


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

    def __init__(self, info: ModelInfo, config: ClassifierConfig, backend, species: SpeciesData | None = None) -> None:
        self.info = info
        self.config = config
        self.backend = backend
        self.species = species  # its taxonomy and geofence (the species ensemble's), when published with them

    @property
    def ref(self) -> str:
        return f"{self.info.name}:{self.info.version}"

    @property
    def device(self) -> str:
        return self.backend.device

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities [N, num_labels] for RGB uint8 crops of any sizes (one forward pass per graph batch)."""

        if not crops:
            return np.zeros((0, self.config.num_classes), np.float32)
        tensor = np.stack([crop_input(c, self.config) for c in crops])
        raw = run_chunked(self.backend, tensor, self.ref)
        if raw.ndim != 2 or raw.shape[1] != self.config.num_classes:

            raise ModelRunError(f"classifier {self.ref} returned shape {list(raw.shape)}; expected "
                                f"[{len(crops)}, {self.config.num_classes}] for its labels")
        raw = raw.astype(np.float32)
        return softmax(raw) if self.config.output == "logits" else raw

    def answer(self, scores: np.ndarray, filters: FilterSet | None = None, keep_scores: bool = True,
               detection: tuple[str, float] | None = None, location: Location | None = None) -> Classification:
        """One probability vector -> a `Classification` (top-k, and the classifier filters of `filters` applied;
        `detection` (the box's label and score) and `location` are what the species ensemble reads beside it)."""
        return classification_from_scores(self.info, self.config, scores, filters, keep_scores, detection=detection,
                                          location=location, species=self.species)

    def classify(self, crops: Sequence[np.ndarray], filters: FilterSet | None = None,
                 detections: Sequence[tuple[str, float] | None] | None = None,
                 locations: Sequence[Location | None] | None = None) -> list[Classification]:
        """Crops -> one `Classification` each (`detections` / `locations`: one per crop, for the species ensemble)."""
        probs = self.predict(crops)
        return [self.answer(row, filters, detection=detections[i] if detections else None,
                            location=locations[i] if locations else None) for i, row in enumerate(probs)]

    def warmup(self) -> None:
        """One blank crop through the whole path, so the first real request pays no allocation cost."""
        w, h = self.config.input_size
        self.classify([np.full((h, w, 3), 114, np.uint8)])


def classification_from_scores(info: ModelInfo, config: ClassifierConfig, scores: Sequence[float],
                               filters: FilterSet | None = None, keep_scores: bool = True, *,
                               detection: tuple[str, float] | None = None, location: Location | None = None,
                               species: SpeciesData | None = None) -> Classification:
    """The one place a probability vector becomes a `Classification`: live, and when stored tables are re-filtered.

    Eight parameters: the classifier's identity and config, the probability vector, and how it is kept (filters,
    keep_scores), then, keyword-only, the box's context the species filter reads (detection, location, species); the
    live classifier and the stored-table re-classification hold these in different places, so each passes its own,
    and a context object would be built only for this call."""
    scores = np.asarray(scores, dtype=np.float64)
    k = min(config.top_k, len(scores))
    order = np.argsort(-scores, kind="stable")[:k]
    answer = ClassifierAnswer.from_scores(scores, config.labels, config.taxonomy, config.taxonomy_ranks)
    answer.detection, answer.location, answer.species = detection, location, species
    if filters is not None:
        filters.classify(info.name, answer)
    return Classification(
        model=info, label=answer.label, score=round(float(answer.score), 6), rank=answer.rank,
        taxon_path=answer.taxon_path if config.taxonomy or answer.source else [],
        top=[LabelScore(label=config.labels[i], score=round(float(scores[i]), 6)) for i in order],
        flags=answer.flags, scores=[round(float(s), 6) for s in scores] if keep_scores else None,
        source=answer.source,
    )
