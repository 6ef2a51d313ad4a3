"""Each output head through the real ONNX Runtime path: publish reads the graph, the detector decodes."""

from __future__ import annotations

import numpy as np
import pytest

from model_store import ConfigError, ModelStore
from model_store.core.heads import HEADS, LAYOUTS, DecodeSpec, head_for
from tests.fixtures.head_models import END2END_ROWS, END2END_640x480, constant_outputs, ultralytics_meta
from tests.fixtures.onnx_models import LABELS


@pytest.fixture
def store(tmp_path):
    return ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))


def frame(w: int = 640, h: int = 480) -> np.ndarray:
    return np.random.default_rng(w * h).integers(0, 255, (h, w, 3), dtype=np.uint8)


def boxes(record) -> list[tuple]:
    return [(d.label, d.score, *d.box_px) for d in record.detections]


def assert_boxes(record, expected) -> None:
    got = boxes(record)
    assert [g[0] for g in got] == [e[0] for e in expected]
    assert np.allclose([g[1:] for g in got], [e[1:] for e in expected], atol=1e-3)


@pytest.mark.parametrize("meta", [
    ultralytics_meta(end2end="True"),  # YOLO26 / YOLOv10 end2end=True
    ultralytics_meta(args="{'batch': 1, 'nms': True, 'dynamic': False}"),  # yolov8 nms=True
])
def test_end2end_exports_publish_with_no_config_and_keep_the_graphs_boxes(store, tmp_path, meta):
    path = constant_outputs([END2END_ROWS], tmp_path / "e2e.onnx", metadata=meta)
    cfg = store.publish(path, "e2e", "1").config
    assert cfg.output_layout == "end2end" and cfg.labels == LABELS and cfg.preprocess.letterbox == "square"
    [record] = store.load_detector("e2e:1").predict_batch([frame()])
    assert_boxes(record, END2END_640x480)  # the two overlapping deer both kept: no NMS of ours


def test_end2end_with_a_class_outside_the_labels_fails_that_image(store, tmp_path):
    rows = END2END_ROWS.copy()
    rows[2, 5] = 7
    path = constant_outputs([rows], tmp_path / "e2e.onnx", metadata=ultralytics_meta(end2end="True"))
    store.publish(path, "e2e", "1")
    with pytest.raises(ValueError, match="class id 7 but the model has 2 labels"):
        store.load_detector("e2e:1").predict_batch([frame()])


def test_rtdetr_with_symbolic_dims_is_judged_on_what_it_gives(store, tmp_path):
    # cx, cy, w, h normalised; Ultralytics stretches the image for RT-DETR, so boxes scale by the image itself
    rows = np.array([[0.5, 0.5, 0.2, 0.1, 0.7, 1], [0.25, 0.25, 0.1, 0.1, 0.2, 0]], np.float32)
    meta = ultralytics_meta(head="RTDETRDecoder", description="Ultralytics RT-DETR-l model")
    path = constant_outputs([rows], tmp_path / "rtdetr.onnx", symbolic=True, metadata=meta)
    mv = store.publish(path, "rtdetr", "1")
    assert mv.config.output_layout == "rtdetr" and mv.config.preprocess.letterbox == "stretch"
    assert isinstance(mv.config.graph.outputs[0].shape[1], str) and mv.config.graph.probed_outputs == [[1, 2, 6]]
    [record] = store.load_detector("rtdetr:1").predict_batch([frame(640, 480)])
    assert_boxes(record, [("fox", 0.7, 256, 216, 384, 264)])
    # a layout that cannot decode it is refused at publish, not at the first batch
    with pytest.raises(ConfigError, match=r"output_layout yolov8 .* \(on a blank input: \[1, 2, 6\]\)"):
        store.publish(path, "rtdetr", "2", {"output_layout": "yolov8"})
    with pytest.raises(ConfigError, match="normalised to the input, which a rect letterbox makes vary"):
        store.publish(path, "rtdetr", "2", {"preprocess": {"letterbox": "rect"}})


def test_detr_boxes_and_logits_are_two_outputs(store, tmp_path):
    q_boxes = np.array([[0.5, 0.5, 0.5, 0.25], [0.1, 0.1, 0.1, 0.1], [0.8, 0.8, 0.2, 0.2]], np.float32)
    logits = np.array([[-3.0, 2.0, -9.0], [-5.0, -4.0, 0.0], [0.5, -1.0, -9.0]], np.float32)  # 2 labels + no-object
    path = constant_outputs([q_boxes, logits], tmp_path / "detr.onnx")
    cfg = store.publish(path, "detr", "1", {"labels": LABELS, "preprocess": {"letterbox": "stretch"}}).config
    assert cfg.output_layout == "detr"  # the only layout two outputs [1, 3, 4] + [1, 3, 3] fit for 2 labels
    [record] = store.load_detector("detr:1").predict_batch([frame(640, 480)])
    sig = 1 / (1 + np.exp(-np.array([2.0, 0.5])))
    assert_boxes(record, [("fox", sig[0], 160, 180, 480, 300), ("deer", sig[1], 448, 336, 576, 432)])


