"""The HTTP protocol pieces without a server: error mapping and pickling, response shape, filters, render."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from ground.errors import HttpError, OverloadedError
from model_store import (
    ChecksumError,
    ConfigError,
    Detection,
    FilterConfigError,
    ImageDecodeError,
    ImageDetections,
    InvalidRefError,
    ModelInfo,
    NotFoundError,
)
from model_store.core.imaging import decode_image
from model_store.core.records import FiltersApplied
from serve.answers import CropOut, DetectAnswer
from serve.protocol import core_error, detect_response, filter_overrides, load_error_kind
from serve.render import render_jpeg
from tests.fixtures.onnx_models import EXPECTED_640x480


def test_api_errors_survive_pickling_with_their_type_headers_and_fields():
    err = OverloadedError("full", headers={"Retry-After": "1"}, model="fixture")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is OverloadedError and back.status == 503 and back.headers == {"Retry-After": "1"}
    assert back.body("rid") == {"error": {"type": "overloaded", "message": "full", "model": "fixture",
                                          "request_id": "rid"}}


@pytest.mark.parametrize("exc, kind, status", [
    (ImageDecodeError("empty", "empty body"), "invalid_image", 400),
    (ImageDecodeError("truncated", "cut"), "invalid_image", 422),
    (ImageDecodeError("too_large", "bomb"), "invalid_image", 422),
    (FilterConfigError("bad"), "invalid_filter", 422),
    (InvalidRefError("bad ref"), "invalid_parameter", 422),
    (NotFoundError("no such version"), "not_found", 404),
])
def test_core_errors_carry_their_http_status(exc, kind, status):
    """No table between the core's errors and HTTP: each class carries its status (ground/errors.py)."""
    api = core_error(exc)
    assert api is exc and api.status == status and api.body()["error"]["type"] == kind
    if isinstance(exc, ImageDecodeError):
        assert api.body()["error"]["reason"] == exc.reason
        back = pickle.loads(pickle.dumps(exc))  # crosses the replica -> ingress boundary with its reason
        assert type(back) is ImageDecodeError and back.reason == exc.reason and back.status == status
    assert core_error(RuntimeError("boom")) is None


def test_load_error_kinds():
    assert load_error_kind(ChecksumError("x")) == "checksum_mismatch"
    assert load_error_kind(ConfigError("x")) == "invalid_config"
    assert load_error_kind(OSError("x")) == "load_failed"


RECORD = {
    "model": {"name": "m", "version": "1", "sha256": "ab"}, "width": 640, "height": 480,
    "detections": [{"label": "deer", "class_id": 0, "score": 0.5, "bbox": [0.1, 0.2, 0.3, 0.4],
                    "box_px": [64, 96, 256, 288], "flags": ["score"]},
                   {"label": "deer", "class_id": 0, "score": 0.9, "bbox": [0.5, 0.5, 0.1, 0.1],
                    "box_px": [320, 240, 384, 288]}],
    "dropped": [{"label": "fox", "class_id": 1, "score": 0.7, "bbox": [0, 0, 0.1, 0.1], "box_px": [0, 0, 64, 48],
                 "flags": ["min_size"]}],
    "filters": {"names": [], "hash": "h", "configs": []}, "timing_ms": {"inference": 1.0},
}


def test_detect_response_has_exactly_the_documented_shape():
    answer = DetectAnswer(ImageDetections.model_validate(RECORD))
    body = detect_response(answer, {"total": 2.0}).model_dump(mode="json", exclude_none=True)
    assert set(body) == {"model", "image", "detections", "filters", "timing_ms"}
    assert body["image"] == {"width": 640, "height": 480}
    assert set(body["detections"][0]) == {"label", "class_id", "score", "bbox"}
    verbose = detect_response(answer, {}, verbose=True).model_dump(mode="json", exclude_none=True)
    assert verbose["detections"][0]["flags"] == ["score"] and verbose["dropped"][0]["label"] == "fox"


def test_snips_find_their_detection_by_detection_index():
    """Snips are keyed by detection_index (rank among kept and dropped, highest score first), not position."""
    record = ImageDetections.model_validate(RECORD)
    assert record.kept_indices() == [2, 0]  # 0.5 ranks after 0.9 and the dropped 0.7
    assert [d for d, _ in record.ranked()][2] is record.detections[0]
    snip = CropOut(jpeg_base64="eA==", width=4, height=4)
    answer = DetectAnswer(record, snips={2: snip}, snips_truncated=True)
    body = detect_response(answer, {}).model_dump(mode="json", exclude_none=True)
    assert body["detections"][0]["crop"] == snip.model_dump() and "crop" not in body["detections"][1]
    assert body["crops_truncated"] is True


def test_a_response_that_breaks_its_declared_schema_is_caught_before_it_is_sent():
    from pydantic import ValidationError

    bad = ImageDetections.model_construct(model=ModelInfo.model_construct(name="m", version="1"), width=640,
                                          height=480, detections=[], dropped=[],
                                          filters=FiltersApplied(names=[], hash="h", configs=[]), timing_ms={})
    with pytest.raises(ValidationError, match="sha256"):
        detect_response(DetectAnswer(bad), {})


def test_filter_overrides_merge_json_and_shortcuts():
    assert filter_overrides(None) is None
    merged = filter_overrides({"score": {"action": "flag"}, "min_size": None},
                              {"min_score": 0.5, "labels": "deer, fox", "min_area_fraction": None})
    assert merged == {"score": {"action": "flag", "min_score": 0.5}, "min_size": None,
                      "class_mask": {"allowed_labels": ["deer", "fox"]}}
    with pytest.raises(FilterConfigError):
        filter_overrides(["score"])


def test_render_draws_boxes_and_returns_a_jpeg():
    rgb = np.zeros((480, 640, 3), np.uint8)
    dets = [Detection(label=e[0], class_id=0 if e[0] == "deer" else 1, score=e[1], box_px=e[2:6],
                      bbox=(e[2] / 640, e[3] / 480, (e[4] - e[2]) / 640, (e[5] - e[3]) / 480))
            for e in EXPECTED_640x480]
    out = decode_image(render_jpeg(rgb, dets))
    assert out.shape == rgb.shape
    edge = out[180:300, 219:223]  # the left edge of the deer box at x=220
    assert edge.max() > 100 and out[400:470, 10:100].max() < 30  # lines drawn, background untouched
    assert cv2.imdecode(np.frombuffer(render_jpeg(rgb, []), np.uint8), cv2.IMREAD_COLOR) is not None


def test_http_error_is_an_exception_with_a_default_status():
    assert HttpError("x").status == 500 and HttpError("x").type == "internal_error"
