"""The `label_score` filter: a score threshold per label, and per camera where one was set for it, such as
`trapline models thresholds --publish` derives from people's reviews (batch/postprocessing/thresholds.py).

A detection fires when its score is below its threshold: the camera's for its label where the config has one and the
detection's camera is known (`trapline postprocess` knows it from the images table; a request to the service does not,
so there the label's applies), else the label's, else none (labels the config does not name are left to the other
filters, such as `score`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
from pydantic import Field

from ground.errors import FilterConfigError
from model_store.core.filters.types import DetectionArrays, FilterConfig, PostFilter

Threshold = Annotated[float, Field(ge=0.0, le=1.0)]


class LabelScoreConfig(FilterConfig):
    min_scores: dict[str, Threshold] = Field({}, description="label -> lowest score kept")
    cameras: dict[str, dict[str, Threshold]] = Field({}, description=(
        "camera id -> label -> lowest score kept there (over the label's own)"))

    def threshold(self, label: str, camera: str | None) -> float:
        """The lowest score a detection of `label` at `camera` keeps (0: no threshold of this filter)."""
        own = self.cameras.get(camera, {}) if camera is not None else {}
        return own.get(label, self.min_scores.get(label, 0.0))


class LabelScoreFilter(PostFilter):
    """Detections scoring below their label's threshold (their camera's, where it has one) fire."""

    name = "label_score"
    config_model = LabelScoreConfig

    @staticmethod
    def fires(config: LabelScoreConfig, dets: DetectionArrays) -> np.ndarray:
        limits = np.array([config.threshold(dets.labels[int(c)], dets.camera_id) for c in dets.class_ids],
                          dtype=np.float64)
        return np.asarray(dets.scores, dtype=np.float64) < limits

    @staticmethod
    def check_labels(config: LabelScoreConfig, labels: Sequence[str]) -> None:
        named = set(config.min_scores).union(*(set(c) for c in config.cameras.values()))
        unknown = sorted(named - set(labels))
        if unknown:
            raise FilterConfigError(f"label_score names label(s) the model does not have: {unknown}; its labels: "
                                    f"{list(labels)}")
