"""The `trapline` metadata every part's Parquet files carry: which model version and result set made the rows,
with the labels, detection thresholds, filters and classifiers a reader needs to interpret a single part without
the model store. One builder for both writers: an archive run (batch/reprocess/job.py) and the online recorder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from model_store import FilterSet
from model_store.core.clip_settings import ClipSettings
from model_store.core.provenance import provenance


def detection_thresholds(config: Any) -> dict[str, float]:
    """(typical, conservative) detection thresholds of a model config, with the score_threshold fallback."""
    typical = config.typical_detection_threshold
    if typical is None:
        typical = config.score_threshold
    conservative = config.conservative_detection_threshold
    if conservative is None:
        conservative = min(config.score_threshold, typical)
    return {"typical_detection_threshold": float(typical), "conservative_detection_threshold": float(conservative),
            "score_threshold": float(config.score_threshold)}


def part_metadata(name: str, version: str, config: Any, ref: str, filters: FilterSet, result_hash: str,
                  classifiers: Sequence[Mapping[str, Any]] = (), crops: Mapping[str, Any] | None = None,
                  clips: ClipSettings | None = None) -> dict[str, Any]:
    """The metadata of a part written by `name:version` (`config` its ModelConfig, `ref` what it was asked as)
    with `filters`; `classifiers` are `routes_metadata` entries, `crops` the snip options when snips were cut,
    `clips` the settings its clip rows were made with (their `clip_settings` is its hash). `provenance`: the code that
    made the rows (model_store/core/provenance.py).

    Nine parameters: each is one fact a part's metadata records, and its two writers (the reprocess job's
    run_metadata, the online recorder) hold them in different places: the model's name, version and config and the
    ref it was asked as, the filter set and the result hash, then the classifier routes, the snip options and the
    clip settings as defaults (a recorder has no clip settings of a run)."""
    model = {"name": name, "version": version, "sha256": config.weights.sha256, "ref": ref,
             "labels": list(config.labels), **detection_thresholds(config)}
    info: dict[str, Any] = {"hash": result_hash, "specs": filters.as_specs()}
    if classifiers:
        info.update(filters_hash=filters.hash, classifiers=[dict(c) for c in classifiers])
    return {"model": model, "filters": info, "provenance": provenance(), **({"crops": dict(crops)} if crops else {}),
            **({"clips": {"hash": clips.hash, **clips.as_dict()}} if clips is not None else {})}
