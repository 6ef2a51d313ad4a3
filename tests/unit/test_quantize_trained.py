"""`trapline models quantize` on a trained Ultralytics export with real detections (issue #24).

`tests/fixtures/reference/trained_demo_yolov8.onnx` is a YOLOv8 (narrow `n` scale) trained briefly on
the demo scenes and exported with Ultralytics' defaults (`build_trained.py` there). Calibration
images are rendered scenes from a seed it was not trained on, so the held-out share holds enough of
the parent's boxes to judge with the default gate: the test asserts what the command decides and
that its report explains it, not a number measured on one CPU.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ground.errors import QuantizeRefusedError
from model_store import ModelStore
from model_store.core.imaging import encode_jpeg
from model_store.demo.scenes import LABELS, render_dataset
from model_store.store.quantize import quantize_version
from model_store.store.quantize_report import FAIL, PASS, TOO_FEW, Gate

TRAINED = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "trained_demo_yolov8.onnx"
NAME = "trained-demo"

pytestmark = pytest.mark.skipif(not TRAINED.exists(), reason=f"{TRAINED} is not in this checkout")


def write_scenes(folder: Path, seed: int, n: int) -> Path:
    folder.mkdir(parents=True)
    for i, (rgb, _) in enumerate(render_dataset(seed, n, 640, 360)):
        (folder / f"scene_{i:03d}.jpg").write_bytes(encode_jpeg(rgb))
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    s = ModelStore(str(tmp_path_factory.mktemp("store")), cache_dir=str(tmp_path_factory.mktemp("cache")))
    s.publish(TRAINED, NAME, "1")  # no config: derived from the export, as a user would publish it
    return s


def test_the_export_is_a_trained_detector_with_real_detections(store):
    config = store.get(f"{NAME}:1").config
    assert config.labels == list(LABELS) and config.graph.producer == "ultralytics"
    assert config.graph.fixed_batch == 1 and config.preprocess.letterbox == "square"  # Ultralytics' default export
    detector = store.load_detector(f"{NAME}:1", threads=1)
    records = detector.predict_batch([rgb for rgb, _ in render_dataset(99, 12, 640, 360)])
    scores = [d.score for r in records for d in r.detections]
    assert len(scores) >= 6 and max(scores) >= 0.6  # spread scores, not a random head's near-ties
    assert len({d.class_id for r in records for d in r.detections if d.score >= 0.3}) >= 2


def test_int8_of_the_trained_export_is_judged_on_enough_boxes(store, tmp_path):
    """200 scenes: 60 held out hold well over the default --min-boxes 50, so the gate decides."""
    calib = write_scenes(tmp_path / "calib", 2026, 200)
    try:
        report, refused = quantize_version(store, f"{NAME}:1", calib, "1-int8", timing_repeats=1), None
    except QuantizeRefusedError as exc:
        report, refused = exc.report, exc
    gate = Gate()
    assert report.gate == gate and report.heldout_images == 60 and report.calibration_images == 140
    assert report.verdict != TOO_FEW and report.total.parent_boxes >= gate.min_boxes
    assert len([c for c in report.classes if c.parent_boxes]) >= 2
    assert report.total.parent_boxes == sum(c.parent_boxes for c in report.classes)
    assert 0.0 < report.map50 <= 1.0 and 0.0 <= report.mean_abs_dscore <= report.max_abs_dscore
    assert report.parent_ms > 0 and report.int8_ms > 0
    table = report.table()
    for c in report.classes:  # every class the parent found is in the printed report, with its figures
        assert f"| {c.label} | {c.parent_boxes} / {c.int8_boxes} | {c.matched} |" in table
    if report.verdict == PASS:
        assert refused is None and "1-int8" in store.list_versions(NAME)
        assert report.total.recall >= gate.min_recall and report.total.precision >= gate.min_precision
        int8 = store.load_detector(f"{NAME}:1-int8", threads=1)
        assert sum(len(r.detections) for r in int8.predict_batch([rgb for rgb, _ in render_dataset(99, 6, 640, 360)]))
    else:  # int8 really loses too much here: the refusal says which class and by how much
        assert report.verdict == FAIL and refused is not None and "1-int8" not in store.list_versions(NAME)
        assert report.shortfalls() and all(s in str(refused) for s in report.shortfalls())
        for c in (*report.classes, report.total):
            by_recall, by_precision = report.judged(c)
            below = (by_recall and c.recall < gate.min_recall) or (by_precision and c.precision < gate.min_precision)
            assert below == any(s.startswith(f"{c.label} ") for s in report.shortfalls())


def test_a_held_out_set_with_too_few_boxes_gets_no_verdict(store, tmp_path):
    """10 scenes: 3 held out, a handful of boxes. The command neither passes nor fails on them."""
    calib = write_scenes(tmp_path / "few", 7, 10)
    cmd = [sys.executable, "-m", "trapline.cli", "models", "quantize", f"{NAME}:1", "--calibrate", str(calib),
           "--version", "1-few", "--store", store.root]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"error: cannot judge {NAME}:1-few: {NAME}:1 finds ")
    assert "on the 3 held-out images, fewer than --min-boxes 50" in r.stderr and "--force" in r.stderr
    assert "| verdict | too few boxes to judge:" in r.stdout and "1-few" not in store.list_versions(NAME)
    r = subprocess.run([*cmd, "--force"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"published {NAME}:1-few, int8 of {NAME}:1 (forced: too few boxes to judge)" in r.stdout
