"""A herd's pace: where a new track's animal is likely to be next (model_store/core/filters/tracking.py).

A track seen once has no pace of its own, so the frame pass compares it with its one box only, and the nearest box
of the next frame wins. In a herd, walkers go one way at about one pace; two side by side at a burst's start, one
missed in the next frame, and the other's next box is nearer the missed one's first box than its own: it takes the
wrong track, and one walker is counted twice. A segment (a burst) whose tracks, after a first pass, mostly walk
one way at one pace has that pace; the segment is linked again with it as a second guess of where each one-box
track's animal went (the track's box moved by the pace, beside the box where it is: a grazer does not walk). A
segment of sitters, or of walkers going their own ways (crawlers on a sheet, deer crossing both ways), has none.
Pure numpy.
"""

from __future__ import annotations

import numpy as np

from model_store.core.filters.track_config import TrackConfig
from model_store.core.filters.track_costs import TrackState


def herd_pace(config: TrackConfig, state: TrackState, n_segments: int) -> np.ndarray:
    """Per segment (n_segments, 2), the pace (centre velocity per second) its tracks walk at, NaN where it has none.

    Judged on the segment's tracks of at least three boxes: at least `herd_min_walkers` of them walk (at least
    `sit_speed` box sizes per frame), the walkers are at least half of them, and at least two thirds of the walkers
    go within half the pace of the walkers' median pace (one way, about one speed); that median is the pace."""
    pace = np.full((n_segments, 2), np.nan)
    if config.herd_min_walkers == 0 or state.count == 0:
        return pace
    ids = np.flatnonzero(state.hits[:state.count] >= 3)
    velocity = state.velocity[ids]
    speed = np.hypot(velocity[:, 0], velocity[:, 1])
    walks = speed * state.interval[ids] / np.maximum(state.side[ids], 1e-9) >= config.sit_speed
    seg = state.segment[ids]
    tracks = np.bincount(seg, minlength=n_segments)
    walkers = np.bincount(seg[walks], minlength=n_segments)
    candidate = (walkers >= config.herd_min_walkers) & (2 * walkers >= tracks)
    pick = np.flatnonzero(walks & candidate[seg])
    if not len(pick):
        return pace
    seg, velocity = seg[pick], velocity[pick]
    # Each segment's median, per axis: its walkers sorted by the segment, then the axis; the middle one, or the
    # mean of the middle two (an even count), so a herd walking left is judged as its mirror image walking right.
    # Sorted by the segment first, every axis's order has the same segment runs: each position's rank in its run.
    by_segment = np.sort(seg)
    first = np.concatenate([[True], by_segment[1:] != by_segment[:-1]])
    within = np.arange(len(seg)) - np.maximum.accumulate(np.where(first, np.arange(len(seg)), 0))
    n = walkers[by_segment]
    median = np.full((n_segments, 2), np.nan)
    for axis in range(2):
        by = np.lexsort((velocity[:, axis], seg))
        low, high = by[within == (n - 1) // 2], by[within == n // 2]  # one of each per segment, in segment order
        median[seg[low], axis] = 0.5 * (velocity[low, axis] + velocity[high, axis])
    off = np.hypot(*(velocity - median[seg]).T)
    agree = np.bincount(seg, off <= 0.5 * np.hypot(*median[seg].T), minlength=n_segments)
    herd = candidate & (3 * agree >= 2 * walkers)
    pace[herd] = median[herd]
    return pace
