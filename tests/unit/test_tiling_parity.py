"""Tiled inference against SAHI's own `get_sliced_prediction`, box for box (issue 70).

tests/fixtures/reference/build_sahi.py ran SAHI 0.12 in a peer virtualenv with the same ONNX export, the exporting
library's own prediction settings and the same slices, whole-image pass and merge rule; sahi_expected.json holds its
boxes. The bar: every reference box (score >= 0.3) has a same-class box at IoU >= 0.9 within 0.01 of its score, and
no extra box >= 0.3. (The issue asks >= 99 %; the fixtures reach 100 %.) The 4000x3000 photo (48 tiles, ~25 s here)
runs only with TRAPLINE_SLOW_PARITY=1 (it matched 705/705 boxes on 2026-11-28); the others take seconds. An image
where the random model saturates is judged only on the CPU kernels the fixture was made with (see
tests/fixtures/reference/machine.py): elsewhere it is skipped, saying so, and the others still run.

The trained demo export (Ultralytics' own, square 320) runs the same settings on the real photos at a score floor of
0.1 and is judged from 0.11: its scores do not saturate, so its cases hold on any CPU's kernels.
"""

from __future__ import annotations

import json
import os
from functools import cache

import pytest

from model_store import ModelStore
from model_store.core.agreement import Box, compare
from model_store.core.imaging import decode_image
from tests.fixtures.parity import REFERENCE, publish_reference, skip_saturated_on_other_kernels

ROOT = REFERENCE.parents[2]
SLOW = set() if os.environ.get("TRAPLINE_SLOW_PARITY") else {"tests/fixtures/reference/images/photo_4000x3000.jpg"}


@cache
def sahi() -> dict:
    return json.loads((REFERENCE / "sahi_expected.json").read_text())


TRAINED = "trained_demo_yolov8"
MIN_SCORE = {"yolov8n_static": 0.3, TRAINED: 0.11}  # the trained export's floor is 0.1 on both sides


def cases() -> list[tuple[str, str, str]]:
    return [(model, setting, image) for model, per_setting in sahi()["models"].items()
            for setting, per_image in per_setting.items() for image in per_image if image not in SLOW]


@pytest.fixture(scope="module")
def detectors(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("tiling-parity")
    store = ModelStore(str(root / "store"), cache_dir=str(root / "cache"))
    publish_reference(store, "yolov8n_static")
    store.publish(REFERENCE / f"{TRAINED}.onnx", TRAINED, "1")  # as its user would: the export's own metadata
    out = {}
    for name in ("yolov8n_static", TRAINED):
        det = out[name] = store.load_detector(f"{name}:1")
        predict = sahi()["predict"][name]
        assert (det.config.nms_iou, det.config.input_size[0]) == (predict["iou"], predict["imgsz"])
        # the score floor and the cap as the script sets them (the cap lifted: see build_sahi.py's MAX_DET)
        det.config = det.config.model_copy(update={"max_detections": sahi()["max_det"],
                                                   "score_threshold": predict["conf"]})
    return out


@pytest.mark.parametrize(("model", "setting", "image"), cases())
def test_tiled_boxes_equal_sahis_sliced_prediction(detectors, model, setting, image):
    tiling = sahi()["settings"][setting]["trapline"] or True
    [record] = detectors[model].predict_batch([decode_image((ROOT / image).read_bytes())], tiling=tiling)
    reference = [Box(b[0], b[1], tuple(b[2:])) for b in sahi()["models"][model][setting][image]]
    skip_saturated_on_other_kernels(sahi(), reference)
    ours = [Box(d.class_id, d.score, d.box_px) for d in [*record.detections, *record.dropped]]
    agreement = compare(reference, ours, f"{model} {setting} {image}", min_score=MIN_SCORE[model], min_iou=0.9,
                        max_dscore=0.01, max_dpx=0.0)
    assert agreement.reference > 0
    assert agreement.matched == agreement.reference and not agreement.extras, [*agreement.misses[:3],
                                                                                *agreement.extras[:3]]
