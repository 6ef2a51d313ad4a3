"""Post-processing filters: a small registry of typed, hashable detection filters.

Detection filters (`min_size`, `class_mask`, `score`) never delete raw detections. Each one
marks the detections it fires on; a filter whose `action` is "drop" also removes them from
the kept set, one whose action is "flag" only annotates them. Keeping every raw detection is
what lets a batch job re-filter its stored tables later without running the model again.

Classifier filters (`classifier_mask`, `rank_rollup`) live in the same registry and the same
`FilterSet` (so its hash covers them) but act on a classifier's probability vector instead:
they rewrite the answer (label, score, taxon) and never touch the raw scores, which tables keep.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trapline.errors import TraplineError


class FilterConfigError(TraplineError, ValueError):
    """A filter name or config that is not valid; the message quotes the bad value."""

    code = "invalid_filter"


class FilterConfig(BaseModel):
    """Base for every filter config: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    action: Literal["drop", "flag"] = Field("drop", description="drop: remove from the kept set; flag: annotate only")


class MinSizeConfig(FilterConfig):
    min_area_fraction: float = Field(..., ge=0.0, le=1.0, description="smallest box area / image area to keep")


def no_duplicates(cls, labels: list[str]) -> list[str]:
    if len(set(labels)) != len(labels):
        raise ValueError(f"allowed_labels has duplicates: {labels!r}")
    return labels


class ClassMaskConfig(FilterConfig):
    allowed_labels: list[str] = Field(..., min_length=1, description="labels to keep; all others fire")
    _unique = field_validator("allowed_labels")(no_duplicates)


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


class ScoreConfig(FilterConfig):
    min_score: float = Field(..., ge=0.0, le=1.0, description="detections scoring below this fire")


class RepeatConfig(FilterConfig):
    """Repeat-detection elimination (MegaDetector's RDE): boxes recurring at one place on one camera."""

    iou: float = Field(0.85, gt=0.0, le=1.0, description="boxes at least this similar are the same place")
    min_images: int = Field(10, ge=2, description="a box fires when it recurs in at least this many images")
    window_hours: float | None = Field(None, gt=0.0, description="only images captured within this many hours "
                                                                 "of each other count; None: the whole history")
    min_score: float = Field(0.1, ge=0.0, le=1.0, description="less confident detections are never compared")
    max_box_fraction: float | None = Field(0.2, gt=0.0, le=1.0, description="boxes larger than this fraction of "
                                                                            "the image never fire (a large "
                                                                            "animal at rest is not a stick)")


@dataclass(frozen=True)
class DetectionArrays:
    """The columns a filter looks at, for one image: boxes in original pixels (x1, y1, x2, y2)."""

    boxes_px: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: Sequence[str]
    image_width: int
    image_height: int


class PostFilter:
    """One registered filter: a config model and a vectorised `fires` predicate."""

    name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    kind: ClassVar[str] = "detection"  # or "classification": acts on classifier scores
    # A table-level filter needs boxes of other images (of one camera) to decide: it cannot run in
    # the detector on one image; `FilterSet.apply` takes its result precomputed over the tables.
    table_level: ClassVar[bool] = False

    @staticmethod
    def fires(config: Any, dets: DetectionArrays) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    @staticmethod
    def check_labels(config: Any, labels: Sequence[str]) -> None:
        """Raise FilterConfigError if the config names labels the model does not have."""

    @staticmethod
    def check_classifier_labels(config: Any, labels: Sequence[str]) -> None:
        """Raise FilterConfigError if the config names labels the classifier does not have."""


class MinSizeFilter(PostFilter):
    name = "min_size"
    config_model = MinSizeConfig

    @staticmethod
    def fires(config: MinSizeConfig, dets: DetectionArrays) -> np.ndarray:
        w = dets.boxes_px[:, 2] - dets.boxes_px[:, 0]
        h = dets.boxes_px[:, 3] - dets.boxes_px[:, 1]
        area = (w * h) / float(max(dets.image_width * dets.image_height, 1))
        return area < config.min_area_fraction


class ClassMaskFilter(PostFilter):
    name = "class_mask"
    config_model = ClassMaskConfig

    @staticmethod
    def fires(config: ClassMaskConfig, dets: DetectionArrays) -> np.ndarray:
        allowed = {i for i, label in enumerate(dets.labels) if label in set(config.allowed_labels)}
        return ~np.isin(dets.class_ids, list(allowed))

    @staticmethod
    def check_labels(config: ClassMaskConfig, labels: Sequence[str]) -> None:
        unknown = [label for label in config.allowed_labels if label not in labels]
        if unknown:
            raise FilterConfigError(
                f"class_mask.allowed_labels names unknown labels {unknown!r}; the model has {list(labels)!r}"
            )


class ScoreFilter(PostFilter):
    name = "score"
    config_model = ScoreConfig

    @staticmethod
    def fires(config: ScoreConfig, dets: DetectionArrays) -> np.ndarray:
        return dets.scores < config.min_score


class RepeatFilter(PostFilter):
    name = "repeat"
    config_model = RepeatConfig
    table_level = True

    @staticmethod
    def fires(config: RepeatConfig, dets: DetectionArrays) -> np.ndarray:
        raise FilterConfigError("the repeat filter compares boxes across images of a camera; it runs on stored "
                                "tables (`trapline postprocess --filter repeat`), not on one image")


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


REGISTRY: dict[str, type[PostFilter]] = {f.name: f for f in (MinSizeFilter, ClassMaskFilter, ScoreFilter, RepeatFilter,
                                                              ClassifierMaskFilter, RankRollupFilter)}


