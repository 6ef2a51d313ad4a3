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

Linked among themselves, the set-aside boxes of neighbours chain: on a sheet of one-size boxes (a blob detector),
a duplicate of one insect and, frames later, a duplicate of the insect beside it are the only set-aside boxes near
each other, so they make one track, nested in one host in half its frames and in another in the rest, and no
host holds it in `fold_min_share` of them: not folded, counted (issue 69, NOTES.md §28f). So a set-aside track
that folding left whole (tracking.py `_fold`) is cut by `split_by_partner` by the track of the box each of its
boxes was set aside for (its partner, the one it overlaps most), where those tracks are seen together (two
animals): a second box goes with the box it doubles, and each part is folded, or not, on its own evidence.
Part boxes (not set aside) chain the same way: a head of one insect, frames later a head of the one pressed
beside it. A track left whole every box of which lies inside another box of its frame (`fold_inside`), of a part's
size (at most `fold_part_area` of its area) and alike (`fold_look`), is cut by those boxes' tracks as well
(`nested_partner`: of the boxes it lies in, the one it overlaps most; NOTES.md §28h). Pure numpy.
"""

from __future__ import annotations

import numpy as np

from model_store.core.filters.track_config import TrackConfig
from model_store.core.filters.track_costs import CameraDetections
from model_store.core.filters.track_pairs import contained, iou, look_apart, overlapping_pairs
from model_store.core.filters.track_rows import distinct


def second_boxes(config: TrackConfig, step_of: np.ndarray, dets: CameraDetections,
                 scores: np.ndarray | None) -> np.ndarray:
    """Per detection (N,) int: the row of the box it was set aside for (of those, the one it overlaps most), -1
    where it was not set aside."""
    out = np.full(len(step_of), -1, dtype=np.int64)
    known = np.flatnonzero(step_of >= 0)
    if not config.fold or config.fold_set_aside == 0 or len(known) < 2:
        return out
    a, b = overlapping_pairs(dets, step_of)
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
    a, b, ratio, iou = a[ok], b[ok], ratio[ok], iou[ok]
    score = dets.area if scores is None else np.asarray(scores, dtype=np.float64)
    a_second = np.where(ratio < config.sit_size_ratio, dets.area[a] < dets.area[b],
                        (score[a] < score[b]) | ((score[a] == score[b]) & (a > b)))
    second, first = np.where(a_second, a, b), np.where(a_second, b, a)
    by_overlap = np.lexsort((-iou, second))  # each second box's pairs, the largest overlap first
    rows, pick = np.unique(second[by_overlap], return_index=True)
    out[rows] = first[by_overlap[pick]]
    return out


def nested_partner(config: TrackConfig, step_of: np.ndarray, dets: CameraDetections) -> np.ndarray:
    """Per detection (N,) int: the row of the box of its frame it lies inside or on (containment of at least
    `fold_inside`, the other box the larger; of those, the one it overlaps most), -1 where it lies in none. A part
    box's partner: the box of the animal it is a part of, or of a neighbour pressed on it."""
    out = np.full(len(step_of), -1, dtype=np.int64)
    known = np.flatnonzero(step_of >= 0)
    if len(known) < 2:
        return out
    a, b = overlapping_pairs(dets, step_of)
    a_small = dets.area[a] < dets.area[b]
    small, large = np.where(a_small, a, b), np.where(a_small, b, a)
    # a part: inside the other, of a part's size (at most fold_part_area of its area), looking like it
    ok = (contained(small, large, dets) >= config.fold_inside) & (
        dets.area[small] <= config.fold_part_area * dets.area[large])
    apart = look_apart(small, large, dets)
    if apart is not None:
        ok &= apart <= config.fold_look
    small, large = small[ok], large[ok]
    by_overlap = np.lexsort((-iou(small, large, dets), small))  # each small box's pairs, the largest overlap first
    rows, pick = np.unique(small[by_overlap], return_index=True)
    out[rows] = large[by_overlap[pick]]
    return out


def split_by_partner(track_of: np.ndarray, partner: np.ndarray, key: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """Track ids (renumbered 0..K-1, in the old order) with each of `tracks` that holds set-aside boxes (`partner`
    >= 0, from `second_boxes`) cut by the tracks of their partners: a second box goes with the box it doubles. Only
    partners' tracks seen together in a frame (`key`: each row's frame) are two animals for certain; partners'
    tracks never seen together may be one animal's track that the frame pass broke (stitched later), so their
    second boxes stay together (the partners' tracks, each by the rows it partners, are taken largest first, and
    each joins the first group it shares no frame with)."""
    rows = np.flatnonzero((partner >= 0) & np.isin(track_of, tracks))
    if not len(rows):
        return track_of
    k = int(track_of.max()) + 1
    host = track_of[partner[rows]]
    pairs, inv, count = np.unique(track_of[rows] * k + host, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    several = np.flatnonzero(np.bincount(pairs // k, minlength=k) > 1)  # set-aside tracks with two partners or more
    group = np.zeros(len(pairs), dtype=np.int64)  # per (set-aside track, partner's track): its group in the track
    if len(several):
        involved = np.isin(pairs // k, several)
        frames_of = _frames_by_track(track_of, key, distinct(pairs[involved] % k))
        for t in several:
            mine = np.flatnonzero(pairs // k == t)
            groups: list[set] = []
            for i in mine[np.argsort(-count[mine], kind="stable")]:
                seen = frames_of[int(pairs[i] % k)]
                g = next((j for j, frames in enumerate(groups) if not frames & seen), len(groups))
                if g == len(groups):
                    groups.append(set())
                groups[g] |= seen
                group[i] = g
    if not group.any():
        return track_of
    out = track_of.copy()
    # each new group after every other track, sorting just after its set-aside track's old id
    cut = group[inv] > 0
    code = track_of[rows[cut]] * (int(group.max()) + 1) + group[inv[cut]]
    out[rows[cut]] = k + np.unique(code, return_inverse=True)[1].reshape(-1)
    order = np.where(out >= k, track_of.astype(np.float64) + 0.5, out)
    groups_all, first = np.unique(out, return_index=True)
    rank = np.empty(int(out.max()) + 1, dtype=np.int64)
    rank[groups_all] = np.argsort(np.argsort(order[first], kind="stable"), kind="stable")
    return rank[out]


def _frames_by_track(track_of: np.ndarray, key: np.ndarray, tracks: np.ndarray) -> dict[int, set]:
    """The frame keys each of `tracks` has a row in."""
    rows = np.flatnonzero(np.isin(track_of, tracks))
    order = rows[np.argsort(track_of[rows], kind="stable")]
    cuts = np.flatnonzero(np.diff(track_of[order])) + 1
    return {int(track_of[part[0]]): set(key[part].tolist()) for part in np.split(order, cuts) if len(part)}
