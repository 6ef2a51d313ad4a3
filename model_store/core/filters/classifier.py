"""Classifier filters (`classifier_mask`, `rank_rollup`): they act on a classifier's probability vector,
rewriting the answer (label, score, taxon) and never the raw scores, which tables keep. They are
registered beside the detection filters (model_store/core/filters/__init__.py), so a FilterSet's hash covers them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ground.errors import FilterConfigError
from model_store.core.filters.types import DetectionArrays, PostFilter, no_duplicates


class ClassifierFilterConfig(BaseModel):
    """Base of the classifier-score filters: `classifier` limits one to one classifier model (default: all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    classifier: str | None = Field(None, description="name of the classifier model this applies to (None: every one)")


class ClassifierMaskConfig(ClassifierFilterConfig):
    allowed_labels: list[str] = Field(..., min_length=1, description="classifier labels to keep (e.g. the "
                                                                      "species present in the region)")
    _unique = field_validator("allowed_labels")(no_duplicates)


class RankRollupConfig(ClassifierFilterConfig):
    threshold: float = Field(..., gt=0.0, le=1.0, description="lowest summed score a taxon needs to be the answer")


@dataclass
class ClassifierAnswer:
    """A classifier's answer for one crop while the classifier filters rewrite it."""

    scores: np.ndarray  # the probabilities the filters work on (the mask renormalises these)
    labels: Sequence[str]
    taxonomy: Mapping[str, Sequence[str]]  # label -> path from the root; a label without one is its own root
    ranks: Sequence[str]
    label: str = ""
    score: float = 0.0
    taxon_path: list[str] = field(default_factory=list)
    rank: str | None = None
    flags: list[str] = field(default_factory=list)
    # What the species ensemble (model_store/core/filters/species.py) reads beside the scores, and what it says.
    detection: tuple[str, float] | None = None  # the detector's label and score for this crop
    location: Any = None  # the camera's `Location` (model_store/core/species/geofence.py), when known
    species: Any = None  # the classifier's `SpeciesData` (taxonomy and geofence), when published with them
    source: str | None = None  # how the answer was reached: detector, classifier, classifier+rollup_to_genus, ...

    @classmethod
    def from_scores(cls, scores: np.ndarray, labels: Sequence[str], taxonomy: Mapping[str, Sequence[str]],
                    ranks: Sequence[str] = ()) -> ClassifierAnswer:
        answer = cls(np.asarray(scores, dtype=np.float64), labels, taxonomy, ranks)
        answer.pick_top()
        return answer

    def path_of(self, label: str) -> list[str]:
        return list(self.taxonomy.get(label) or [label])

    def pick_top(self) -> None:
        i = int(np.argmax(self.scores)) if len(self.scores) else 0
        self.label, self.score = self.labels[i], float(self.scores[i])
        self.taxon_path, self.rank = self.path_of(self.label), None


class ClassifierFilter(PostFilter):
    """A filter over classifier scores: `transform` rewrites the answer in place, returns whether it fired."""

    kind = "classification"

    @staticmethod
    def fires(config: Any, dets: DetectionArrays) -> np.ndarray:  # never fires on detections
        return np.zeros(len(dets.scores), dtype=bool)

    @staticmethod
    def transform(config: Any, answer: ClassifierAnswer) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


class ClassifierMaskFilter(ClassifierFilter):
    """Keep only allowed labels: zero the others, renormalise over the allowed ones, re-pick the top label."""

    name = "classifier_mask"
    config_model = ClassifierMaskConfig

    @staticmethod
    def transform(config: ClassifierMaskConfig, answer: ClassifierAnswer) -> bool:
        allowed = np.array([label in set(config.allowed_labels) for label in answer.labels])
        masked = np.where(allowed, answer.scores, 0.0)
        total = masked.sum()
        # All allowed labels at zero probability (underflow): no evidence among them, so spread evenly.
        answer.scores = masked / total if total > 0 else allowed / max(allowed.sum(), 1)
        before = answer.label
        answer.pick_top()
        return before != answer.label or not allowed.all()

    @staticmethod
    def check_classifier_labels(config: ClassifierMaskConfig, labels: Sequence[str]) -> None:
        unknown = [label for label in config.allowed_labels if label not in labels]
        if unknown:
            raise FilterConfigError(
                f"classifier_mask.allowed_labels names unknown labels {unknown!r}; the classifier has {list(labels)!r}")


class RankRollupFilter(ClassifierFilter):
    """Up the taxonomy: the lowest rank whose best taxon's summed score reaches `threshold`.

    The top label stands if its own score does. Otherwise labels are grouped by their taxonomy
    path cut at each rank, deepest first, and the first group whose summed score passes wins
    (its label is the taxon's name, `rank` its rank). When no rank passes, the answer is the
    best group at the top rank: the most that can be said.
    """

    name = "rank_rollup"
    config_model = RankRollupConfig

    @staticmethod
    def transform(config: RankRollupConfig, answer: ClassifierAnswer) -> bool:
        if answer.score >= config.threshold:
            return False
        paths = [answer.path_of(label) for label in answer.labels]
        depth = max(len(p) for p in paths)
        best: tuple[float, tuple[str, ...]] = (answer.score, tuple(answer.taxon_path))
        for level in range(depth - 2, -1, -1):
            sums: dict[tuple[str, ...], float] = {}
            for path, score in zip(paths, answer.scores, strict=True):
                key = tuple(path[:level + 1])
                sums[key] = sums.get(key, 0.0) + float(score)
            key, total = max(sums.items(), key=lambda kv: kv[1])
            best = (total, key)
            if total >= config.threshold:
                break
        total, key = best
        answer.label, answer.score, answer.taxon_path = key[-1], round(min(total, 1.0), 6), list(key)
        ranks = answer.ranks
        answer.rank = ranks[len(key) - 1] if len(ranks) >= len(key) else f"level {len(key) - 1}"
        return True
