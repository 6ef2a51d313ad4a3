"""The thresholds rule's defaults and its wording (batch/postprocessing/thresholds.py applies it): light, as the
command registry reads the defaults on every command line (batch/models_commands.py)."""

from __future__ import annotations

TARGET = 0.95
MIN_LABEL = 10  # reviewed detections the version labelled L, to propose a threshold for L at all
MIN_CAMERA = 30  # ... at one camera, for that camera to get its own
FILTER = "label_score"  # the filter the thresholds are published as (model_store/core/filters/label_score.py)


def rule(target: float, min_label: int, min_camera: int) -> str:
    return (f"per label, the lowest score at which the version's reviewed detections of that label reach precision "
            f"{target:g} (at least {min_label} reviewed detections of the label); a camera with at least "
            f"{min_camera} reviewed detections of the label gets its own where it reaches the target, else the "
            "label's applies there")
