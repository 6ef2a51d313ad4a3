"""Post-processing filters: a small registry of typed, hashable detection filters.

Detection filters (`kind = "detection"`, such as `score`) never delete raw detections. Each one
marks the detections it fires on; a filter whose `action` is "drop" also removes them from
the kept set, one whose action is "flag" only annotates them. Keeping every raw detection is
what lets a batch job re-filter its stored tables later without running the model again.

Classifier filters (`classifier_mask`, `rank_rollup`; model_store/core/filters/classifier.py, and the species
ensemble `species_ensemble`, model_store/core/filters/species.py) live in
the same registry and the same `FilterSet` (so its hash covers them) but act on a classifier's
probability vector instead: they rewrite the answer (label, score, taxon) and never touch the raw
scores, which tables keep. The base types are in model_store/core/filters/types.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_origin

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator

from ground.errors import FilterConfigError
from ground.problems import describe, problems
from model_store.core.filters import repeat
from model_store.core.filters.classifier import ClassifierAnswer, ClassifierMaskFilter, RankRollupFilter
from model_store.core.filters.label_score import LabelScoreFilter
from model_store.core.filters.species import SpeciesEnsembleFilter
from model_store.core.filters.tracking import TrackConfig
from model_store.core.filters.types import DetectionArrays, FilterConfig, PostFilter, QueryShortcut, no_duplicates


class MinSizeConfig(FilterConfig):
    min_area_fraction: float = Field(..., ge=0.0, le=1.0, description="smallest box area / image area to keep")


class ClassMaskConfig(FilterConfig):
    allowed_labels: list[str] = Field(..., min_length=1, description="labels to keep; all others fire")
    _unique = field_validator("allowed_labels")(no_duplicates)


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


class MinSizeFilter(PostFilter):
    """Boxes smaller than a fraction of the image (distant specks, noise) fire."""

    name = "min_size"
    config_model = MinSizeConfig
    shortcut = QueryShortcut("min_area_fraction")

    @staticmethod
    def fires(config: MinSizeConfig, dets: DetectionArrays) -> np.ndarray:
        w = dets.boxes_px[:, 2] - dets.boxes_px[:, 0]
        h = dets.boxes_px[:, 3] - dets.boxes_px[:, 1]
        area = (w * h) / float(max(dets.image_width * dets.image_height, 1))
        return area < config.min_area_fraction


class ClassMaskFilter(PostFilter):
    """Detections whose label is not one of the allowed labels fire."""

    name = "class_mask"
    config_model = ClassMaskConfig
    shortcut = QueryShortcut("allowed_labels", param="labels")

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
    """Detections scoring below a threshold fire."""

    name = "score"
    config_model = ScoreConfig
    shortcut = QueryShortcut("min_score")

    @staticmethod
    def fires(config: ScoreConfig, dets: DetectionArrays) -> np.ndarray:
        return dets.scores < config.min_score


class RepeatFilter(PostFilter):
    """Boxes recurring at one place on one camera (sticks, rocks: MegaDetector's repeat-detection elimination)
    fire; table-level, so it runs over stored tables (`trapline postprocess`)."""

    name = "repeat"
    config_model = RepeatConfig
    table_level = True

    @staticmethod
    def fires(config: RepeatConfig, dets: DetectionArrays) -> np.ndarray:
        raise FilterConfigError("the repeat filter compares boxes across images of a camera; it runs on stored "
                                "tables (`trapline postprocess --filter repeat`), not on one image")

    fires_on_table = staticmethod(repeat.fires_on_table)

    @staticmethod
    def evidence_hours(config: RepeatConfig) -> float | None:
        return config.window_hours  # recurrence is only counted within the window


class TrackFilter(PostFilter):
    """Tracking: link the kept detections of a camera's consecutive frames into occurrences (one animal's visit),
    by a cost of IoU, box-size ratio, centre distance and appearance; it drops nothing, it writes the `occurrences`
    table (`trapline postprocess --filter track`, batch/postprocessing/tracks.py)."""

    name = "track"
    config_model = TrackConfig
    kind = "occurrence"  # neither a detection nor a classifier filter: `FilterSet.apply` and `.classify` pass it
    table_level = True

    @staticmethod
    def fires(config: TrackConfig, dets: DetectionArrays) -> np.ndarray:
        raise FilterConfigError("the track filter links boxes across the frames of a camera; it runs on stored "
                                "tables (`trapline postprocess --filter track`), not on one image")


REGISTRY: dict[str, type[PostFilter]] = {f.name: f for f in (MinSizeFilter, ClassMaskFilter, ScoreFilter, RepeatFilter,
                                                              ClassifierMaskFilter, RankRollupFilter, TrackFilter,
                                                              SpeciesEnsembleFilter, LabelScoreFilter)}


# The registered names, for options that name a filter: an unknown name is refused where it enters.
FilterName = Literal[tuple(REGISTRY)]
# query parameter -> (filter, its config field): the shortcuts of `POST /v1/detect`, each filter's own `shortcut`
SHORTCUTS: dict[str, tuple[str, str]] = {f.shortcut.name: (name, f.shortcut.field) for name, f in REGISTRY.items()
                                         if f.shortcut is not None}


def shortcut_overrides(given: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Filter overrides from shortcut query parameters (`SHORTCUTS`; None: not given): `{"min_score": 0.5}` is
    `{"score": {"min_score": 0.5}}`; a list field's value is split on commas."""
    out: dict[str, dict[str, Any]] = {}
    for param, value in given.items():
        if value is None:
            continue
        name, field = SHORTCUTS[param]
        if _is_list(REGISTRY[name].config_model.model_fields[field].annotation) and isinstance(value, str):
            value = [x.strip() for x in value.split(",") if x.strip()]
        out.setdefault(name, {})[field] = value
    return out


def _is_list(annotation: Any) -> bool:
    return get_origin(annotation) is list


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
        raise FilterConfigError(f"invalid config for filter {name!r}: {describe(problems(exc))}") from None


def check_filter_config(name: str, config: Mapping[str, Any], partial: bool = False, at: tuple[str, ...] = ()) -> None:
    """Validate `config` with filter `name`'s own config model, for an options model's validator: a pydantic
    ValidationError whose paths run into the config (`at` + field), so the door names `config.min_score`.
    `partial`: an override merged into the model's own config later, so a required field may be left out."""
    try:
        REGISTRY[name].config_model.model_validate(config)
    except ValidationError as exc:
        errors = [e for e in exc.errors() if not (partial and e["type"] == "missing")]
        if errors:
            raise ValidationError.from_exception_data(exc.title, [
                {"type": e["type"], "loc": (*at, *e["loc"]), "input": e["input"],
                 **({"ctx": e["ctx"]} if "ctx" in e else {})} for e in errors]) from None


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
                f"a camera): apply it to stored tables with `trapline postprocess --filter {self.table_level[0]}`, "
                "not per image")

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
