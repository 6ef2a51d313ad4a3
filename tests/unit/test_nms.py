"""NMS keeps exactly the boxes torchvision's greedy NMS keeps (the reference libraries' semantics)."""

from __future__ import annotations

import numpy as np
import pytest

from model_store.core.heads import RawDetections, nms


def reference_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
                  max_detections: int, class_agnostic: bool) -> list[int]:
    """The plain definition, one pair at a time: best score first (stable on ties); a box goes when its IoU
    with a kept box of its class is strictly above the threshold (0/0 is not above anything)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        if len(keep) >= max_detections:
            break
        suppressed = False
        for k in keep:
            if not class_agnostic and classes[k] != classes[i]:
                continue
            a, b = boxes[k], boxes[i]
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if union > 0 and inter / union > iou_threshold:
                suppressed = True
                break
        if not suppressed:
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("class_agnostic", [False, True])
def test_nms_keeps_what_the_plain_definition_keeps(seed, class_agnostic):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    xy = rng.uniform(0, 600, (n, 2))
    wh = rng.uniform(0, 120, (n, 2))
    wh[rng.random(n) < 0.1] = 0.0  # zero-area boxes: kept, as torchvision keeps them
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    dup = rng.random(n) < 0.1  # exact duplicates with tied scores
    boxes[dup] = boxes[0]
    scores = np.round(rng.uniform(0.25, 1.0, n), 2).astype(np.float32)  # rounded: many score ties
    classes = rng.integers(0, 3, n).astype(np.int64)
    limit = int(rng.integers(1, 300))
    got = nms(RawDetections(boxes, scores, classes), 0.45, limit, class_agnostic)
    want = reference_nms(boxes.astype(np.float64), scores, classes, 0.45, limit, class_agnostic)
    assert [tuple(b) for b in got.boxes_xyxy] == [tuple(boxes[i]) for i in want]
    assert list(got.class_ids) == [classes[i] for i in want] and list(got.scores) == [scores[i] for i in want]


def test_nms_of_nothing_is_nothing():
    empty = RawDetections.empty()
    assert nms(empty, 0.45, 300, False) is empty


@pytest.mark.parametrize("seed", range(6))
def test_long_candidate_lists_keep_what_the_plain_definition_keeps(seed):
    """Thousands of candidates (a random-weight export, a dense insect sheet): NMS runs in chunks of
    candidates, each checked against what earlier chunks kept; boxes flipped inside out or without
    width overlap nothing and are kept, whatever their neighbours."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(600, 3000))
    xy = rng.uniform(0, 400, (n, 2))
    wh = rng.uniform(2, 60, (n, 2))
    wh[rng.random(n) < 0.05] *= -1.0  # x2 < x1 or y2 < y1
    wh[rng.random(n) < 0.05, 0] = 0.0
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = np.round(rng.uniform(0.25, 1.0, n), 3).astype(np.float32)
    classes = rng.integers(0, 2, n).astype(np.int64)
    limit = [1, 7, 300, 1000, 5000, 300][seed]
    got = nms(RawDetections(boxes, scores, classes), 0.5, limit, False)
    want = reference_nms(boxes.astype(np.float64), scores, classes, 0.5, limit, False)
    assert len(want) == min(limit, len(want)) and len(got.scores) == len(want)
    assert [tuple(b) for b in got.boxes_xyxy] == [tuple(boxes[i]) for i in want]
