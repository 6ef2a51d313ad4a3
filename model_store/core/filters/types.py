"""The types every post-processing filter is built on: its config base, the error for a bad config,
the arrays a detection filter reads and the filter interface (model_store/core/filters/__init__.py has the
detection filters, the registry and FilterSet; model_store/core/filters/classifier.py the classifier ones)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class FilterConfig(BaseModel):
    """Base for every filter config: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    action: Literal["drop", "flag"] = Field("drop", description="drop: remove from the kept set; flag: annotate only")


def no_duplicates(cls, labels: list[str]) -> list[str]:
    if len(set(labels)) != len(labels):
        raise ValueError(f"allowed_labels has duplicates: {labels!r}")
    return labels


@dataclass(frozen=True)
class QueryShortcut:
    """A query parameter of `POST /v1/detect` that sets one field of a filter's config alone: `?min_score=0.5` is
    `filters={"score": {"min_score": 0.5}}`. Named for the field unless `param` says otherwise; a list field is given
    comma-separated. The route's parameters are generated from these (serve/routes.py), so a filter's field is
    spelled in its filter's module only."""

    field: str
    param: str | None = None

    @property
    def name(self) -> str:
        return self.param or self.field


@dataclass(frozen=True)
class DetectionArrays:
    """The columns a filter looks at, for one image: boxes in original pixels (x1, y1, x2, y2)."""

    boxes_px: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: Sequence[str]
    image_width: int
    image_height: int
    camera_id: str | None = None  # known over stored tables (`trapline postprocess`), not in a request


class PostFilter:
    """One registered filter: a config model and a vectorised `fires` predicate."""

    name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    kind: ClassVar[str] = "detection"  # or "classification": acts on classifier scores
    # A table-level filter needs boxes of other images (of one camera) to decide: it cannot run in
    # the detector on one image; `FilterSet.apply` takes its result precomputed over the tables.
    table_level: ClassVar[bool] = False
    shortcut: ClassVar[QueryShortcut | None] = None  # a field `POST /v1/detect` takes as its own query parameter

    @staticmethod
    def fires(config: Any, dets: DetectionArrays) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    @staticmethod
    def fires_on_table(config: Any, images: Any, dets: Any) -> np.ndarray:  # pragma: no cover - interface
        """A table-level filter's predicate over stored rows (pandas frames of the images and detections
        tables): a mask aligned with `dets`."""
        raise NotImplementedError

    @staticmethod
    def evidence_hours(config: Any) -> float | None:
        """A table-level filter: how many hours around the images it decides for it must also see (the images of
        their cameras captured that close); None: their cameras' whole history."""
        return None

    @staticmethod
    def check_labels(config: Any, labels: Sequence[str]) -> None:
        """Raise FilterConfigError if the config names labels the model does not have."""

    @staticmethod
    def check_classifier_labels(config: Any, labels: Sequence[str]) -> None:
        """Raise FilterConfigError if the config names labels the classifier does not have."""
