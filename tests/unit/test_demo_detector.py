"""The shipped demo detectors really detect: mAP@0.5 on a held-out rendered set, via the product core."""

from __future__ import annotations

import numpy as np
import pytest

from model_store import ModelStore
from model_store.core.metrics import iou_matrix
from model_store.demo.evaluate import HELD_OUT_SEED, evaluate_detector
from model_store.demo.publish import DEMO_NAME, TORCH_NAME, publish_demo
from model_store.demo.scenes import render_dataset


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> ModelStore:
    store = ModelStore(str(tmp_path_factory.mktemp("demo-store")))
    publish_demo(store)
    return store


def test_published_layout_and_aliases(demo_store):
    assert demo_store.list_versions(DEMO_NAME) == ["1", "2"]
    assert demo_store.resolve(DEMO_NAME).version == "1"  # production starts at 1: promote 2 to hot-swap
    assert "mAP" in demo_store.card(f"{DEMO_NAME}:2") or "heldout" in demo_store.card(f"{DEMO_NAME}:2")
    assert publish_demo(demo_store) == []  # idempotent


def test_demo_v2_map_at_least_half(demo_store):
    det = demo_store.load_detector(f"{DEMO_NAME}:2", threads=2)
    result = evaluate_detector(det, n_images=120, seed=HELD_OUT_SEED)
    print(f"demo-detector:2 held-out mAP@0.5 = {result['map50']:.3f} on {result['n_objects']} objects")
    assert result["map50"] >= 0.5


def test_demo_v1_detects(demo_store):
    det = demo_store.load_detector(f"{DEMO_NAME}:1", threads=2)
    result = evaluate_detector(det, n_images=60, seed=HELD_OUT_SEED)
    assert result["map50"] >= 0.3


def test_torch_export_backend_matches_onnx(demo_store):
    """The second backend runs the same network: same boxes (IoU > 0.95) and scores (±0.01)."""
    onnx_det = demo_store.load_detector(f"{DEMO_NAME}:2", threads=2)
    torch_det = demo_store.load_detector(f"{TORCH_NAME}:2", threads=2)
    assert torch_det.config.backend == "torch-export-yolo" and onnx_det.config.backend == "onnx-yolo"
    images = [img for img, _ in render_dataset(HELD_OUT_SEED + 1, 6, 640, 480)]
    total = 0
    for a, b in zip(onnx_det.predict_batch(images), torch_det.predict_batch(images), strict=True):
        assert [d.label for d in a.detections] == [d.label for d in b.detections]
        if a.detections:
            ious = iou_matrix(np.array([d.box_px for d in a.detections]), np.array([d.box_px for d in b.detections]))
            assert np.diag(ious).min() > 0.95
            assert np.allclose([d.score for d in a.detections], [d.score for d in b.detections], atol=0.01)
        total += len(a.detections)
    assert total > 0


def test_reduced_jpeg_decode_gives_the_same_detections(demo_store, tmp_path):
    """prepare_bytes (JPEG decoded at 1/2 scale) vs full decode: same objects, boxes in original pixels."""
    from model_store.core.imaging import decode_image
    from model_store.demo.scenes import write_samples

    det = demo_store.load_detector(f"{DEMO_NAME}:2", threads=2)
    truth = write_samples(tmp_path, n=6, size=(1920, 1080))
    compared = 0
    for path in sorted(truth.parent.glob("*.jpg")):
        data = path.read_bytes()
        full = det.predict_batch([decode_image(data)])[0]
        prepared, meta = det.prepare_bytes(data, 50_000_000)
        assert (meta.width, meta.height) == (1920, 1080)
        reduced = det.postprocess(det.infer([prepared])[0], meta)
        strong = [d for d in full.detections if d.score > 0.4]
        for d in strong:
            ious = iou_matrix(np.array([d.box_px]), np.array([r.box_px for r in reduced.detections] or [[0, 0, 0, 0]]))
            assert ious.max() > 0.85, (path.name, d)
            compared += 1
    assert compared > 0
