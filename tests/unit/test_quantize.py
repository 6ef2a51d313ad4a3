"""`trapline models quantize`: a real int8 version of the demo detector, its report, and its refusals.

The calibration directory holds rendered scenes encoded as JPEG, so calibration and comparison
go through the same decode and letterbox as served images.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from model_store import ModelStore
from model_store.core.imaging import encode_jpeg
from model_store.demo.publish import ASSETS, DEMO_NAME, TORCH_NAME, publish_demo
from model_store.demo.scenes import LABELS, render_dataset
from model_store.store.quantize import (
    QuantizeError,
    QuantizeRefusedError,
    calibration_batches,
    decode_tail,
    quantize_version,
    split_images,
)
from tests.fixtures.onnx_models import ultralytics_metadata

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory) -> Path:
    """16 rendered 16:9 scenes as JPEG files (12 calibrate, 4 held out at the default fraction 0.3)."""
    d = tmp_path_factory.mktemp("calibrate")
    for i, (rgb, _) in enumerate(render_dataset(4242, 16, 640, 360)):
        (d / f"scene_{i:03d}.jpg").write_bytes(encode_jpeg(rgb))
    (d / "notes.txt").write_text("not an image: ignored")
    return d


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    s = ModelStore(str(tmp_path_factory.mktemp("store")), cache_dir=str(tmp_path_factory.mktemp("cache")))
    publish_demo(s)
    return s


@pytest.fixture(scope="module")
def quantized(store, calib_dir):
    """demo-detector:2 quantized once for the module (the slow part: a few seconds)."""
    # 0.8 rather than the default 0.9: int8 kernels differ between CPUs (VNNI or not), and 4 held-out
    # images hold only a dozen boxes. The measured rate is asserted to be a real number below.
    return quantize_version(store, f"{DEMO_NAME}:2", calib_dir, "2-int8", min_match=0.8, timing_repeats=1)


def run_cli(*args: str, store: ModelStore) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trapline.cli", "models", *args, "--store", store.root],
                          capture_output=True, text=True, timeout=180)


def graph_ops(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_quantize_publishes_an_int8_version_that_agrees(store, quantized):
    report = quantized
    assert report.candidate == f"{DEMO_NAME}:2-int8" and report.parent == f"{DEMO_NAME}:2"
    assert (report.calibration_images, report.heldout_images, report.skipped_images) == (12, 4, 0)
    assert report.reference_boxes >= 5  # the rate below is measured on real boxes, not vacuous
    assert report.match_rate == report.matched_boxes / report.reference_boxes
    assert 0.8 <= report.match_rate <= 1.0 and report.map50 >= 0.8
    assert 0.0 <= report.mean_abs_dscore <= 0.02 and report.parent_ms > 0 and report.int8_ms > 0
    assert report.tail_nodes_float > 0

    parent, mv = store.get(f"{DEMO_NAME}:2"), store.get(f"{DEMO_NAME}:2-int8")
    skip = {"weights", "graph", "description"}
    assert mv.config.model_dump(exclude=skip) == parent.config.model_dump(exclude=skip)
    assert mv.config.description.startswith(f"int8 of {DEMO_NAME}:2")
    assert store.resolve(f"{DEMO_NAME}@production").version == "1"  # no explicit alias moved

    _, path = store.fetch(mv.ref)
    ops = graph_ops(path)
    assert QDQ_OPS <= set(ops) and "Conv" in ops
    model = onnx.load(str(path))
    int8_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and t.dims]
    assert int8_weights and any(len(t.dims) == 4 for t in int8_weights)  # conv kernels are int8

    det = store.load_detector(mv.ref, threads=1)
    images = [rgb for rgb, _ in render_dataset(99, 3, 640, 480)]
    assert sum(len(r.detections) for r in det.predict_batch(images)) > 0

    card = store.card(mv.ref)
    assert "| box match rate vs demo-detector:2" in card and f"{report.match_rate:.1%}" in card
    assert "trapline models quantize demo-detector:2 --calibrate" in card and "--version 2-int8" in card


def test_refusal_below_min_match_publishes_nothing(store, calib_dir):
    r = run_cli("quantize", f"{DEMO_NAME}:2", "--calibrate", str(calib_dir), "--version", "2-refused",
                "--min-match", "1.01", store=store)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refused:") and "--min-match 1.01" in lines[0]
    assert "nothing published" in lines[0] and r.stdout == ""
    assert "2-refused" not in store.list_versions(DEMO_NAME)
    assert not [p for p in (Path(store.root) / DEMO_NAME).iterdir() if "refused" in p.name]  # no staging left


def test_cli_force_publishes_below_threshold_and_prints_the_report(store, calib_dir):
    r = run_cli("quantize", f"{DEMO_NAME}:1", "--calibrate", str(calib_dir), "--version", "1-int8",
                "--min-match", "1.01", "--force", "--holdout-fraction", "0.25", store=store)
    assert r.returncode == 0, r.stderr
    assert f"published {DEMO_NAME}:1-int8, int8 of {DEMO_NAME}:1 (forced" in r.stdout
    assert "| mAP@0.5 of int8" in r.stdout and "ms/image" in r.stdout
    assert "1-int8" in store.list_versions(DEMO_NAME)


def test_static_batch_export_quantizes_and_keeps_its_batch(store, calib_dir, tmp_path):
    """An Ultralytics-style export with a static batch (here 2: every calibration batch must be padded)."""
    model = onnx.load(str(ASSETS / "v2" / "model.onnx"))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 2
    del model.graph.value_info[:]
    for key, value in ultralytics_metadata(list(LABELS), imgsz=320, batch=2).items():
        model.metadata_props.add(key=key, value=value)
    static = tmp_path / "static.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(model), str(static))
    store.publish(static, "static-b2", "1")  # no config: derived from the Ultralytics metadata
    assert store.get("static-b2:1").config.graph.fixed_batch == 2

    report = quantize_version(store, "static-b2:1", calib_dir, "1-int8", min_match=0.0, timing_repeats=1)
    assert report.reference_boxes > 0 and report.heldout_images == 4
    mv = store.get("static-b2:1-int8")
    assert mv.config.graph.fixed_batch == 2 and mv.config.graph.producer == "ultralytics"  # metadata kept
    assert QDQ_OPS <= set(graph_ops(store.fetch(mv.ref)[1]))
    det = store.load_detector(mv.ref, threads=1)
    results = det.predict_batch([rgb for rgb, _ in render_dataset(5, 3, 640, 360)])  # 3 images: one padded pass
    assert len(results) == 3


REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


@pytest.mark.parametrize("export, fixed_batch, letterbox", [
    ("yolov8n_static", 1, "square"),  # what `YOLO(...).export(format="onnx")` gives by default
    ("yolov8n_dynamic", None, "rect"),  # dynamic=True: rect letterbox, one input shape per frame shape
])
def test_reference_ultralytics_exports_quantize(store, tmp_path, export, fixed_batch, letterbox):
    """The real exports (random weights, so agreement is not the point here: it is measured, not required)."""
    weights = REFERENCE / f"{export}.onnx"
    if not weights.exists():
        pytest.skip(f"{weights} is not in this checkout (git LFS or an older branch)")
    calib = tmp_path / "calib"
    calib.mkdir()
    scenes = render_dataset(11, 6, 640, 360) + render_dataset(12, 4, 480, 360)  # 16:9 and 4:3 frames
    for i, (rgb, _) in enumerate(scenes):
        (calib / f"s{i:02d}.jpg").write_bytes(encode_jpeg(rgb))
    name = export.replace("_", "-")
    store.publish(weights, name, "1")
    parent = store.get(f"{name}:1").config
    assert (parent.graph.fixed_batch, parent.preprocess.letterbox) == (fixed_batch, letterbox)

    report = quantize_version(store, f"{name}:1", calib, "1-int8", min_match=0.0, timing_repeats=1)
    assert (report.calibration_images, report.heldout_images) == (7, 3) and report.reference_boxes > 0
    mv = store.get(f"{name}:1-int8")
    assert mv.config.graph.fixed_batch == fixed_batch and mv.config.graph.producer == "ultralytics"
    assert mv.config.preprocess.letterbox == letterbox and mv.config.labels == parent.labels
    assert QDQ_OPS <= set(graph_ops(store.fetch(mv.ref)[1]))
    det = store.load_detector(mv.ref, threads=1)
    assert len(det.predict_batch([rgb for rgb, _ in scenes[5:7]])) == 2  # one 16:9 and one 4:3 frame


def test_refusals_publish_nothing(store, calib_dir, tmp_path):
    with pytest.raises(QuantizeError, match="torch-export-yolo"):
        quantize_version(store, f"{TORCH_NAME}:2", calib_dir, "2-int8")
    with pytest.raises(Exception, match="already exists"):
        quantize_version(store, f"{DEMO_NAME}:2", calib_dir, "1")
    (tmp_path / "z_good.jpg").write_bytes(encode_jpeg(np.zeros((64, 64, 3), np.uint8)))
    with pytest.raises(QuantizeError, match="at least 2 images"):
        quantize_version(store, f"{DEMO_NAME}:2", tmp_path, "2-few")
    for name in ("a.jpg", "b.jpg", "c.jpg"):  # sorted first: the calibration share, none of them an image
        (tmp_path / name).write_bytes(b"not a jpeg")
    with pytest.raises(QuantizeError, match="none of the 3 calibration images"):
        quantize_version(store, f"{DEMO_NAME}:2", tmp_path, "2-broken")
    assert not {"2-few", "2-broken"} & set(store.list_versions(DEMO_NAME))
    assert issubclass(QuantizeRefusedError, QuantizeError)


def test_split_is_deterministic_and_spread():
    paths = [Path(f"img_{i:02d}.jpg") for i in range(10)]
    calib, held = split_images(paths, 0.3)
    assert [p.name for p in held] == ["img_03.jpg", "img_06.jpg", "img_09.jpg"]
    assert sorted(calib + held) == paths and split_images(paths, 0.3) == (calib, held)
    assert len(split_images(paths[:2], 0.3)[1]) == 1  # always at least one held out
    with pytest.raises(QuantizeError, match="between 0 and 1"):
        split_images(paths, 1.0)


def test_calibration_batches_group_shapes_and_fill_static_batches():
    """Rect letterbox gives several input shapes; each batch holds one shape and exactly `batch` items."""
    wide, tall = np.zeros((192, 320, 3), np.uint8), np.ones((320, 256, 3), np.uint8)
    batches = list(calibration_batches(iter([wide, tall, wide, wide, tall]), 2))
    assert [(len(b), b[0].shape) for b in batches] == [(2, wide.shape), (2, tall.shape), (2, wide.shape)]
    assert all(len({x.shape for x in b}) == 1 for b in batches)
    assert [len(b) for b in calibration_batches(iter([wide] * 3), 1)] == [1, 1, 1]


def test_decode_tail_is_the_box_decoding_only():
    model = onnx.load(str(ASSETS / "v2" / "model.onnx"))
    tail = set(decode_tail(onnx.shape_inference.infer_shapes(model)))
    by_name = {n.name: n.op_type for n in model.graph.node}
    ops = {by_name[n] for n in tail}
    assert {"Sigmoid", "Concat"} <= ops and "Conv" not in ops  # every conv is quantized; scores are not
