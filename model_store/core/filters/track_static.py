"""Static flags: a track that never moves is flagged and left out of counts, after the frame-by-frame pass,
folding and stitching (model_store/core/filters/tracking.py; the detector's own mistakes, issue 69).

A track that never moves is flagged (`static_tracks`): a leaf, a mark on the sheet, a stump (what MegaDetector's
repeat-detection elimination exists for; model_store/core/filters/repeat.py is that rule over the tables). Its
thresholds are the rule's: at least `static_min_frames` detections (the rule's min_images) at an IoU of at least
`static_iou` (its iou) with the track's median box, and those are at least `static_share` of the track's boxes:
an insect that sits jitters (wings, the detector's own noise) and shuffles now and then, a fixed thing does not.
A burst of ten frames holds at most ten boxes of a leaf, so in a run of frames shorter than `static_min_frames`
the bar is `static_burst_share` of the run's frames (at least `static_min_burst` boxes).
Pure numpy: no Ray, no tables.
"""

from __future__ import annotations

import numpy as np

from model_store.core.filters.track_config import TrackConfig
from model_store.core.filters.track_costs import CameraDetections
from model_store.core.filters.track_rows import distinct


def static_tracks(config: TrackConfig, track_of: np.ndarray, step_of: np.ndarray, dets: CameraDetections,
                  folded: np.ndarray) -> np.ndarray:
    """Per track (K,) bool: it never moved (see the module docstring). `folded` (N,) bool: detections folded into
    their track (its animal's second boxes), left out of the judgement."""
    k = int(track_of.max()) + 1 if len(track_of) else 0
    out = np.zeros(k, dtype=bool)
    if config.static_min_frames == 0 or not k:
        return out
    own = np.flatnonzero((step_of >= 0) & ~folded)
    hits = np.bincount(track_of[own], minlength=k)
    need = np.full(k, config.static_min_frames)
    if len(own):
        span = int(step_of.max()) + 1
        frames = np.bincount(distinct(dets.segment[own] * span + step_of[own]) // span)
        seg = np.zeros(k, dtype=np.int64)
        seg[track_of[own]] = dets.segment[own]
        if config.static_burst_share > 0:
            # A burst of 10 frames holds at most 10 boxes of a leaf: in a run shorter than static_min_frames, a
            # box there in static_burst_share of the run's frames (and static_min_burst or more) is enough.
            short = np.maximum(np.ceil(config.static_burst_share * frames[seg]), config.static_min_burst)
            need = np.minimum(need, short).astype(np.int64)
        # A leaf or a mark is there all night; an insect that sits still for an hour of it is not.
        need = np.maximum(need, np.ceil(config.static_run_share * frames[seg])).astype(np.int64)
    long = hits >= need
    rows = own[long[track_of[own]]]
    if not len(rows):
        return out
    rows = rows[np.argsort(track_of[rows], kind="stable")]
    ids = track_of[rows]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    bounds = np.r_[starts, len(rows)]
    boxes = dets.boxes[rows]
    # Each track's median box: per coordinate, over its own rows (sorted within each track).
    med = np.empty((len(starts), 4))
    for c in range(4):
        v = boxes[:, c]
        order = np.lexsort((v, ids))
        sv = v[order]
        lo, hi = bounds[:-1], bounds[1:] - 1
        med[:, c] = (sv[lo + (hi - lo) // 2] + sv[lo + (hi - lo + 1) // 2]) / 2
    m = med[np.repeat(np.arange(len(starts)), np.diff(bounds))]
    inter = (np.maximum(np.minimum(boxes[:, 2], m[:, 2]) - np.maximum(boxes[:, 0], m[:, 0]), 0)
             * np.maximum(np.minimum(boxes[:, 3], m[:, 3]) - np.maximum(boxes[:, 1], m[:, 1]), 0))
    area_m = (m[:, 2] - m[:, 0]) * (m[:, 3] - m[:, 1])
    iou = inter / np.maximum(dets.area[rows] + area_m - inter, 1e-12)
    still = np.add.reduceat((iou >= config.static_iou).astype(np.int64), starts)
    tracks = ids[starts]
    out[tracks] = (still >= need[tracks]) & (still >= config.static_share * np.diff(bounds))
    return out
