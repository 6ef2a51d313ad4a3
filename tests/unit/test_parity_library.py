"""The library path agrees with Ultralytics and YOLOv5 on their own exports (no Ray).

Each reference export is published with no config (MegaDetector-style: its preset), exactly as a
user would, and run on the reference images through the same bytes -> record path the service
and batch jobs take. See tests/fixtures/parity.py for the yardstick.
"""

from __future__ import annotations

import pytest

from model_store import ModelStore
from model_store.core.imaging import DEFAULT_MAX_PIXELS
from tests.fixtures.parity import (
    IMAGES,
    Agreement,
    class_ties,
    compare,
    expected,
    image_names,
    model_names,
    product_boxes,
    reference_boxes,
    reference_store,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    return reference_store(tmp_path_factory.mktemp("parity"))


def test_fixtures_cover_every_family_static_and_dynamic():
    kinds = {(m["family"], m["batch"]) for m in expected()["models"].values()}
    assert {("yolov8", "static"), ("yolov8", "dynamic"), ("yolo11", "static"), ("yolo11", "dynamic"),
            ("yolov5", "static"), ("yolov5", "dynamic"), ("mdv5", "dynamic")} <= kinds
    # the comparison is not vacuous: every model has reference boxes above the bar on most images
    for name, spec in expected()["models"].items():
        boxed = [img for img in spec["images"].values() if any(b["score"] >= 0.3 for b in img["boxes"])]
        assert len(boxed) >= len(spec["images"]) - 1, name


@pytest.mark.parametrize("name", model_names())
def test_library_matches_the_reference_predictions(store, name):
    det = store.load_detector(f"{name}:1")
    spec = expected()["models"][name]
    total = Agreement()
    for image in image_names():
        data = (IMAGES / image).read_bytes()
        prepared, meta = det.prepare_bytes(data, DEFAULT_MAX_PIXELS)
        # the same letterbox as the reference: square for static graphs, stride-padded rect where it used one
        assert [1, 3, *prepared.shape[:2]] == spec["images"][image]["input_shape"], image
        [raw] = det.infer([prepared])
        record = det.postprocess(raw, meta)
        total += compare(reference_boxes(name, image), product_boxes(record), f"{name}/{image}",
                         class_ties(det, data))
    print(f"library {name}: {total.summary()}")
    assert total.ok, total.misses + total.extras


def test_a_formed_batch_matches_one_by_one(store):
    """Static-batch graphs run formed batches (chunked); mixed frame shapes are grouped (rect)."""
    for name in ("yolov8n_static", "yolov8n_dynamic"):
        det = store.load_detector(f"{name}:1")
        prepared = [det.prepare_bytes((IMAGES / image).read_bytes(), DEFAULT_MAX_PIXELS) for image in image_names()]
        batch = det.infer([p for p, _ in prepared])
        for (p, meta), raw in zip(prepared, batch, strict=True):
            [single] = det.infer([p])
            assert raw.shape == single.shape
            assert abs(raw - single).max() < 1e-3, name


def test_the_yardstick_refuses_a_shifted_box_a_score_off_by_more_than_002_and_an_extra_box():
    from tests.fixtures.parity import Box, Tie

    ref = [Box(0, 0.80, (100.0, 100.0, 200.0, 200.0)), Box(1, 0.50, (300.0, 300.0, 340.0, 340.0))]
    assert compare(ref, list(ref)).ok
    assert compare(ref, [Box(0, 0.81, (101.0, 100.0, 201.0, 200.0)), ref[1]]).ok  # IoU 0.98, |dscore| 0.01
    shifted = compare(ref, [Box(0, 0.80, (106.0, 100.0, 206.0, 200.0)), ref[1]])  # IoU 0.89
    assert (shifted.matched, len(shifted.misses)) == (1, 1)
    rescored = compare(ref, [Box(0, 0.83, ref[0].xyxy), ref[1]])
    assert rescored.matched == 1 and not rescored.ok
    relabelled = compare(ref, [Box(2, 0.80, ref[0].xyxy), ref[1]])
    assert relabelled.matched == 1 and relabelled.extras  # the wrong-class box is also an extra
    # Another class passes only at an anchor where the model's output ties it with the reference's class.
    assert compare(ref, [Box(2, 0.80, ref[0].xyxy), ref[1]], ties=[Tie(ref[0].xyxy, frozenset({0, 2}))]).ok
    assert not compare(ref, [Box(2, 0.80, ref[0].xyxy), ref[1]], ties=[Tie(ref[0].xyxy, frozenset({2, 3}))]).ok
    assert not compare(ref, [Box(2, 0.80, ref[0].xyxy), ref[1]], ties=[Tie(ref[1].xyxy, frozenset({0, 2}))]).ok
    extra = compare(ref, [*ref, Box(0, 0.31, (0.0, 0.0, 20.0, 20.0))])
    assert extra.matched == 2 and len(extra.extras) == 1
    assert compare(ref, [*ref, Box(0, 0.29, (0.0, 0.0, 20.0, 20.0))]).ok  # under the bar: not counted
