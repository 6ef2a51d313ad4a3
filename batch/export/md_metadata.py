"""What a MegaDetector batch-output file says about the models that made it, where MegaDetector puts it.

MegaDetector's own tools read `info.detector_metadata.typical_detection_threshold` (its preview
and its "typical threshold" helpers default to it, and warn "detector metadata not available in
results file" when it is missing) and keep classifier facts inside `info`: `classifier`,
`classification_completion_time`, `classifier_metadata` (as its
`merge_classification_detection_output` writes them). Any other top-level key is "non-standard".

The thresholds come from the model's config (`typical_detection_threshold`,
`conservative_detection_threshold`; the `megadetector-v5` preset sets MegaDetector's own 0.2 /
0.05), recorded in the tables' metadata by the run; a config without them gives its
`score_threshold` (what the model keeps) for both.
"""

from __future__ import annotations

from typing import Any

from ground.errors import StoreError
from model_store import ModelStore
from model_store.tables.metadata import detection_thresholds
from model_store.tables.table_set import TableSet

THRESHOLD_KEYS = ("typical_detection_threshold", "conservative_detection_threshold")


def thresholds_of(tset: TableSet, store: str | None = None) -> dict[str, float]:
    """The thresholds the tables recorded; for tables written before they did, the store's config (if reachable)."""
    model = tset.metadata.get("model", {})
    if all(k in model for k in THRESHOLD_KEYS):
        return {k: float(model[k]) for k in (*THRESHOLD_KEYS, "score_threshold") if k in model}

    try:
        config = ModelStore(store).get(f"{tset.model_name}:{tset.model_version}").config
    except (StoreError, OSError, ValueError):
        return {}
    return detection_thresholds(config)


def detector_metadata(tset: TableSet, store: str | None = None) -> dict[str, Any]:
    """`info.detector_metadata`: MegaDetector's threshold keys, then trapline's model and filter facts."""
    return {**thresholds_of(tset, store), "model_name": tset.model_name, "model_version": tset.model_version,
            "model_sha256": tset.metadata.get("model", {}).get("sha256"),
            "filters_hash": tset.filters_hash, "filters": tset.filter_specs}


def classifier_info(tset: TableSet, completed: str) -> dict[str, Any]:
    """The `info` keys MegaDetector's writer uses for classifiers (none without classifiers)."""
    if not tset.classifiers:
        return {}
    return {
        "classifier": ", ".join(f"{c['name']} {c['version']}" for c in tset.classifiers),
        "classification_completion_time": completed,
        "classifier_metadata": {"classifiers": [
            {"name": c["name"], "version": c["version"], "sha256": c.get("sha256"),
             "labels": list(c.get("labels_out") or []), "taxonomy": dict(c.get("taxonomy") or {}),
             "applied_to": list(c.get("labels") or [])}  # the detector labels routed to it
            for c in tset.classifiers]},
    }
