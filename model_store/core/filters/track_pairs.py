"""Pairs of boxes of one frame: which overlap, how much one lies in the other, how alike they look. Shared by the
passes that undo the detector's second boxes (track_seconds.py before linking, track_folds.py after it).
Pure numpy.
"""

from __future__ import annotations

import numpy as np

from model_store.core.filters.track_costs import CameraDetections
from model_store.core.filters.track_rows import frame_key


def same_frame_pairs(key: np.ndarray, rows: np.ndarray,
                      boxes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of `rows` that share a key (a frame), and whose boxes overlap when `boxes` are given."""
    order = rows[np.argsort(key[rows], kind="stable")]
    k = key[order]
    firsts, seconds = [], []
    for d in range(1, len(order)):
        same = np.flatnonzero(k[:-d] == k[d:])
        if not len(same):
            break
        a, b = order[same], order[same + d]
        if boxes is not None:  # only overlapping pairs are kept: a crowded frame has many pairs, few that touch
            ba, bb = boxes[a], boxes[b]
            touch = ((np.minimum(ba[:, 2], bb[:, 2]) > np.maximum(ba[:, 0], bb[:, 0]))
                     & (np.minimum(ba[:, 3], bb[:, 3]) > np.maximum(ba[:, 1], bb[:, 1])))
            a, b = a[touch], b[touch]
        firsts.append(a)
        seconds.append(b)
    if not firsts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)


def overlapping_pairs(dets: CameraDetections, step_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of known rows (step_of >= 0) of one frame whose boxes overlap: `same_frame_pairs` on the frame key,
    worked out once per camera and step_of and kept on `dets`. The set-aside pass, the part-box cut and both folding
    passes read the same pairs (four times before: a tenth of the tracker's time on a crowded camera)."""
    if dets.overlaps is None or dets.overlaps[0] is not step_of:
        known = np.flatnonzero(step_of >= 0)
        dets.overlaps = (step_of, *same_frame_pairs(frame_key(dets.segment, step_of), known, dets.boxes))
    return dets.overlaps[1], dets.overlaps[2]


def contained(a: np.ndarray, b: np.ndarray, dets: CameraDetections) -> np.ndarray:
    """The share of the smaller box's area that lies in the larger, per pair."""
    ba, bb = dets.boxes[a], dets.boxes[b]
    inter = (np.maximum(np.minimum(ba[:, 2], bb[:, 2]) - np.maximum(ba[:, 0], bb[:, 0]), 0)
             * np.maximum(np.minimum(ba[:, 3], bb[:, 3]) - np.maximum(ba[:, 1], bb[:, 1]), 0))
    return inter / np.maximum(np.minimum(dets.area[a], dets.area[b]), 1e-12)


def iou(a: np.ndarray, b: np.ndarray, dets: CameraDetections) -> np.ndarray:
    """The intersection over union of the two rows' boxes, per pair."""
    inter = contained(a, b, dets) * np.minimum(dets.area[a], dets.area[b])
    return inter / np.maximum(dets.area[a] + dets.area[b] - inter, 1e-12)


def look_apart(a: np.ndarray, b: np.ndarray, dets: CameraDetections) -> np.ndarray | None:
    """Per pair of rows, the appearance distance (1 - cosine) of their boxes; None without appearances."""
    if dets.app is None or not len(dets.app):
        return None
    u, v = dets.app[a], dets.app[b]
    cos = (u * v).sum(axis=1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-12)
    return 1.0 - cos
