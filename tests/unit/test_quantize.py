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

from ground.errors import QuantizeError, QuantizeRefusedError
from model_store import ModelStore
from model_store.core.agreement import Box
from model_store.core.imaging import encode_jpeg
from model_store.demo.publish import ASSETS, DEMO_NAME, TORCH_NAME, publish_demo
from model_store.demo.scenes import LABELS, render_dataset
from model_store.store import quantize as quantize_module
from model_store.store.quantize import (
    calibration_batches,
    decode_tail,
    quantize_version,
    split_images,
)
from model_store.store.quantize_report import FAIL, PASS, TOO_FEW, Gate, QuantizeReport, agree
from tests.fixtures.onnx_models import ultralytics_metadata

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
# 4 held-out images hold about a dozen boxes: judged here from 5 (the default, 50, is for real folders; the
# trained export's test in test_quantize_trained.py uses it). int8 kernels differ between CPUs (VNNI or not).
SMALL = Gate(min_recall=0.8, min_precision=0.8, min_boxes=5, min_class_boxes=5)


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
    return quantize_version(store, f"{DEMO_NAME}:2", calib_dir, "2-int8", gate=SMALL, timing_repeats=1)


def run_cli(*args: str, store: ModelStore) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trapline.cli", "models", *args, "--store", store.root],
                          capture_output=True, text=True, timeout=180)


