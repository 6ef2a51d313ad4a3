"""Side folds: a second box of about the animal's size beside its box, given back to its track (issue 84;
model_store/core/filters/tracking.py runs it after track_folds.py's folds, before stitching).

A detector can box one animal as two boxes of about one size side by side: a head and a body, the two halves of a
deer behind a stem, a bird and its reflection. They overlap a little or not at all, neither lies inside the other
(so track_folds.py, which folds a box inside or on the animal's, does not see them), they move together, and the
second box comes and goes. Frame by frame the second box starts a track of its own, sometimes several, and a visit
counts two or three times. Seen whole, such a piece says what it is; `fold_sides` gives it to the animal's track
(its detections kept, the evidence returned as track_folds.py's) when, over the frames the two share:
- it keeps beside the other track's box: in at least `fold_min_share` of its frames it lies within `side_gap` box
  sides of the other's box, without being inside it, and its mean box is at least `side_area` of the other's area
  (about one size);
- the offset is kept: the spread of its centre's offset from the other's, in the other's box sides, is at most
  `fold_spread` (moving together: where the other walks, the piece walks along);
- it looks like the other (mean appearance distance at most `fold_look`, where boxes have one);
- it comes and goes: it is seen in at most `side_density` of the other track's frames around it (from
  `max_gap_frames` + 1 before its first to as many after its last). Two animals walking side by side, or a mother
  with her young, are each seen in nearly every frame: they keep beside each other, move together and look alike
  too, and this is what tells them from one animal's two boxes.
A fold is strong when the other moved at least `fold_move` box sizes while the piece rode along over three frames
or more; else it is weak (confidence at most 0.5: the review queue). A piece beside two tracks is folded into
neither. Rows with unknown times and rows already folded are never folded here. Pure numpy.
"""

from __future__ import annotations

import numpy as np

from model_store.core.filters.track_config import TrackConfig
from model_store.core.filters.track_costs import CameraDetections
from model_store.core.filters.track_folds import Folded, corroborate, group_span, host_travel, piece_density
from model_store.core.filters.track_pairs import contained, look_apart, same_frame_pairs
from model_store.core.filters.track_rows import TrackRows, distinct, frame_key

_NO_FOLD = 0.5  # a weak fold's confidence is at most this (track_folds.py's bar)


