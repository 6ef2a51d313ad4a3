"""Gap filling: after the frame-by-frame pass, give a short track that sits inside another track's gap, on that
track's spot, back to it (model_store/core/filters/tracking.py).

Frame by frame, one box can be refused by its own track: one snip's descriptor far from the track's look, a box
of another size on a sitter's spot (the gates that keep a newcomer off a leaver's track). The box then starts a
track of its own, confirmed when it is confident, and the track it left goes on in the next frame where it was:
one animal counted twice and two ID switches (A, B, A). Seen whole, the pattern says one animal: track A is seen
right before and right after B, B's boxes lie within `fill_reach` box sizes of A's on both sides, and A was not
seen while B was. No appearance is needed, so it works on a sheet of lookalikes too. A newcomer that lands
beside a sitter which the detector missed for a frame is further off than a sitter's jitter; and where two tracks
could take the short one, or two short ones one gap, nothing is joined (an ambiguity is left as it is).
"""

from __future__ import annotations

import numpy as np

from model_store.core.filters.track_config import TrackConfig
from model_store.core.filters.track_costs import CameraDetections


def fill_gaps(config: TrackConfig, track_of: np.ndarray, step_of: np.ndarray,
              dets: CameraDetections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(track ids with the short tracks given back, their rows, each join's confidence 0..1: how far inside the
    reach it is). Rows with step_of < 0 (unknown time) are never joined."""
    none = np.zeros(0, dtype=np.int64)
    known = np.flatnonzero(step_of >= 0)
    if config.fill_max_frames == 0 or len(known) < 3:
        return track_of, none, np.zeros(0)
    k = int(track_of.max()) + 1
    # Every known row in (track, step) order, with the next row of its track (-1: its track's last).
    order = known[np.lexsort((step_of[known], track_of[known]))]
    same = track_of[order[1:]] == track_of[order[:-1]]
    next_row = np.full(len(track_of), -1)
    next_row[order[:-1][same]] = order[1:][same]
    hits = np.bincount(track_of[known], minlength=k)
    starts = np.flatnonzero(np.concatenate([[True], ~same]))
    first_row, last_row = np.full(k, -1), np.full(k, -1)
    first_row[track_of[order[starts]]] = order[starts]
    last_row[track_of[order[np.r_[starts[1:] - 1, len(order) - 1]]]] = order[np.r_[starts[1:] - 1, len(order) - 1]]
    short = np.flatnonzero((hits >= 1) & (hits <= config.fill_max_frames) & (first_row >= 0))
    if not len(short):
        return track_of, none, np.zeros(0)
    # A's row just before B starts: any row of the same segment up to max_gap_frames + 1 steps before B's first.
    span = int(step_of.max()) + 2
    key = dets.segment * span + step_of
    by_key = known[np.argsort(key[known], kind="stable")]
    sorted_key = key[by_key]
    fb = first_row[short]
    lo = np.searchsorted(sorted_key, key[fb] - config.max_gap_frames - 1, side="left")
    hi = np.searchsorted(sorted_key, key[fb], side="left")
    count = hi - lo
    b = np.repeat(short, count)
    before = by_key[np.repeat(lo, count) + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)]
    after = next_row[before]
    ok = (after >= 0) & (track_of[before] != b)
    b, before, after = b[ok], before[ok], after[ok]
    # A is not seen from B's first step to its last, is seen again after, and its whole gap fits the tracker's.
    ok = ((step_of[after] > step_of[last_row[b]])
          & (step_of[after] - step_of[before] - 1 <= config.max_gap_frames)
          & (dets.segment[after] == dets.segment[before]))
    b, before, after = b[ok], before[ok], after[ok]
    # Near on both sides, in box sizes, and of about the size.
    start, end = first_row[b], last_row[b]
    reach = np.maximum(_distance(dets, before, start), _distance(dets, after, end))
    area_b = dets.area[start]
    ratio = np.minimum(np.minimum(dets.area[before], dets.area[after]), area_b) / np.maximum(
        np.maximum(np.maximum(dets.area[before], dets.area[after]), area_b), 1e-12)
    ok = (reach <= config.fill_reach) & (ratio >= config.min_size_ratio)
    if not config.cross_label:
        ok &= (dets.labels[before] == dets.labels[start]) & (dets.labels[after] == dets.labels[start])
    b, a, reach = b[ok], track_of[before[ok]], reach[ok]
    # Only where it is unambiguous: one track for the short one, one short one for the track's gap.
    pair = np.unique(np.stack([b, a]), axis=1)
    one = (np.bincount(pair[0], minlength=k)[pair[0]] == 1) & (np.bincount(pair[1], minlength=k)[pair[1]] == 1)
    keep = np.isin(b * k + a, pair[0][one] * k + pair[1][one])
    keep &= ~np.isin(a, b)  # a track given to another takes none itself (no chains of gaps)
    b, a, reach = b[keep], a[keep], reach[keep]
    if not len(b):
        return track_of, none, np.zeros(0)
    target = np.arange(k)
    target[b] = a
    joined = np.flatnonzero(np.isin(track_of, b))
    sure = np.zeros(k)
    sure[b] = 1.0 - reach / config.fill_reach
    out = target[track_of]
    return out, joined, np.clip(sure[track_of[joined]], 0.0, 1.0)


def _distance(dets: CameraDetections, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Centre distance of rows r1 and r2 in their mean box side."""
    return np.hypot(*(dets.centre[r1] - dets.centre[r2]).T) / np.maximum((dets.side[r1] + dets.side[r2]) / 2, 1e-9)