def graph_ops(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_quantize_publishes_an_int8_version_that_agrees(store, quantized):
    report = quantized
    assert report.candidate == f"{DEMO_NAME}:2-int8" and report.parent == f"{DEMO_NAME}:2"
    assert (report.calibration_images, report.heldout_images, report.skipped_images) == (12, 4, 0)
    total = report.total
    assert report.verdict == PASS and total.parent_boxes >= 5  # judged on real boxes, not vacuous
    assert total.recall == total.matched / total.parent_boxes and total.precision == total.matched / total.int8_boxes
    assert total.recall >= 0.8 and total.precision >= 0.8 and report.map50 >= 0.8
    assert sum(c.parent_boxes for c in report.classes) == total.parent_boxes
    assert {c.label for c in report.classes} <= set(LABELS)
    assert 0.0 <= report.mean_abs_dscore <= report.max_abs_dscore and report.parent_ms > 0 and report.int8_ms > 0
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
    assert "| recall of demo-detector:2's boxes (same class, IoU ≥ 0.5) |" in card
    assert f"{total.recall:.1%} ({total.matched}/{total.parent_boxes})" in card and "| verdict | pass |" in card
    assert "trapline models quantize demo-detector:2 --calibrate" in card and "--version 2-int8" in card
    assert "--min-boxes 5 --min-class-boxes 5" in card
    filed = store.quantization(mv.ref)  # the same figures as data, for the console's models page
    assert filed["verdict"] == PASS and filed["parent"] == f"{DEMO_NAME}:2" and filed["map50"] == report.map50
    assert filed["total"]["matched"] == total.matched and filed["total"]["recall"] == total.recall
    assert [c["label"] for c in filed["classes"]] == [c.label for c in report.classes]
    assert store.quantization(f"{DEMO_NAME}:2") is None  # a float version has none


def test_too_few_boxes_to_judge_publishes_nothing_and_says_what_to_do(store, calib_dir):
    """4 held-out images hold far fewer than the default 50 boxes: no pass, no fail, no version."""
    r = run_cli("quantize", f"{DEMO_NAME}:2", "--calibrate", str(calib_dir), "--version", "2-refused", store=store)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot judge demo-detector:2-refused:"), r.stderr
    assert "fewer than --min-boxes 50" in lines[0] and "nothing published" in lines[0]
    assert "more images" in lines[0] and "--force" in lines[0]
    assert "| verdict | too few boxes to judge:" in r.stdout and "| all |" in r.stdout  # the figures behind it
    assert "2-refused" not in store.list_versions(DEMO_NAME)
    assert not [p for p in (Path(store.root) / DEMO_NAME).iterdir() if "refused" in p.name and p.name != "_refused"]
    # Nothing published, but the refusal is filed with its figures, for the console's models page.
    filed = {r["version"]: r for r in store.refusals(DEMO_NAME)}["2-refused"]
    assert filed["verdict"] == "too few boxes to judge" and filed["reason"] == lines[0].removeprefix("error: ")
    assert filed["parent"] == f"{DEMO_NAME}:2" and filed["total"]["parent_boxes"] < 50 and filed["refused_at"]
    assert "2-refused" not in store.list_versions(DEMO_NAME) and DEMO_NAME in store.list_models()


def test_the_console_catalog_shows_the_cards_the_agreement_and_the_refusals(store, quantized, calib_dir):
    """What `GET /v1/models/{name}/versions` answers (batch/views/catalog.py) from what quantize filed."""
    from batch.views.catalog import model_catalog

    if not store.refusals(DEMO_NAME):
        run_cli("quantize", f"{DEMO_NAME}:2", "--calibrate", str(calib_dir), "--version", "2-refused", store=store)
    cat = model_catalog(store, DEMO_NAME, None)
    by_version = {v["version"]: v for v in cat["versions"]}
    assert list(by_version) == store.list_versions(DEMO_NAME) and "2-int8" in by_version
    int8 = by_version["2-int8"]
    assert int8["quantization"]["verdict"] == PASS and int8["quantization"]["map50"] == quantized.map50
    assert "## Agreement with demo-detector:2 on held-out images" in int8["card"]
    assert by_version["2"]["quantization"] is None and by_version["2"]["card"]  # every version has a card
    assert cat["aliases"]["production"]["version"] == "1" and by_version["1"]["aliases"] == ["production"]
    assert [r["version"] for r in cat["refused"]] == ["2-refused"]
    assert cat["refused"][0]["reason"].startswith("cannot judge demo-detector:2-refused")
    with pytest.raises(Exception, match="no model 'nope'"):
        model_catalog(store, "nope", None)
    listed = run_cli("list", store=store)
    assert listed.returncode == 0 and "  refused 2-refused: cannot judge demo-detector:2-refused" in listed.stdout


def test_cli_force_publishes_without_a_verdict_and_prints_the_report(store, calib_dir):
    r = run_cli("quantize", f"{DEMO_NAME}:1", "--calibrate", str(calib_dir), "--version", "1-int8",
                "--force", "--holdout-fraction", "0.25", store=store)
    assert r.returncode == 0, r.stderr
    assert f"published {DEMO_NAME}:1-int8, int8 of {DEMO_NAME}:1 (forced: too few boxes to judge)" in r.stdout
    assert "| mAP@0.5 of int8" in r.stdout and "ms/image" in r.stdout and "| class |" in r.stdout
    assert "1-int8" in store.list_versions(DEMO_NAME)
    assert 'Published with --force: the verdict was "too few boxes to judge"' in store.card(f"{DEMO_NAME}:1-int8")


def test_an_int8_version_that_loses_a_class_is_refused_by_name(store, calib_dir, monkeypatch):
    """The real comparison, with every int8 box of the parent's most frequent class taken away afterwards:
    the refusal names that class, its recall and by how much it missed; nothing is published."""
    real = quantize_module.compare_detectors
    lost: list[int] = []

    def losing(parent, candidate, heldout, repeats=3):
        result = real(parent, candidate, heldout, repeats)
        counts = np.bincount([b.class_id for boxes in result.parent_boxes for b in boxes if b.score >= 0.3],
                             minlength=len(LABELS))
        lost.append(int(np.argmax(counts)))
        int8 = [[b for b in boxes if b.class_id != lost[0]] for boxes in result.int8_boxes]
        return type(result)(result.parent_boxes, int8, result.parent_ms, result.int8_ms)

    monkeypatch.setattr(quantize_module, "compare_detectors", losing)
    gate = Gate(min_recall=0.8, min_precision=0.8, min_boxes=5, min_class_boxes=2)
    with pytest.raises(QuantizeRefusedError) as refused:
        quantize_version(store, f"{DEMO_NAME}:2", calib_dir, "2-lossy", gate=gate, timing_repeats=1)
    report, label = refused.value.report, LABELS[lost[0]]
    assert report.verdict == FAIL
    row = next(c for c in report.classes if c.label == label)
    assert row.parent_boxes >= 2 and row.matched == 0 and row.recall == 0.0 and row.int8_boxes == 0
    message = str(refused.value)
    assert message.startswith("refused: demo-detector:2-lossy loses too much of demo-detector:2's boxes")
    assert f"{label} recall 0.0% (0/{row.parent_boxes}) < 80%" in message and "nothing published" in message
    assert "2-lossy" not in store.list_versions(DEMO_NAME)


def test_cli_flags_set_the_gate_and_the_old_flag_says_what_replaced_it(store, calib_dir):
    r = run_cli("quantize", f"{DEMO_NAME}:2", "--calibrate", str(calib_dir), "--version", "2-x",
                "--min-match", "0.9", store=store)
    assert r.returncode == 2 and "--min-match was replaced by --min-recall and --min-precision" in r.stderr
    r = run_cli("quantize", f"{DEMO_NAME}:2", "--calibrate", str(calib_dir), "--version", "2-x",
                "--min-recall", "1.5", store=store)
    assert r.returncode == 2 and "--min-recall must be between 0 and 1, got 1.5" in r.stderr
    r = run_cli("quantize", f"{DEMO_NAME}:2", "--calibrate", str(calib_dir), "--version", "2-x",
                "--min-boxes", "0", store=store)
    assert r.returncode == 2 and "--min-boxes must be at least 1, got 0" in r.stderr
    assert "2-x" not in store.list_versions(DEMO_NAME)


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

    report = quantize_version(store, "static-b2:1", calib_dir, "1-int8", force=True, timing_repeats=1)
    assert report.total.parent_boxes > 0 and report.heldout_images == 4
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

    report = quantize_version(store, f"{name}:1", calib, "1-int8", force=True, timing_repeats=1)
    assert (report.calibration_images, report.heldout_images) == (7, 3) and report.total.parent_boxes > 0
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


def _report(agreement, gate: Gate, heldout: int = 10) -> QuantizeReport:
    dscores = agreement.dscores
    return QuantizeReport(parent="m:1", candidate="m:1-int8", calibration_images=20, heldout_images=heldout,
                          skipped_images=0, holdout_fraction=0.3, classes=agreement.classes, total=agreement.total,
                          map50=agreement.map50, mean_abs_dscore=sum(dscores) / max(len(dscores), 1),
                          max_abs_dscore=max(dscores, default=0.0), parent_ms=10.0, int8_ms=5.0, gate=gate,
                          tail_nodes_float=3, settings="test", command="trapline models quantize m:1 ...")


def test_agree_counts_what_a_user_loses_per_class():
    """Recall and precision of the parent's boxes at IoU 0.5, one-to-one, same class, both sides >= min_score."""
    parent = [
        [Box(0, 0.90, (0, 0, 100, 100)), Box(1, 0.80, (200, 200, 260, 300)), Box(0, 0.20, (400, 0, 450, 50))],
        [Box(2, 0.70, (10, 10, 50, 30))],
    ]
    int8 = [
        # the animal moved a little (IoU 0.68: the same box to a user), the person became a vehicle,
        # the parent's 0.2 box is above the line in int8 (an extra), a duplicate of the animal (an extra)
        [Box(0, 0.88, (10, 10, 110, 110)), Box(2, 0.79, (200, 200, 260, 300)), Box(0, 0.35, (400, 0, 450, 50)),
         Box(0, 0.31, (0, 0, 100, 100))],
        [Box(2, 0.72, (10, 10, 50, 30)), Box(2, 0.10, (300, 300, 320, 320))],  # a 0.1 box counts on no side
    ]
    a = agree(parent, int8, LABELS, min_score=0.3)
    by = {c.label: c for c in a.classes}
    assert (by["animal"].parent_boxes, by["animal"].int8_boxes, by["animal"].matched) == (1, 3, 1)
    assert (by["person"].parent_boxes, by["person"].int8_boxes, by["person"].matched) == (1, 0, 0)
    assert (by["vehicle"].parent_boxes, by["vehicle"].int8_boxes, by["vehicle"].matched) == (1, 2, 1)
    assert by["person"].recall == 0.0 and by["person"].precision is None
    assert (a.total.parent_boxes, a.total.int8_boxes, a.total.matched) == (3, 5, 2)
    assert a.total.recall == pytest.approx(2 / 3) and a.total.precision == pytest.approx(2 / 5)
    assert sorted(a.dscores) == pytest.approx([0.02, 0.02])  # the two pairs: 0.90/0.88 and 0.70/0.72
    # AP ranks every int8 box: the former person (0.79) outranks the true vehicle (0.72), so vehicle AP is 0.5.
    assert by["person"].ap50 == 0.0 and by["animal"].ap50 == 1.0 and by["vehicle"].ap50 == 0.5
    assert a.map50 == pytest.approx(0.5)
    # The highest-scoring int8 box of a class claims a parent box first; the duplicate is an extra.
    assert agree([[Box(0, 0.9, (0, 0, 10, 10))]], [[Box(0, 0.5, (0, 0, 10, 10)), Box(0, 0.6, (0, 0, 10, 10))]],
                 LABELS, 0.3).dscores == pytest.approx((0.3,))


def test_verdicts_judge_classes_with_enough_boxes_and_refuse_to_judge_too_few():
    parent = [[Box(0, 0.9, (0, 0, 10, 10))] * 1 for _ in range(40)] + [[Box(1, 0.9, (0, 0, 10, 10))]] * 10
    int8 = [[Box(0, 0.9, (0, 0, 10, 10))] for _ in range(40)] + [[]] * 10  # every person lost
    a = agree(parent, int8, LABELS, 0.3)
    # 50 boxes: judged. person (10 boxes) is below --min-class-boxes 20 alone, but the total recall 80% fails.
    report = _report(a, Gate())
    assert report.verdict == FAIL and report.shortfalls() == ["all recall 80.0% (40/50) < 90%"]
    assert report.judged(report.classes[1]) == (False, False)
    assert "| person | 10 / 0 | 0 | 0.0% (0/10) | - | 0.000 | no: < 20 boxes |" in report.table()
    # From --min-class-boxes 10 the class is judged on its own and named.
    report = _report(a, Gate(min_class_boxes=10, min_recall=0.75))
    assert report.verdict == FAIL and report.shortfalls() == ["person recall 0.0% (0/10) < 75%"]
    assert "refused: m:1-int8 loses too much of m:1's boxes on 10 held-out images: person recall 0.0% (0/10)" \
        in report.refusal()
    # 49 boxes: no verdict either way, and the message says how many images would do.
    few = agree(parent[:49], int8[:49], LABELS, 0.3)
    report = _report(few, Gate(), heldout=49)
    assert report.verdict == TOO_FEW and not report.passed  # recall 81.6% (40/49), but on too few boxes
    assert report.refusal().startswith("cannot judge m:1-int8: m:1 finds 49 boxes scoring >= 0.3 on the 49 "
                                       "held-out images, fewer than --min-boxes 50")
    assert "about 167 images in DIR would give 50" in report.refusal()  # 50 / 1.0 per image / 0.3
    assert "images in which the model finds objects" in _report(agree([[]], [[]], LABELS, 0.3), Gate(),
                                                                heldout=1).refusal()
    assert _report(agree(parent[:40], int8[:40], LABELS, 0.3), Gate(min_boxes=40)).verdict == PASS