def _beside_pairs(config: TrackConfig, rows: np.ndarray, key: np.ndarray,
                  dets: CameraDetections) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of `rows` of one frame whose boxes are within side_gap box sides of each other and not nested."""
    b = dets.boxes
    reach = config.side_gap * dets.side[:, None]
    grown = np.concatenate([b[:, :2] - reach / 2, b[:, 2:] + reach / 2], axis=1)
    a, c = same_frame_pairs(key, rows, grown)
    keep = contained(a, c, dets) < config.fold_inside
    return a[keep], c[keep]


def fold_sides(config: TrackConfig, folded: Folded, step_of: np.ndarray, dets: CameraDetections) -> Folded:
    """`folded` with each piece that keeps beside another track (see the module docstring) folded into it, the new
    folds appended (numbered after the others)."""
    track_of = folded.track_of
    if not config.fold or config.side_density == 0:
        return folded
    done = np.zeros(len(step_of), dtype=bool)
    done[folded.rows] = True
    rows = np.flatnonzero((step_of >= 0) & ~done)
    if len(rows) < 2:
        return folded
    key = frame_key(dets.segment, step_of)
    a, c = _beside_pairs(config, rows, key, dets)
    a, c = a[track_of[a] != track_of[c]], c[track_of[a] != track_of[c]]
    if not len(a):
        return folded
    k = int(track_of.max()) + 1
    base = int(key.max()) + 1
    codes = distinct(track_of[rows] * base + key[rows])  # each track's distinct frames
    frames_of = np.bincount(codes // base, minlength=k)
    ta, tc = track_of[a], track_of[c]
    a_piece = (frames_of[ta] < frames_of[tc]) | ((frames_of[ta] == frames_of[tc]) & (ta > tc))
    piece_row, host_row = np.where(a_piece, a, c), np.where(a_piece, c, a)
    piece, host = track_of[piece_row], track_of[host_row]
    # One frame counts once per (piece, host).
    _, first = np.unique((piece * k + host) * base + key[piece_row], return_index=True)
    piece_row, host_row, piece, host = piece_row[first], host_row[first], piece[first], host[first]
    pairs, inv, beside = np.unique(piece * k + host, return_inverse=True, return_counts=True)
    p_of, h_of = pairs // k, pairs % k
    n = beside.astype(np.float64)
    ok = beside >= config.fold_min_share * frames_of[p_of]
    side = np.maximum(dets.side[host_row], 1e-9)
    off = (dets.centre[piece_row] - dets.centre[host_row]) / side[:, None]
    mean = np.stack([np.bincount(inv, off[:, i], minlength=len(pairs)) for i in range(2)], axis=1) / n[:, None]
    spread = np.sqrt(np.bincount(inv, ((off - mean[inv]) ** 2).sum(axis=1), minlength=len(pairs)) / n)
    ok &= spread <= config.fold_spread
    rel = np.bincount(inv, dets.area[piece_row], minlength=len(pairs)) / np.maximum(
        np.bincount(inv, dets.area[host_row], minlength=len(pairs)), 1e-12)
    ok &= rel >= config.side_area
    apart = look_apart(piece_row, host_row, dets)
    if apart is not None:
        ok &= np.bincount(inv, apart, minlength=len(pairs)) / n <= config.fold_look
    # It comes and goes: seen in at most side_density of the host's frames over its span, or, a piece that comes
    # back (others of the host at its offset and size: track_folds.py's `corroborate`), it and those pieces over
    # theirs. A piece of one or two frames that does not come back says nothing.
    unfolded = TrackRows(dets, track_of, step_of, key, rows, k)  # the rows no fold took yet
    within = piece_density(unfolded, p_of, h_of, frames_of)
    again, group = corroborate(np.flatnonzero(ok), h_of, mean, rel, config.fold_spread,
                               group_span(unfolded, p_of, h_of, frames_of))
    density = np.where(again, np.minimum(group, within), within)
    ok &= (again | (frames_of[p_of] >= 3)) & (density <= config.side_density)
    # A piece beside two tracks is folded into neither; a host is not itself folded here.
    ok &= np.bincount(p_of[ok], minlength=k)[p_of] == 1
    hosts = np.zeros(k, dtype=bool)
    hosts[h_of[ok]] = True
    ok &= ~hosts[p_of]
    if not ok.any():
        return folded
    moved = host_travel(unfolded, inv, len(pairs), host_row)
    strong = ok & (beside >= 3) & (moved >= config.fold_move)
    sure = np.where(strong, _NO_FOLD + _NO_FOLD * (1 - spread / config.fold_spread),
                    _NO_FOLD * (1 - density / max(config.side_density, 1e-9)))
    start = int(folded.fold.max()) + 1 if len(folded.fold) else 0
    number = np.full(k, -1)
    number[p_of[ok]] = start + np.arange(int(ok.sum()))
    idx = np.full(k, -1)
    idx[p_of[ok]] = np.flatnonzero(ok)
    new_rows = rows[number[track_of[rows]] >= 0]
    which = idx[track_of[new_rows]]
    target = np.arange(k)
    target[p_of[ok]] = h_of[ok]
    share = beside / np.maximum(frames_of[p_of], 1)
    return Folded(target[track_of], np.r_[folded.rows, new_rows], np.r_[folded.fold, number[track_of[new_rows]]],
                  np.r_[folded.share, share[which]], np.r_[folded.spread, spread[which]],
                  np.r_[folded.moved, moved[which]], np.r_[folded.confidence, np.clip(sure[which], 0.0, 1.0)])
