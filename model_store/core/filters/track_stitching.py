"""Stitching: after the frame-by-frame pass, join a track that ended to one that starts a few frames later when
the two whole tracks say they are one animal (model_store/core/filters/tracking.py).

Frame by frame, a track that vanished for more than `max_gap_frames` is gone, and one that vanished for fewer
must win against a newcomer on one box's evidence: on a light-trap sheet a newcomer often lands where another
just left, so the online pass is strict, and an insect that flies off for a few minutes and comes back comes
back as a second track. A whole track says more than one box: its mean size (the box jitter averages out) and
its mean appearance. On benchmarks/tracking_kinds.py's nights of seed 7, the mean appearance distance of a true
return was under 0.01 in most cases while two different insects' was 0.25 or more in nine pairs of ten, and the
mean areas of one insect were within 10 % of each other where two insects' were mostly not. So a track that
ended is joined to one that starts in the next frame (an insect that walked further than a sitter's reach) or
after up to `stitch_gap_frames` missed frames (one that flew off and came back) when both were seen at least
`stitch_min_frames` times, their mean areas are within `stitch_size_ratio`, their mean appearances within
`stitch_appearance_distance`, and the newcomer's first box within `stitch_reach` box sizes of the old track's
last one; two long tracks (`stitch_far_frames`) whose appearance is closer still (`stitch_far_distance`) are
joined wherever on the picture the second starts (an insect that comes back elsewhere on the sheet). Only where
appearance separates the camera's animals (`appearance_separation` >= `min_separation`): on a sheet of one
species nothing is stitched. Each track joins at most one before and one after it (one Hungarian assignment,
scipy's `linear_sum_assignment`), so chains form (a moth that flew off twice).
"""

from __future__ import annotations

import numpy as np

from model_store.core.filters.track_config import TrackConfig
from model_store.core.filters.track_costs import CameraDetections


def stitch_tracks(config: TrackConfig, track_of: np.ndarray, step_of: np.ndarray, dets: CameraDetections,
                  separation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(track ids with stitched tracks joined, the rows that start a joined track, each join's confidence 0..1:
    how far inside the gates it is). Rows with step_of < 0 (unknown time) are never joined."""
    none = np.zeros(0, dtype=np.int64)
    if (config.stitch_gap_frames == 0 or dets.app is None or separation < config.min_separation
            or not len(track_of)):
        return track_of, none, np.zeros(0)
    known = np.flatnonzero(step_of >= 0)
    k = int(track_of.max()) + 1
    ids, steps = track_of[known], step_of[known]
    hits = np.bincount(ids, minlength=k)
    # Each track's first and last row (by step), mean area and mean appearance.
    order = known[np.lexsort((steps, ids))]
    bounds = np.flatnonzero(np.diff(track_of[order], prepend=-1, append=k + 1))
    tracks = track_of[order[bounds[:-1]]]
    first_row, last_row = np.full(k, -1), np.full(k, -1)
    first_row[tracks], last_row[tracks] = order[bounds[:-1]], order[bounds[1:] - 1]
    mean_area = np.bincount(ids, dets.area[known], minlength=k) / np.maximum(hits, 1)
    mean_app = np.zeros((k, dets.app.shape[1]))
    mean_app[tracks] = np.add.reduceat(dets.app[order].astype(np.float64), bounds[:-1], axis=0)
    mean_app /= np.maximum(np.linalg.norm(mean_app, axis=1, keepdims=True), 1e-9)
    # Candidates: a long-enough track that ended (a) and one that starts later in the same segment (b).
    long = tracks[hits[tracks] >= config.stitch_min_frames]
    if len(long) < 2:
        return track_of, none, np.zeros(0)
    # Each ended track against the tracks that start within stitch_gap_frames after it, in its segment: sorted by
    # (segment, first step), those are one run of the sorted list.
    seg_step = dets.segment[first_row[long]] * (int(step_of.max()) + 2) + step_of[first_row[long]]
    by_start = long[np.argsort(seg_step, kind="stable")]
    starts = np.sort(seg_step)
    end_key = dets.segment[last_row[long]] * (int(step_of.max()) + 2) + step_of[last_row[long]]
    lo = np.searchsorted(starts, end_key, side="right")
    hi = np.searchsorted(starts, end_key + config.stitch_gap_frames + 1, side="right")
    count = hi - lo
    a = np.repeat(long, count)
    b = by_start[np.repeat(lo, count) + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)]
    ra, rb = last_row[a], first_row[b]
    gap = step_of[rb] - step_of[ra] - 1
    ok = (dets.segment[ra] == dets.segment[rb]) & (dets.time[rb] - dets.time[ra] <= config.max_gap_s)
    if not config.cross_label:
        ok &= dets.labels[ra] == dets.labels[rb]
    a, b, ra, rb, gap = a[ok], b[ok], ra[ok], rb[ok], gap[ok]
    ratio = np.minimum(mean_area[a], mean_area[b]) / np.maximum(np.maximum(mean_area[a], mean_area[b]), 1e-12)
    look = 1.0 - np.einsum("ij,ij->i", mean_app[a], mean_app[b])
    reach = np.hypot(*(dets.centre[rb] - dets.centre[ra]).T) / np.maximum(np.sqrt(mean_area[a]), 1e-9)
    near = (reach <= config.stitch_reach) & (look <= config.stitch_appearance_distance)
    far = ((look <= config.stitch_far_distance) & (hits[a] >= config.stitch_far_frames)
           & (hits[b] >= config.stitch_far_frames))
    ok = (ratio >= config.stitch_size_ratio) & (near | far)
    if not ok.any():
        return track_of, none, np.zeros(0)
    a, b, rb = a[ok], b[ok], rb[ok]
    # How far inside the gates each join is: 0 at a gate, 1 for the same size and look, no gap, the same spot.
    cost = np.mean([(1 - ratio[ok]) / (1 - config.stitch_size_ratio),
                    look[ok] / max(config.stitch_appearance_distance, config.stitch_far_distance),
                    np.minimum(reach[ok] / config.stitch_reach, 1.0),
                    gap[ok] / config.stitch_gap_frames], axis=0)
    from scipy.optimize import linear_sum_assignment  # imported here: see track_costs.assign

    au, ai = np.unique(a, return_inverse=True)
    bu, bi = np.unique(b, return_inverse=True)
    matrix = np.full((len(au), len(bu)), 2.0)  # 2: not a join (every join costs at most 1)
    matrix[ai, bi] = cost
    x, y = linear_sum_assignment(matrix)
    joined = matrix[x, y] <= 1.0
    before, after, sure = au[x[joined]], bu[y[joined]], 1.0 - matrix[x[joined], y[joined]]
    # Chains: follow each joined track back to the first of its chain.
    root = np.arange(k)
    prev = np.full(k, -1)
    prev[after] = before
    for t in after[np.argsort(step_of[first_row[after]], kind="stable")]:
        if prev[t] >= 0:
            root[t] = root[prev[t]]
    return root[track_of], first_row[after], np.clip(sure, 0.0, 1.0)
