"""The segmentation heads (model_store/core/heads/segment.py) through the real ONNX Runtime path: publish reads
`task: segment` and the head form from Ultralytics' metadata, the detector decodes boxes with the detection
heads' machinery (threshold, NMS or the graph's top-K) and assembles masks for the kept boxes only.

Hand-worked graphs (constant outputs): prototype 0 is +1 on one rectangle of the input and -1 elsewhere, so a
detection whose coefficients pick it has that rectangle (cut to its box) as its mask; prototype 1 is -1
everywhere, so a detection picking it has an empty mask and is dropped, as Ultralytics drops it."""

from __future__ import annotations

import numpy as np
import pytest

from model_store import ConfigError, ModelStore
from model_store.core.heads import SEGMENT_HEADS, head_for
from model_store.core.masks import from_rle
from tests.fixtures.head_models import constant_outputs, ultralytics_meta
from tests.fixtures.onnx_models import INPUT, LABELS

PROTOS = np.full((32, INPUT // 4, INPUT // 4), -1.0, np.float32)
PROTOS[0, 28:42, 30:45] = 1.0  # input pixels x 120-180, y 112-168
ON, OFF = np.eye(32, dtype=np.float32)[0] * 4, np.eye(32, dtype=np.float32)[1] * 4
# x1, y1, x2, y2, score, class: the deer's box holds the whole rectangle and more; its twin is NMS's to drop
DEER, TWIN, FOX = (100, 100, 200, 180, 0.9, 0), (102, 100, 202, 180, 0.8, 0), (20, 20, 60, 60, 0.7, 1)


def nms_form() -> np.ndarray:
    """[4 + nc + 32, anchors]: cx, cy, w, h, class scores, coefficients, one column per box."""
    cols = []
    for (x1, y1, x2, y2, score, cls), coeff in ((DEER, ON), (TWIN, ON), (FOX, OFF)):
        scores = np.zeros(len(LABELS), np.float32)
        scores[cls] = score
        cols.append(np.concatenate([[(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], scores, coeff]))
    return np.stack(cols, 1).astype(np.float32)


def end2end_form() -> np.ndarray:
    """[K, 6 + 32]: the graph's own top-K, both deer kept (no NMS of ours), a padding row."""
    rows = [np.concatenate([row, coeff]) for row, coeff in ((DEER, ON), (TWIN, ON), (FOX, OFF))]
    return np.stack([*rows, np.zeros(38)]).astype(np.float32)


@pytest.fixture
def store(tmp_path):
    return ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))


@pytest.mark.parametrize(("head", "meta", "layout", "deer"), [
    (nms_form, ultralytics_meta(task="segment"), "yolov8", 1),
    (end2end_form, ultralytics_meta(task="segment", end2end="True"), "end2end", 2),
])
def test_segment_exports_publish_with_no_config_and_carry_their_masks(store, tmp_path, head, meta, layout, deer):
    path = constant_outputs([head(), PROTOS], tmp_path / "seg.onnx", metadata=meta)
    cfg = store.publish(path, "seg", "1").config
    assert (cfg.task, cfg.output_layout) == ("segment", layout)
    det = store.load_detector("seg:1")
    assert det.head is SEGMENT_HEADS[layout] and det.head.outputs == 2
    [record] = det.predict_batch([np.zeros((480, 640, 3), np.uint8)])
    # the fox's mask is empty: dropped; the NMS form drops the twin deer, the end-to-end form keeps it
    assert [d.label for d in record.detections] == ["deer"] * deer
    for d in record.detections:
        mask = from_rle(d.mask.model_dump())
        assert mask.shape == (480, 640)
        # scale 0.5, 40 px of padding above: input x 120-180, y 112-168 -> image x 240-360, y 144-256
        ys, xs = np.nonzero(mask)
        assert abs(xs.min() - 240) <= 2 and abs(xs.max() - 359) <= 2
        assert abs(ys.min() - 144) <= 2 and abs(ys.max() - 255) <= 2


def test_a_segment_export_published_as_a_detector_is_told_to_set_task_segment(store, tmp_path):
    path = constant_outputs([nms_form(), PROTOS], tmp_path / "seg.onnx", metadata=ultralytics_meta(task="segment"))
    with pytest.raises(ConfigError, match=r'mean an output of \[N, 6, anchors\].* it is a segmentation head: '
                                          r'set "task": "segment" \(output_layout yolov8\)'):
        store.publish(path, "seg", "1", {"task": "detect"})
    anon = constant_outputs([nms_form(), PROTOS], tmp_path / "anon.onnx")
    with pytest.raises(ConfigError, match=r'fits no detect layout for 2 labels but is a segmentation head; pass '
                                          r'--config with "task": "segment"'):
        store.publish(anon, "seg", "1", {"labels": LABELS, "input_size": INPUT})
    cfg = store.publish(anon, "seg", "1", {"labels": LABELS, "input_size": INPUT, "task": "segment"}).config
    assert cfg.output_layout == "yolov8"  # the one segmentation layout the shapes fit


def test_prototypes_not_at_a_quarter_of_the_input_are_refused(store, tmp_path):
    path = constant_outputs([nms_form(), PROTOS[:, :40, :40]], tmp_path / "seg.onnx",
                            metadata=ultralytics_meta(task="segment"))
    with pytest.raises(ConfigError, match=r"prototypes \[1, 32, 40, 40\] are not at 1/4 of the input 320x320"):
        store.publish(path, "seg", "1")


def test_segment_tasks_decode_only_their_layouts():
    with pytest.raises(ValueError, match="task segment decodes the output layouts yolov8, end2end, not 'yolov5'"):
        head_for("yolov5", "segment")


def test_models_inspect_names_the_segmentation_head(tmp_path, capsys):
    from argparse import Namespace

    from model_store.store.cli import cmd_inspect

    path = constant_outputs([end2end_form(), PROTOS], tmp_path / "yolo26n-seg.onnx",
                            metadata=ultralytics_meta(task="segment", end2end="True"))
    assert cmd_inspect(Namespace(weights=str(path), config=None, preset=None)) == 0
    out = capsys.readouterr().out
    assert "(task=segment, end2end=True" in out
    assert "layout:        end2end - [B, K, 6+32]" in out and "task segment: each detection carries its mask" in out
