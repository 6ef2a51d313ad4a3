"""Post-processing on classifier scores: class masking with renormalisation, and rank rollup."""

from __future__ import annotations

import numpy as np
import pytest

from model_store import ClassifierConfig, FilterConfigError, FilterSet, ModelInfo
from model_store.core.classifier import classification_from_scores
from tests.fixtures.classifiers import colour_config

INFO = ModelInfo(name="colour", version="1", sha256="0" * 64)
CFG = ClassifierConfig.model_validate({**colour_config(), "weights": {"file": "model.onnx", "sha256": "0" * 64}})


def answer(scores, specs=()):
    return classification_from_scores(INFO, CFG, scores, FilterSet.from_specs(list(specs)))


def test_no_filters_is_the_model_top_label() -> None:
    a = answer([0.2, 0.5, 0.3])
    assert (a.label, a.score, a.flags, a.rank) == ("green", 0.5, [], None)
    assert [t.label for t in a.top] == ["green", "blue"]


def test_class_mask_renormalises_over_the_allowed_labels_and_repicks() -> None:
    a = answer([0.2, 0.5, 0.3], [{"name": "classifier_mask", "config": {"allowed_labels": ["red", "blue"]}}])
    assert a.label == "blue" and a.score == pytest.approx(0.6) and a.flags == ["classifier_mask"]
    assert a.scores == [0.2, 0.5, 0.3]  # the raw vector is kept for later re-filtering
    # Only allowed labels at zero: spread evenly instead of dividing by zero.
    z = answer([0.0, 1.0, 0.0], [{"name": "classifier_mask", "config": {"allowed_labels": ["red", "blue"]}}])
    assert z.score == pytest.approx(0.5) and z.label in ("red", "blue")


def test_rank_rollup_climbs_to_the_lowest_rank_that_passes() -> None:
    spec = [{"name": "rank_rollup", "config": {"threshold": 0.7}}]
    confident = answer([0.1, 0.8, 0.1], spec)
    assert (confident.label, confident.rank, confident.flags) == ("green", None, [])
    cool = answer([0.2, 0.45, 0.35], spec)  # green 0.45 < 0.7, but cool = green + blue = 0.8
    assert (cool.label, cool.rank, cool.taxon_path) == ("cool", "temperature", ["colour", "cool"])
    assert cool.score == pytest.approx(0.8) and cool.flags == ["rank_rollup"]
    root = answer([0.4, 0.35, 0.25], [{"name": "rank_rollup", "config": {"threshold": 0.9}}])
    assert (root.label, root.rank) == ("colour", "root") and root.score == pytest.approx(1.0)


def test_mask_then_rollup_compose_in_order() -> None:
    specs = [{"name": "classifier_mask", "config": {"allowed_labels": ["green", "blue"]}},
             {"name": "rank_rollup", "config": {"threshold": 0.9}}]
    a = answer([0.5, 0.3, 0.2], specs)  # masked: green 0.6, blue 0.4 -> cool 1.0
    assert (a.label, a.flags) == ("cool", ["classifier_mask", "rank_rollup"])


def test_classifier_filters_are_typed_hashed_and_scoped() -> None:
    with pytest.raises(FilterConfigError, match="threshold"):
        FilterSet.from_specs([{"name": "rank_rollup", "config": {"threshold": 0}}])
    with pytest.raises(FilterConfigError, match="action: Extra inputs"):
        FilterSet.from_specs([{"name": "classifier_mask", "config": {"allowed_labels": ["x"], "action": "drop"}}])
    fs = FilterSet.from_specs([{"name": "rank_rollup", "config": {"threshold": 0.5, "classifier": "other"}}])
    assert fs.hash != FilterSet().hash and fs.has_classifier_filters
    assert answer([0.4, 0.3, 0.3], fs.as_specs()).flags == []  # scoped to another classifier
    # Detection filtering ignores them.
    from model_store.core.filters import DetectionArrays

    dets = DetectionArrays(np.zeros((2, 4)), np.array([0.5, 0.6]), np.array([0, 1]), ["a", "b"], 10, 10)
    kept, flags = fs.apply(dets)
    assert kept.all() and flags == [[], []]
