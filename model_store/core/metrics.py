"""mAP@0.5 for box detections (all-point interpolated AP per class), in pure numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

IOU_THRESHOLD = 0.5


def _xyxy(x: np.ndarray) -> np.ndarray:
    """The first four columns of a box array as float64 (N, 4), accepting empty inputs of any shape."""
    x = np.asarray(x, np.float64)
    return x.reshape(-1, x.shape[-1])[:, :4] if x.size else np.zeros((0, 4))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU [len(a), len(b)] of xyxy boxes (extra columns after the first four are ignored)."""
    a, b = _xyxy(a), _xyxy(b)
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (VOC2010+/COCO all-point interpolation)."""
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([0.0], precision, [0.0]))
    p = np.maximum.accumulate(p[::-1])[::-1]  # make precision monotonically non-increasing
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def greedy_match(predictions: np.ndarray, truth: np.ndarray, iou_threshold: float = IOU_THRESHOLD) -> np.ndarray:
    """For boxes of one class in one image, the truth row each prediction claims (-1: none), in the given order.

    Predictions are taken in the order given (sort them by score first, as VOC and COCO do); each claims
    the free truth box it overlaps most, if that IoU reaches `iou_threshold`, so every truth box is
    claimed at most once.
    """
    claimed = np.full(len(_xyxy(predictions)), -1, np.int64)
    if not len(claimed) or not len(_xyxy(truth)):
        return claimed
    ious = iou_matrix(predictions, truth)
    taken = np.zeros(ious.shape[1], bool)
    for j in range(len(claimed)):
        cand = np.where(taken, -1.0, ious[j])
        k = int(np.argmax(cand))
        if cand[k] >= iou_threshold:
            taken[k] = True
            claimed[j] = k
    return claimed


def _as_rows(x: np.ndarray, cols: int) -> np.ndarray:
    """View an (M, cols) array, accepting empty inputs of any shape."""
    return np.asarray(x, np.float64).reshape(-1, cols)


def average_precision_50(
    predictions: Sequence[np.ndarray], ground_truth: Sequence[np.ndarray], num_classes: int
) -> dict[str, Any]:
    """mAP@0.5 over classes present in the ground truth.

    `predictions[i]` is (M, 6) [x1, y1, x2, y2, score, class_id] and `ground_truth[i]` is (K, 5)
    [x1, y1, x2, y2, class_id] for image i, all in pixels. Returns {"map50", "per_class": {id: ap}}.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} prediction lists for {len(ground_truth)} images")
    per_class: dict[int, float] = {}
    for c in range(num_classes):
        scores: list[float] = []
        hits: list[bool] = []
        n_gt = 0
        for pred, gt in zip(predictions, ground_truth, strict=True):
            p = _as_rows(pred, 6)
            g = _as_rows(gt, 5)
            p = p[p[:, 5] == c]
            g = g[g[:, 4] == c]
            n_gt += len(g)
            if not len(p):
                continue
            p = p[np.argsort(-p[:, 4], kind="stable")]
            scores += p[:, 4].tolist()
            hits += (greedy_match(p, g) >= 0).tolist()
        if n_gt == 0:
            continue  # classes absent from the ground truth do not count towards the mean
        if not scores:
            per_class[c] = 0.0
            continue
        order = np.argsort(-np.asarray(scores), kind="stable")
        tp = np.asarray(hits, np.float64)[order]
        ctp, cfp = np.cumsum(tp), np.cumsum(1.0 - tp)
        per_class[c] = average_precision(ctp / n_gt, ctp / (ctp + cfp))
    map50 = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return {"map50": map50, "per_class": per_class}