def parse_filter_config(name: str, config: Mapping[str, Any] | BaseModel) -> BaseModel:
    """Validate one filter's config, with an error that names the filter and quotes the bad value."""
    if name not in REGISTRY:
        raise FilterConfigError(f"unknown filter {name!r}; known filters: {sorted(REGISTRY)}")
    model = REGISTRY[name].config_model
    if isinstance(config, model):
        return config
    if isinstance(config, BaseModel):
        config = config.model_dump()
    try:
        return model.model_validate(config)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        )
        raise FilterConfigError(f"invalid config for filter {name!r}: {problems}") from None


@dataclass(frozen=True)
class FilterSet:
    """An ordered, validated list of filters; its `hash` identifies it in results and tables."""

    filters: tuple[tuple[str, BaseModel], ...] = ()

    @classmethod
    def from_specs(cls, specs: Sequence[Mapping[str, Any]]) -> FilterSet:
        """Build from `[{"name": ..., "config": {...}}, ...]` (the form used in config.json)."""
        items = []
        for spec in specs:
            if set(spec) - {"name", "config"} or "name" not in spec:
                raise FilterConfigError(f"a filter spec needs 'name' and 'config' only, got {dict(spec)!r}")
            items.append((spec["name"], parse_filter_config(spec["name"], spec.get("config", {}))))
        names = [n for n, _ in items]
        if len(set(names)) != len(names):
            raise FilterConfigError(f"each filter may appear once, got {names!r}")
        return cls(tuple(items))

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any] | None] | None) -> FilterSet:
        """Per-call overrides: `{name: {field: value}}` merges into (or adds) a filter, `{name: None}` removes it."""
        if not overrides:
            return self
        current = dict(self.filters)
        for name, patch in overrides.items():
            if patch is None:
                if name not in REGISTRY:
                    raise FilterConfigError(f"unknown filter {name!r}; known filters: {sorted(REGISTRY)}")
                current.pop(name, None)
                continue
            if not isinstance(patch, Mapping):
                raise FilterConfigError(f"override for filter {name!r} must be an object, got {patch!r}")
            base = current[name].model_dump() if name in current else {}
            current[name] = parse_filter_config(name, {**base, **patch})
        return FilterSet(tuple(current.items()))

    def check_labels(self, labels: Sequence[str]) -> None:
        """Raise FilterConfigError if any filter refers to labels the model does not have."""
        for name, config in self.filters:
            REGISTRY[name].check_labels(config, labels)

    def check_classifier_labels(self, classifier: str, labels: Sequence[str]) -> None:
        """Raise FilterConfigError if a classifier filter for `classifier` names labels it does not have."""
        for name, config in self.classifier_filters(classifier):
            REGISTRY[name].check_classifier_labels(config, labels)

    def classifier_filters(self, classifier: str) -> list[tuple[str, BaseModel]]:
        """The classifier filters that apply to the classifier model named `classifier`, in order."""
        return [(name, config) for name, config in self.filters if REGISTRY[name].kind == "classification"
                and getattr(config, "classifier", None) in (None, classifier)]

    @property
    def has_classifier_filters(self) -> bool:
        return any(REGISTRY[name].kind == "classification" for name, _ in self.filters)

    def classify(self, classifier: str, answer: ClassifierAnswer) -> ClassifierAnswer:
        """Apply the classifier filters for `classifier` to one answer (in place); flags name those that fired."""
        for name, config in self.classifier_filters(classifier):
            if REGISTRY[name].transform(config, answer):  # type: ignore[attr-defined]
                answer.flags.append(name)
        return answer

    @property
    def table_level(self) -> list[str]:
        """Names of the filters that need boxes of other images (see `PostFilter.table_level`)."""
        return [name for name, _ in self.filters if REGISTRY[name].table_level]

    def require_per_image(self) -> None:
        """Raise FilterConfigError if a filter cannot run on one image (the detector's and the service's case)."""
        if self.table_level:
            raise FilterConfigError(
                f"{', '.join(self.table_level)} is a table-level filter (it compares boxes across the images of "
                "a camera): apply it to stored tables with `trapline postprocess --filter repeat`, not per image")

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.filters]

    def as_specs(self) -> list[dict[str, Any]]:
        """The canonical JSON-able form: `[{"name", "config"}]` with every field spelled out."""
        return [{"name": name, "config": config.model_dump(mode="json")} for name, config in self.filters]

    @property
    def hash(self) -> str:
        """A stable 16-hex-digit hash of the names, order and full configs (defaults included)."""
        canonical = json.dumps(self.as_specs(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def apply(self, dets: DetectionArrays, precomputed: Mapping[str, np.ndarray] | None = None) -> tuple[
            np.ndarray, list[list[str]]]:
        """Return (kept mask, flags per detection): flags name every filter that fired.

        `precomputed` holds the fired masks of table-level filters for these detections.
        """
        n = len(dets.scores)
        kept = np.ones(n, dtype=bool)
        flags: list[list[str]] = [[] for _ in range(n)]
        for name, config in self.filters:
            if REGISTRY[name].kind != "detection":
                continue
            if precomputed is not None and name in precomputed:
                fired = np.asarray(precomputed[name], dtype=bool)
            else:
                fired = np.asarray(REGISTRY[name].fires(config, dets), dtype=bool)
            for i in np.flatnonzero(fired):
                flags[i].append(name)
            if config.action == "drop":
                kept &= ~fired
        return kept, flags
