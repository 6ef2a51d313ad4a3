"""An animal's second boxes, set aside frame by frame before linking (model_store/core/filters/tracking.py).

A detector boxes some animals twice: a duplicate of about its size beside it (NMS kept two labels' boxes), a part
inside it. Left in the frame-by-frame pass, a duplicate competes with the animal's own box for its track: it takes
the track for a frame, the animal's box starts another, and the two take turns (issue 69: one beetle counted three
times; the folding after the pass cannot undo every turn). So before linking, in each frame, of two boxes that
overlap at an IoU of at least `fold_set_aside` and look alike (appearance distance at most `fold_look`), the
second is set aside: the smaller where their sizes differ (`sit_size_ratio`), else the less confident. The frame
pass links the rest first, then the set-aside boxes among themselves; track_folds.py folds those tracks into their
animal's like any other piece, or leaves them where they are an animal of their own (seen in most of the frames,
moving on their own). A part (a head inside the body) is not set aside: it rarely overlaps its animal's box at
that IoU, cannot take its track (the size gates), and is folded after the pass. Without an appearance nothing is
set aside: two boxes that overlap say nothing of one animal without a look. Fitted on seed 7 (NOTES.md §28c).
Pure numpy.
"""

from __future__ import annotations

import numpy as np

from model_store.core.filters.track_config import TrackConfig
from model_store.core.filters.track_costs import CameraDetections
from model_store.core.filters.track_pairs import contained, look_apart, same_frame_pairs


def second_boxes(config: TrackConfig, step_of: np.ndarray, dets: CameraDetections,
                 scores: np.ndarray | None) -> np.ndarray:
    """Per detection (N,) bool: set aside as another box of an animal boxed in its frame."""
    out = np.zeros(len(step_of), dtype=bool)
    known = np.flatnonzero(step_of >= 0)
    if not config.fold or config.fold_set_aside == 0 or len(known) < 2:
        return out
    key = dets.segment * (int(step_of.max()) + 2) + step_of
    a, b = same_frame_pairs(key, known, dets.boxes)
    if not len(a):
        return out
    cont = contained(a, b, dets)
    ratio = np.minimum(dets.area[a], dets.area[b]) / np.maximum(np.maximum(dets.area[a], dets.area[b]), 1e-12)
    iou = cont * ratio / np.maximum(1 + ratio - cont * ratio, 1e-12)  # inter / union, from the smaller's share
    ok = iou >= config.fold_set_aside
    apart = look_apart(a, b, dets)
    if apart is None:
        return out
    ok &= apart <= config.fold_look
    a, b, ratio = a[ok], b[ok], ratio[ok]
    score = dets.area if scores is None else np.asarray(scores, dtype=np.float64)
    a_second = np.where(ratio < config.sit_size_ratio, dets.area[a] < dets.area[b],
                        (score[a] < score[b]) | ((score[a] == score[b]) & (a > b)))
    out[np.where(a_second, a, b)] = True
    return out
