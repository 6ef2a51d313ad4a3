"""Publishing what users export: graph inspection, derived configs, contradictions, static batches."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from model_store import ConfigError, ModelRunError, ModelStore, parse_config
from model_store.core.preprocess import letterbox
from tests.fixtures.onnx_models import (
    LABELS,
    EXPECTED_640x480,
    constant_model,
    fixture_config,
    ultralytics_metadata,
    yolov5_output,
    yolov8_output,
)


@pytest.fixture
def store(tmp_path):
    return ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))


@pytest.fixture
def ultralytics_static(tmp_path):
    """Like `YOLO(...).export(format="onnx")`: static batch 1, fixed 320x320, Ultralytics metadata."""
    return constant_model(yolov8_output(), tmp_path / "yolov8n.onnx", batch=1, metadata=ultralytics_metadata())


def frame(w: int = 640, h: int = 480) -> np.ndarray:
    rng = np.random.default_rng(w * h)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_ultralytics_export_publishes_with_no_config(store, ultralytics_static):
    mv = store.publish(ultralytics_static, "yolov8n", "1")
    cfg = mv.config
    assert cfg.labels == LABELS and cfg.input_size == (320, 320) and cfg.output_layout == "yolov8"
    assert (cfg.score_threshold, cfg.nms_iou, cfg.max_detections) == (0.25, 0.7, 300)  # Ultralytics predict defaults
    assert cfg.preprocess.letterbox == "square" and cfg.preprocess.interpolation == "linear"
    assert not cfg.preprocess.reduced_decode and cfg.stride == 32
    g = cfg.graph
    assert g.producer == "ultralytics" and g.fixed_batch == 1 and g.static_hw == (320, 320)
    assert g.input.shape == [1, 3, 320, 320] and g.outputs[0].shape == [1, 6, 6]
    assert g.metadata["task"] == "detect" and "names" not in g.metadata
    # A given config overrides what was derived, field by field.
    mv2 = store.publish(ultralytics_static, "yolov8n", "2", {"score_threshold": 0.5, "preprocess": {"pad_value": 0}})
    assert mv2.config.score_threshold == 0.5 and mv2.config.preprocess.pad_value == 0
    assert mv2.config.preprocess.letterbox == "square" and mv2.config.nms_iou == 0.7


def test_yolov5_export_gets_yolov5_defaults(store, tmp_path):
    path = constant_model(yolov5_output(), tmp_path / "yolov5n.onnx", batch=1,
                          metadata={"stride": "32", "names": str(dict(enumerate(LABELS)))})
    cfg = store.publish(path, "yolov5n", "1").config
    assert cfg.graph.producer == "yolov5" and cfg.output_layout == "yolov5"
    assert (cfg.nms_iou, cfg.max_detections, cfg.preprocess.letterbox) == (0.45, 1000, "square")  # detect.py


def test_dynamic_ultralytics_export_letterboxes_rect(store, tmp_path):
    path = constant_model(yolov8_output(), tmp_path / "dyn.onnx", dynamic_hw=True, metadata=ultralytics_metadata())
    cfg = store.publish(path, "dyn", "1").config
    assert cfg.graph.fixed_batch is None and cfg.graph.static_hw is None
    assert cfg.preprocess.letterbox == "rect" and cfg.input_size == (320, 320)  # imgsz metadata


def test_megadetector_preset(store, tmp_path):
    three_classes = np.concatenate([yolov5_output(), np.zeros((6, 1), np.float32)], axis=1)  # 5 + 3 columns
    path = constant_model(three_classes, tmp_path / "md.onnx", dynamic_hw=True,
                          metadata={"stride": "64", "names": "{0: 'animal', 1: 'person', 2: 'vehicle'}"})
    cfg = store.publish(path, "md", "5a", preset="megadetector-v5").config
    assert cfg.labels == ["animal", "person", "vehicle"] and cfg.input_size == (1280, 1280) and cfg.stride == 64
    assert cfg.preprocess.letterbox == "rect" and cfg.score_threshold == 0.005 and cfg.output_layout == "yolov5"


@pytest.mark.parametrize("override, message", [
    ({"labels": ["a", "b", "c"]},
     "3 labels with output_layout yolov8 mean an output of [N, 7, anchors], but the graph's output is "
     "output0 [1, 6, 6] float32"),
    ({"input_size": 640}, "input_size is 640x640 but the graph's input images [1, 3, 320, 320] float32 is fixed at "
                          "320x320"),
    ({"preprocess": {"letterbox": "rect"}}, "preprocess.letterbox is 'rect' but the graph's input"),
    ({"preprocess": {"input_dtype": "uint8"}}, "preprocess.input_dtype is uint8 but the graph's input"),
])
def test_contradictions_are_refused_at_publish_naming_both_values(store, ultralytics_static, override, message):
    with pytest.raises(ConfigError) as err:
        store.publish(ultralytics_static, "bad", "1", override)
    text = str(err.value)
    assert message in text and "\n" not in text and "(got {" not in text  # one line, not a dict dump
    assert store.list_models() == []


def test_layout_contradiction(store, tmp_path):
    seven = np.concatenate([yolov5_output(), np.zeros((1, 7), np.float32)])  # [1, 7, 7]: 2 labels, yolov5 only
    path = constant_model(seven, tmp_path / "v5.onnx", batch=1)
    with pytest.raises(ConfigError, match=r"2 labels with output_layout yolov8 mean an output of \[N, 6, anchors\], "
                                          r"but the graph's output is output0 \[1, 7, 7\] float32; "
                                          r"it fits yolov5, yolox"):
        store.publish(path, "v5", "1", {**fixture_config("yolov8"), "input_size": 320})


def test_export_without_names_asks_for_labels(store, tmp_path):
    path = constant_model(yolov8_output(), tmp_path / "anon.onnx", batch=1)
    with pytest.raises(ConfigError, match='no class names .* pass --config with "labels"'):
        store.publish(path, "anon", "1")
    # [1, 6, 6] for 2 labels is yolov8 (4 + 2 rows) or a [K, 6] end-to-end head: without metadata, the user says
    with pytest.raises(ConfigError, match=r'fits the layouts yolov8, end2end, rtdetr .* --config with "output_layout"'):
        store.publish(path, "anon", "1", {"labels": LABELS})
    cfg = store.publish(path, "anon", "1", {"labels": LABELS, "output_layout": "yolov8"}).config  # the rest is derived
    assert cfg.output_layout == "yolov8" and cfg.input_size == (320, 320)


def test_static_batch_graph_runs_any_batch_size(store, ultralytics_static):
    store.publish(ultralytics_static, "yolov8n", "1")
    det = store.load_detector("yolov8n:1")
    assert det.backend.fixed_batch == 1
    det.warmup()  # what a Serve replica and a batch actor do
    results = det.predict_batch([frame() for _ in range(5)])
    assert len(results) == 5
    for res in results:
        assert [d.label for d in res.detections] == [e[0] for e in EXPECTED_640x480]
        got = [(d.score, *d.box_px) for d in res.detections]
        assert np.allclose(got, [e[1:] for e in EXPECTED_640x480], atol=1e-3)


def test_a_failing_model_names_itself_its_input_and_the_graph(store, ultralytics_static):
    store.publish(ultralytics_static, "yolov8n", "1")
    det = store.load_detector("yolov8n:1")
    with pytest.raises(ModelRunError) as err:
        det.infer([np.zeros((100, 100, 3), np.uint8)])
    text = str(err.value)
    assert "model yolov8n:1 failed on an input of shape [1, 3, 100, 100] float32" in text
    assert "the graph expects images [1, 3, 320, 320] tensor(float)" in text and "\n" not in text


@pytest.mark.parametrize("size, stride, expected_hw", [
    ((1920, 1080), 32, (384, 640)), ((97, 61), 32, (416, 640)), ((4000, 3000), 32, (480, 640)),
    ((1000, 1000), 32, (640, 640)), ((1920, 1080), 64, (768, 1280)), ((720, 1280), 32, (640, 384)),
])
def test_rect_letterbox_pads_to_the_stride_only(size, stride, expected_hw):
    cfg = parse_config({**fixture_config("yolov8"), "weights": {"file": "m.onnx", "sha256": "0" * 64},
                        "preprocess": {"letterbox": "rect"}, "stride": stride})
    side = 1280 if stride == 64 else 640
    out, meta = letterbox(frame(*size), (side, side), cfg.preprocess, stride)
    assert out.shape[:2] == expected_hw
    # boxes map back: the image's own corners land on the original corners
    assert meta.pad_x + size[0] * meta.scale_x == pytest.approx(expected_hw[1] - meta.pad_x, abs=1)


def test_default_resize_is_the_reference_linear_filter():
    cfg = parse_config({**fixture_config("yolov8"), "weights": {"file": "m.onnx", "sha256": "0" * 64}})
    img = frame(1920, 1080)
    out, _ = letterbox(img, (320, 320), cfg.preprocess)
    ref = cv2.resize(img, (320, 180), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(out[70:250], ref)  # 70 px of padding above, as Ultralytics rounds it


def test_legacy_letterbox_booleans_still_parse():
    base = {**fixture_config("yolov8"), "weights": {"file": "m.onnx", "sha256": "0" * 64}}
    assert parse_config({**base, "preprocess": {"letterbox": True}}).preprocess.letterbox == "square"
    assert parse_config({**base, "preprocess": {"letterbox": False}}).preprocess.letterbox == "stretch"


def cli(*args, store):
    return subprocess.run([sys.executable, "-m", "trapline.cli", "models", *args, "--store", str(store)],
                          capture_output=True, text=True, timeout=120)


def test_cli_publish_without_config_and_show_the_graph(tmp_path, ultralytics_static):
    store = tmp_path / "store"
    r = cli("publish", str(ultralytics_static), "--name", "yolov8n", "--version", "1", "--dry-run", store=store)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout[:r.stdout.index("\n}\n") + 2])
    assert shown["labels"] == LABELS and shown["nms_iou"] == 0.7 and len(shown["weights"]["sha256"]) == 64
    assert "graph input:  images [1, 3, 320, 320]" in r.stdout and not store.exists()  # nothing published
    r = cli("publish", str(ultralytics_static), "--name", "yolov8n", "--version", "1", store=store)
    assert r.returncode == 0, r.stderr
    assert "2 labels (deer, fox), input 320x320, stride 32, letterbox square, layout yolov8" in r.stdout
    assert "graph input:  images [1, 3, 320, 320] float32 (static batch 1" in r.stdout
    r = cli("show", "yolov8n:1", store=store)
    assert r.returncode == 0 and "producer:     ultralytics" in r.stdout
    assert "graph output: output0 [1, 6, 6]" in r.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"labels": ["a", "b", "c"]}))
    r = cli("publish", str(ultralytics_static), "--name", "yolov8n", "--version", "2", "--config", str(bad),
            store=store)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "3 labels with output_layout yolov8 mean an output of [N, 7, anchors]" in r.stderr