def test_yolox_pads_top_left_in_its_own_colours(store, tmp_path):
    # [anchors, 5 + nc]: cx, cy, w, h, objectness, class scores, in 320x320 input pixels
    pred = np.array([[60, 40, 40, 40, 0.9, 0.1, 0.8], [200, 100, 20, 20, 0.9, 0.9, 0.1]], np.float32)
    path = constant_outputs([pred], tmp_path / "yolox.onnx")
    given = {"labels": LABELS, "input_size": 320, "output_layout": "yolox",
             "preprocess": {"pad_anchor": "top_left", "pad_value": 0, "scale": 1, "interpolation": "pil_bicubic"}}
    store.publish(path, "yolox", "1", given)
    det = store.load_detector("yolox:1")
    prepared, _ = det.prepare(np.full((480, 640, 3), 200, np.uint8))
    assert (prepared[:240] == 200).all() and (prepared[240:] == 0).all()  # image at the top, black below
    [record] = det.predict_batch([frame(640, 480)])
    # scale 0.5 and no offset: input pixels x2; score = objectness x best class
    assert_boxes(record, [("deer", 0.81, 380, 180, 420, 220), ("fox", 0.72, 80, 40, 160, 120)])


def test_a_graph_no_layout_fits_is_refused_listing_the_layouts(store, tmp_path):
    path = constant_outputs([np.zeros((10,), np.float32)], tmp_path / "odd.onnx")
    with pytest.raises(ConfigError) as err:
        store.publish(path, "odd", "1", {"labels": LABELS, "input_size": 320})
    text = str(err.value)
    assert "fits no layout for 2 labels" in text and "\n" not in text
    assert all(name in text for name in LAYOUTS) and "[1, 10]" in text


def test_an_ultralytics_task_trapline_does_not_decode_is_named(store, tmp_path):
    path = constant_outputs([END2END_ROWS], tmp_path / "pose.onnx", metadata=ultralytics_meta(task="pose"))
    with pytest.raises(ConfigError, match="a 'pose' model; trapline decodes the tasks detect"):
        store.publish(path, "pose", "1")


def test_every_registered_head_names_itself_and_describes_its_shape():
    for name, head in HEADS.items():
        assert head.name == name and head.summary and head.shape(3)
    with pytest.raises(ValueError, match="unknown output layout 'yolov9'; known: yolov8, yolov5"):
        head_for("yolov9")


def test_detr_sigmoid_threshold_matches_the_scores():
    spec = DecodeSpec(num_classes=1, score_threshold=0.5, input_size=(100, 100))
    logits = np.array([[0.0], [1e-4], [-1e-4]], np.float32)
    dets = HEADS["detr"].decode((np.full((3, 4), 0.5, np.float32), logits), spec)
    assert sorted(dets.scores.tolist()) == pytest.approx([0.5, 0.500025], abs=1e-6)


def test_models_inspect_says_what_it_found_and_what_it_would_publish(tmp_path, capsys):
    from argparse import Namespace

    from model_store.store.cli import cmd_inspect

    path = constant_outputs([END2END_ROWS], tmp_path / "yolo26n.onnx", metadata=ultralytics_meta(end2end="True"))
    assert cmd_inspect(Namespace(weights=str(path), config=None, preset=None)) == 0
    out = capsys.readouterr().out
    assert "producer:      ultralytics (task=detect, end2end=True, head=Detect" in out
    assert "layout:        end2end" in out and "no NMS (the graph's own top-K)" in out
    assert "letterbox square, pad center in 114, linear resize (round), rgb, scale 0.00392157" in out
    anon = constant_outputs([END2END_ROWS], tmp_path / "anon.onnx")
    with pytest.raises(ConfigError, match=r'no class names .* pass --config with "labels", "output_layout" \(one of '
                                          r'yolov8, .*\), and "preprocess"'):
        cmd_inspect(Namespace(weights=str(anon), config=None, preset=None))


def test_nms_carries_a_heads_extra_columns_with_their_boxes():
    from model_store.core.heads import RawDetections, nms

    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    dets = RawDetections(boxes, np.array([0.5, 0.9, 0.7], np.float32), np.zeros(3, np.int64),
                         extra=np.array([[1.0], [2.0], [3.0]], np.float32))  # e.g. a seg head's mask coefficients
    kept = nms(dets, 0.5, 300, False)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7]) and kept.extra[:, 0].tolist() == [2.0, 3.0]


def test_a_two_output_head_runs_formed_batches_in_chunks_of_a_static_graph(store, tmp_path):
    # what the Serve replica and the batch actors call: run_prepared over a formed batch; the graph takes batch 1
    q_boxes = np.array([[0.5, 0.5, 0.5, 0.25]], np.float32)
    path = constant_outputs([q_boxes, np.array([[2.0, -3.0]], np.float32)], tmp_path / "detr.onnx", batch=1)
    store.publish(path, "detr", "1", {"labels": LABELS, "preprocess": {"letterbox": "stretch"}})
    det = store.load_detector("detr:1")
    prepared = [det.prepare(frame(w, h)) for w, h in ((640, 480), (320, 320), (1000, 500))]
    raw = det.infer([p for p, _ in prepared])
    assert all(isinstance(r, tuple) and r[0].shape == (1, 4) and r[1].shape == (1, 2) for r in raw)
    records = det.run_prepared([p for p, _ in prepared], [m for _, m in prepared])
    assert [boxes(r)[0][2:] for r in records] == [(160, 180, 480, 300), (80, 120, 240, 200), (250, 187.5, 750, 312.5)]
