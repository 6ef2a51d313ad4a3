"""Filter registry and config.json validation."""

from __future__ import annotations

import numpy as np
import pytest

from model_store.core.config import ConfigError, parse_config
from model_store.core.filters import DetectionArrays, FilterConfigError, FilterSet
from tests.fixtures.onnx_models import fixture_config


def _cfg(**kw):
    return fixture_config("yolov8", **{"weights": {"file": "model.onnx", "sha256": "a" * 64}, **kw})


def test_config_roundtrip_and_square_input():
    cfg = parse_config(_cfg())
    assert cfg.input_size == (320, 320) and cfg.preprocess.letterbox and cfg.preprocess.pad_value == 114


@pytest.mark.parametrize("patch,needle", [
    ({"backend": "pickle"}, "backend"),
    ({"output_layout": "yolov9000"}, "output_layout"),
    ({"labels": ["a", "a"]}, "unique"),
    ({"input_size": 8}, "16..4096"),
    ({"weights": {"file": "../evil.onnx", "sha256": "a" * 64}}, "plain file name"),
    ({"preprocess": {"color_order": "cmyk"}}, "color_order"),
    ({"filters": [{"name": "class_mask", "config": {"allowed_labels": ["zebra"]}}]}, "zebra"),
    ({"filters": [{"name": "nope", "config": {}}]}, "unknown filter"),
])
def test_config_errors_name_field_and_value(patch, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_config(_cfg(**patch))


def test_config_not_json():
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_config(b"{nope")


def _dets():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 100, 100], [10, 10, 60, 60]], np.float32)
    return DetectionArrays(boxes, np.array([0.9, 0.4, 0.6], np.float32), np.array([0, 1, 0]), ["a", "b"], 100, 100)


def test_filters_apply_in_order_with_flags():
    fs = FilterSet.from_specs([
        {"name": "min_size", "config": {"min_area_fraction": 0.05}},
        {"name": "score", "config": {"min_score": 0.5, "action": "flag"}},
        {"name": "class_mask", "config": {"allowed_labels": ["a"]}},
    ])
    kept, flags = fs.apply(_dets())
    assert kept.tolist() == [False, False, True]
    assert flags == [["min_size"], ["score", "class_mask"], []]


def test_filter_hash_stable_and_sensitive():
    a = FilterSet.from_specs([{"name": "score", "config": {"min_score": 0.5}}])
    b = FilterSet.from_specs([{"name": "score", "config": {"min_score": 0.5, "action": "drop"}}])
    c = FilterSet.from_specs([{"name": "score", "config": {"min_score": 0.6}}])
    assert a.hash == b.hash != c.hash
    assert len(a.hash) == 16 and FilterSet().hash == FilterSet.from_specs([]).hash


def test_overrides_merge_add_remove():
    base = FilterSet.from_specs([{"name": "score", "config": {"min_score": 0.5}}])
    assert base.with_overrides({"score": {"min_score": 0.7}}).filters[0][1].min_score == 0.7
    assert base.with_overrides({"score": None}).names == []
    assert base.with_overrides({"min_size": {"min_area_fraction": 0.1}}).names == ["score", "min_size"]


@pytest.mark.parametrize("overrides,needle", [
    ({"score": {"min_score": 2}}, r"min_score.*2"),
    ({"score": {"minimum": 0.2}}, "minimum"),
    ({"wat": {}}, "unknown filter"),
    ({"score": 3}, "must be an object"),
])
def test_override_errors(overrides, needle):
    with pytest.raises(FilterConfigError, match=needle):
        FilterSet().with_overrides(overrides)
