"""The detector core against hand-checked expected boxes, in both YOLO output layouts."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures.onnx_models import EXPECTED_640x480


def _as_tuples(result):
    return [(d.label, round(d.score, 2), *(round(v, 1) for v in d.box_px)) for d in result.detections]


@pytest.mark.parametrize("version", ["1", "2"], ids=["yolov8-layout", "yolov5-layout"])
def test_expected_boxes(local_store, version):
    det = local_store.load_detector(f"fixture:{version}")
    img = np.zeros((480, 640, 3), np.uint8)
    [res] = det.predict_batch([img])
    assert _as_tuples(res) == [(lbl, s, *box) for lbl, s, *box in EXPECTED_640x480]
    first = res.detections[0]
    assert first.bbox == pytest.approx((220 / 640, 180 / 480, 200 / 640, 120 / 480))
    assert res.model.name == "fixture" and res.model.version == version
    assert res.model.sha256 == local_store.get(f"fixture:{version}").config.weights.sha256
    assert (res.width, res.height) == (640, 480)


def test_dynamic_batch_with_mixed_sizes(local_store):
    det = local_store.load_detector("fixture:1")
    images = [np.zeros((480, 640, 3), np.uint8), np.zeros((100, 100, 3), np.uint8), np.zeros((480, 640, 3), np.uint8)]
    results = det.predict_batch(images)
    assert len(results) == 3
    assert _as_tuples(results[0]) == _as_tuples(results[2])
    # A square image is not padded: box A (x 110..210, y 130..190 in 320 px) maps at scale 100/320.
    a = results[1].detections[0]
    assert a.box_px == pytest.approx((110 * 100 / 320, 130 * 100 / 320, 210 * 100 / 320, 190 * 100 / 320), abs=1e-3)


def test_filters_record_hash_and_flags(local_store):
    det = local_store.load_detector("fixture:1")
    img = np.zeros((480, 640, 3), np.uint8)
    [plain] = det.predict_batch([img])
    [masked] = det.predict_batch([img], filters={"class_mask": {"allowed_labels": ["deer"]}})
    assert [d.label for d in masked.detections] == ["deer", "deer"]
    assert [d.label for d in masked.dropped] == ["fox", "fox"]
    assert all(d.flags == ["class_mask"] for d in masked.dropped)
    assert masked.filters.names == ["class_mask"] and masked.filters.hash != plain.filters.hash
    [flagged] = det.predict_batch([img], filters={"min_size": {"min_area_fraction": 0.01, "action": "flag"}})
    assert len(flagged.detections) == 4
    assert [d.flags for d in flagged.detections] == [[], [], ["min_size"], []]  # the 40x40 fox is 0.5%


def test_boxes_are_clipped_to_the_image():
    from model_store.core.preprocess import LetterboxMeta, unletterbox

    meta = LetterboxMeta(scale_x=1.0, scale_y=1.0, pad_x=10.0, pad_y=0.0, width=120, height=80)
    out = unletterbox(np.array([[0.0, -5.0, 200.0, 100.0]], np.float32), meta)
    assert out.tolist() == [[0.0, 0.0, 120.0, 80.0]]
