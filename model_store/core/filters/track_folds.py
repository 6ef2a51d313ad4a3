"""Folding: an animal's second boxes, given back to its track after the frame-by-frame pass
(model_store/core/filters/tracking.py).

A detector boxes some animals twice: a head or a wing inside the animal's box, a duplicate beside it that NMS
kept (two labels' boxes). Frame by frame, two boxes of one frame never share a track, so every second box starts
a track of its own and a night's count doubles or triples (issue 69: 244 occurrences for 87 beetles). Seen whole,
such a piece says what it is: nearly every box of it lies inside or on one other track's box of its frame, at a
steady place of that box, and where that track walks it walks along. `fold_parts` gives such a piece to that
track, its detections kept (an occurrence holds every box of its animal) and each fold's evidence returned:
- the share of the piece's frames where its box is inside or on the other's (containment of the smaller box,
  `fold_inside`), at least `fold_min_share`, counted over the frames the other is seen in (where it was missed,
  the piece may have taken the animal's own box), and the other is seen in at least half the piece's frames (a
  track mostly on its own is an animal of its own);
- the spread of its place in the other's box (the offset of the centres, in the other's box sizes);
- how far the other moved meanwhile, in its box sizes. A piece that rode along `fold_move` box sizes or more
  with a spread within `fold_spread` is a strong fold.
Where the animal sits, moving together says nothing: two sitters, one inside the other's box, look the same.
Then the piece is folded only when it is seen in few of the frames it could be (at most `fold_sit_density` of
the other's frames from `max_gap_frames` + 1 before its first to as many after its last: a part box comes and
goes, an animal that sits is detected in nearly every frame) and it has gaps of its own, or it comes back (another
piece of that track at its place and of its size; for a piece of three frames or more in a row, those pieces and it
seen in at most 0.4 of the host's frames from the first to the last of them: a part box's runs come and go, a
lookalike sitter set aside frame by frame and broken into pieces is seen in nearly every frame), or it is one or
two boxes in a track seen all around them;
the fold is weak: its confidence is at most 0.5, so it sorts to the review queue. Two animals are not folded on
nesting alone: a piece seen in most of the frames it could be, one that drifted in the other's box, or one nested
in two tracks (unless one of them holds its like, or it is clearly one of them's: track_hosts.py, a herd pressed
together), stays a track. Every
fold (and hand-over) also needs the piece to look like the other track where boxes have an appearance (mean
distance at most `fold_look`): an animal's second box shows that animal, a neighbour's box or a visitor on a
sitter shows another (without this, 137 folds on
nights with no second box, 76 hiding an animal; issue 69). Without an appearance, a piece over `fold_part_area` of
the other's area (itself a plausible whole animal) is folded only on a strong fold. A duplicate of about the
animal's size can
also take the animal's track for a frame while the animal's own box starts another (`hand_overs`): two tracks of
one size, one ending soon after the other starts, nested in the frames they share, are joined first.

A track that never moves is flagged in model_store/core/filters/track_static.py.
Pure numpy: no Ray, no tables.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from model_store.core.filters.track_config import TrackConfig
from model_store.core.filters.track_costs import CameraDetections
from model_store.core.filters.track_hosts import clear_host
from model_store.core.filters.track_pairs import contained, iou, look_apart, overlapping_pairs, same_frame_pairs
from model_store.core.filters.track_rows import TrackRows, distinct

_NO_FOLD = 0.5  # a weak fold's confidence is at most this (below the review queue's usual bars)
_WITHIN = 0.9  # a piece of three frames or more is seen in at most this share of its host's frames over its span
_PRESENT = 0.5  # a piece's host is seen in at least this share of the piece's frames
_SHORT = 0.4  # a piece of one or two frames: its share of the host's frames around it (5 or more of them); a run
# of three or more with the pieces that corroborate it: their share of the host's frames over their span


class Folded(NamedTuple):
    """The folding pass's result: track ids with the pieces given to their animals' tracks, and per folded
    detection (`rows`): its fold's number (0..F-1), the share of the piece inside/on the other's box, the
    spread of its place there, how far the other moved meanwhile (box sizes), and the fold's confidence."""

    track_of: np.ndarray
    rows: np.ndarray
    fold: np.ndarray
    share: np.ndarray
    spread: np.ndarray
    moved: np.ndarray
    confidence: np.ndarray


def hand_overs(config: TrackConfig, rows: TrackRows, a: np.ndarray,
               b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(track ids with hand-overs joined, the rows that start a joined track, the share of the frames the two
    shared in which one box lay inside or on the other), over the fold pass's rows and the candidate pairs of rows
    (a, b) whose boxes meet. A duplicate box takes an animal's track for a frame and
    its own box starts another: the first track ends within `fold_hand_over` frames of the second's start (or
    later, when their boxes meet in at most `fold_turn_share` of the frames they overlap: two tracks taking turns on
    one animal), and in `fold_min_share` of the frames their boxes meet one is inside or on the other; their mean boxes
    are of about one size (`sit_size_ratio`). Each track hands over to at most one, and takes over from at most
    one."""
    track_of, key, known, dets, k = rows.track_of, rows.key, rows.known, rows.dets, rows.k
    none = (track_of, np.zeros(0, dtype=np.int64), np.zeros(0))
    if config.fold_hand_over == 0:
        return none
    differ = track_of[a] != track_of[b]
    a, b = a[differ], b[differ]
    if not len(a):
        return none
    lo, hi = np.minimum(track_of[a], track_of[b]), np.maximum(track_of[a], track_of[b])
    base = int(key.max()) + 1
    full = (lo * k + hi) * base + key[a]  # one code per (track pair, frame)
    code = distinct(full)
    nested = np.zeros(len(code), dtype=bool)
    np.logical_or.at(nested, np.searchsorted(code, full), contained(a, b, dets) >= config.fold_inside)
    pairs, inv, common = np.unique(code // base, return_inverse=True, return_counts=True)
    n_nested = np.bincount(inv, nested.astype(np.int64), minlength=len(pairs))
    # One animal's two boxes look alike; two animals handing over a spot need not (fold_look).
    apart = look_apart(a, b, dets)
    looks_one = np.ones(len(pairs), dtype=bool)
    if apart is not None:
        per = np.searchsorted(pairs, full // base)
        looks_one = (np.bincount(per, apart, minlength=len(pairs))
                     / np.maximum(np.bincount(per, minlength=len(pairs)), 1)) <= config.fold_look
    x, y = pairs // k, pairs % k
    start, end = np.full(k, np.iinfo(np.int64).max), np.full(k, -1)
    np.minimum.at(start, track_of[known], key[known])
    np.maximum.at(end, track_of[known], key[known])
    # One animal's two boxes are of about one size (a duplicate); a part inside is folded, not handed over.
    area = np.bincount(track_of[known], dets.area[known], minlength=k) / np.maximum(
        np.bincount(track_of[known], minlength=k), 1)
    alike = np.minimum(area[x], area[y]) >= config.sit_size_ratio * np.maximum(area[x], area[y])
    alike &= looks_one
    x, y, common, n_nested = x[alike], y[alike], common[alike], n_nested[alike]
    earlier = start[x] <= start[y]
    before, after = np.where(earlier, x, y), np.where(earlier, y, x)
    # Overlapping for a frame or two (a hand-over), or for longer with few shared frames: two tracks taking turns
    # on one animal's boxes (two animals side by side are both seen in nearly every frame they share).
    overlap = end[before] - start[after] + 1
    ok = ((start[before] < start[after]) & (end[before] < end[after])
          & ((overlap <= config.fold_hand_over) | (common <= config.fold_turn_share * overlap))
          & (n_nested >= config.fold_min_share * common))
    before, after, share = before[ok], after[ok], (n_nested / common)[ok]
    one = (np.bincount(before, minlength=k)[before] == 1) & (np.bincount(after, minlength=k)[after] == 1)
    before, after, share = before[one], after[one], share[one]
    if not len(before):
        return none
    target = np.arange(k)
    target[after] = before
    for _ in range(k):
        nxt = target[target]
        if np.array_equal(nxt, target):
            break
        target = nxt
    first_row = np.full(k, -1)
    by_key = known[np.argsort(key[known], kind="stable")]
    first_row[track_of[by_key[::-1]]] = by_key[::-1]
    return target[track_of], first_row[after], share


def fold_parts(config: TrackConfig, track_of: np.ndarray, step_of: np.ndarray, dets: CameraDetections) -> Folded:
    """Give each piece of an animal's second boxes to its animal's track (see the module docstring), after joining
    the hand-overs (`hand_overs`). Rows with step_of < 0 (unknown time) are never folded."""
    empty = np.zeros(0)
    none = Folded(track_of, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), empty, empty, empty, empty)
    if not config.fold:
        return none
    rows = TrackRows.of(dets, track_of, step_of)
    if len(rows.known) < 2:
        return none
    span = int(step_of.max()) + 2
    a, b = overlapping_pairs(dets, step_of)  # the pairs of overlapping boxes of one frame
    track_of, handed, handed_share = hand_overs(config, rows, a, b)
    rows = rows.retracked(track_of)
    key, known = rows.key, rows.known
    none = none._replace(track_of=track_of, rows=handed, fold=np.arange(len(handed)), share=handed_share,
                         spread=np.full(len(handed), np.nan), moved=np.full(len(handed), np.nan),
                         confidence=_NO_FOLD * handed_share)
    a, b = a[track_of[a] != track_of[b]], b[track_of[a] != track_of[b]]
    if not len(a):
        return none
    inside = contained(a, b, dets) >= config.fold_inside
    a, b = a[inside], b[inside]
    if not len(a):
        return none
    k = rows.k
    hits = np.bincount(track_of[known], minlength=k)
    # The piece is the track of fewer detections (ties: the later id); the other is its animal's.
    ta, tb = track_of[a], track_of[b]
    a_piece = (hits[ta] < hits[tb]) | ((hits[ta] == hits[tb]) & (ta > tb))
    piece_row, host_row = np.where(a_piece, a, b), np.where(a_piece, b, a)
    piece, host = track_of[piece_row], track_of[host_row]
    # One nested frame counts once per (piece, host); the piece's frames nested in each host.
    pair = piece * k + host
    _, first = np.unique(pair * span * (int(dets.segment.max()) + 1) + key[piece_row], return_index=True)
    piece_row, host_row, piece, host, pair = (x[first] for x in (piece_row, host_row, piece, host, pair))
    frames_of = _distinct_frames(rows)
    uniq, inv, nested = np.unique(pair, return_inverse=True, return_counts=True)
    p_of, h_of = uniq // k, uniq % k
    # The share is over the frames the host is seen in (where it was missed, the piece may have taken the
    # animal's own box), and the host is seen in at least _PRESENT of the piece's frames: a track mostly on its own
    # is an animal of its own.
    present = _co_frames(rows, p_of, h_of)
    share = nested / np.maximum(present, 1)
    ok = (share >= config.fold_min_share) & (present >= _PRESENT * frames_of[p_of])
    # Where it sits in the host's box, frame by frame (in the host's box sizes), and how far the host moved.
    side = np.maximum(dets.side[host_row], 1e-9)
    off = (dets.centre[piece_row] - dets.centre[host_row]) / side[:, None]
    n = np.bincount(inv, minlength=len(uniq))
    mean = np.stack([np.bincount(inv, off[:, i], minlength=len(uniq)) for i in range(2)], axis=1) / n[:, None]
    var = np.bincount(inv, ((off - mean[inv]) ** 2).sum(axis=1), minlength=len(uniq)) / n
    spread = np.sqrt(var)
    rel = np.bincount(inv, dets.area[piece_row] / np.maximum(dets.area[host_row], 1e-12), minlength=len(uniq)) / n
    # A part keeps its place in the animal's box; a duplicate of about its size falls anywhere on it (NMS kept it
    # for a shifted box): lying on the box in fold_min_share of the frames is its steadiness.
    ok &= (spread <= config.fold_spread) | (rel >= config.sit_size_ratio)
    moved = host_travel(rows, inv, len(uniq), host_row)
    strong = ok & (n >= 2) & (moved >= config.fold_move)
    # A sitter's part box comes and goes: it is seen in few of its host's frames around it (an animal that sits
    # is seen in nearly all of them), and it comes back, at its place and of its size. So a weak fold needs few
    # frames around it (fold_sit_density of the host's, max_gap_frames + 1 either side) and one of: three frames or
    # more with gaps over its own span (_WITHIN), or in a row with other pieces of the same host at its place (within
    # fold_spread) and of its size (within 1.5 x), all of them in at most _SHORT of the host's frames over their span;
    # one or two frames with such a piece, or in a host seen all around them (_SHORT): a visitor that sits on a
    # sitter for a few frames is seen in all of them.
    density = piece_density(rows, p_of, h_of, frames_of, config.max_gap_frames + 1)
    within = piece_density(rows, p_of, h_of, frames_of)
    # Evidence that the piece is this animal's and not a whole animal of its own: it looks like its host (where
    # boxes have an appearance); without one, a piece about the host's size is folded only when it rode along.
    apart = look_apart(piece_row, host_row, dets)
    if apart is not None:
        ok &= np.bincount(inv, apart, minlength=len(uniq)) / n <= config.fold_look
        strong &= ok
    whole = rel > config.fold_part_area if apart is None else np.zeros(len(uniq), dtype=bool)
    corroborated, group = corroborate(np.flatnonzero(ok), h_of, mean, rel, config.fold_spread,
                                        group_span(rows, p_of, h_of, frames_of))
    # A piece of three frames or more with no gaps of its own is folded where its corroborating pieces and it, all
    # told, are seen in few of the host's frames over their span (a part box comes and goes all night; a lookalike
    # sitter set aside frame by frame, broken into pieces, is seen in nearly every frame).
    weak = ok & ~strong & ~whole & (density <= config.fold_sit_density) & (
        ((n >= 3) & ((within <= _WITHIN) | (corroborated & (group <= _SHORT))))
        | (n <= 2) & (corroborated | (density <= _SHORT)))
    # One host only: a piece inside two animals' boxes is folded only where the host's other pieces say it
    # belongs (two sitters side by side), else it says nothing of which one it belongs to.
    fold = strong | weak
    if apart is not None:  # inside two animals' boxes (a herd pressed together): the one it is clearly of
        overlap = np.bincount(inv, iou(piece_row, host_row, dets), minlength=len(uniq)) / n
        fold &= clear_host(fold, p_of, np.bincount(inv, apart, minlength=len(uniq)) / n, overlap, k,
                           frames_of[p_of] <= 2)
    several = np.bincount(p_of[fold], minlength=k)[p_of] > 1
    fold &= ~several | corroborated
    fold &= np.bincount(p_of[fold], minlength=k)[p_of] == 1
    strong &= fold
    if not fold.any():
        return none
    # A host that is itself folded gives its pieces on to its own host (chains end at an unfolded track).
    target = np.arange(k)
    target[p_of[fold]] = h_of[fold]
    for _ in range(k):
        nxt = target[target]
        if np.array_equal(nxt, target):
            break
        target = nxt
    sure = np.where(strong, _NO_FOLD + _NO_FOLD * (1 - spread / config.fold_spread),
                    _NO_FOLD * (1 - density / max(config.fold_sit_density, 1e-9)))
    number = np.full(k, -1)
    number[p_of[fold]] = len(handed) + np.arange(int(fold.sum()))
    rows = np.flatnonzero(number[track_of] >= 0)
    idx = np.full(k, -1)
    idx[p_of[fold]] = np.flatnonzero(fold)
    which = idx[track_of[rows]]
    return Folded(target[track_of], np.r_[none.rows, rows], np.r_[none.fold, number[track_of[rows]]],
                  np.r_[none.share, share[which]], np.r_[none.spread, spread[which]],
                  np.r_[none.moved, moved[which]], np.clip(np.r_[none.confidence, sure[which]], 0.0, 1.0))


def corroborate(cand: np.ndarray, host: np.ndarray, place: np.ndarray, rel: np.ndarray, reach: float,
                  span: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per (piece, host) pair (as many as `host`): is another candidate piece of the same host at about its place
    and size? And the frames of the piece and those pieces over the host's frames from their first to their last
    (1.0 where none). `span` is `group_span`'s: per pair, its piece's frames, first and last frame, and what
    counts the host's frames in a window."""
    n = len(host)
    out = np.zeros(n, dtype=bool)
    group = np.ones(n)
    if len(cand) < 2:
        return out, group
    i, j = same_frame_pairs(host, cand)
    close = (np.hypot(*(place[i] - place[j]).T) <= reach) & (np.maximum(rel[i], rel[j]) <= 1.5 * np.minimum(rel[i],
                                                                                                           rel[j]))
    i, j = i[close], j[close]
    out[i] = True
    out[j] = True
    frames, first, last, host_frames = span
    seen, lo, hi = frames.astype(np.float64), first.copy(), last.copy()
    for x, y in ((i, j), (j, i)):  # each piece with every piece that corroborates it
        np.add.at(seen, x, frames[y])
        np.minimum.at(lo, x, first[y])
        np.maximum.at(hi, x, last[y])
    group[out] = seen[out] / np.maximum(host_frames(np.flatnonzero(out), lo[out], hi[out]), 1)
    return out, group


def group_span(rows: TrackRows, p_of: np.ndarray, h_of: np.ndarray, frames_of: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per (piece, host): the piece's distinct frames (`frames_of`: per track), its first and last frame key, and a
    function counting the host's distinct frames between two keys (inclusive) for given pairs."""
    track_of, key, known = rows.track_of, rows.key, rows.known
    k = len(frames_of)
    first = np.full(k, np.iinfo(np.int64).max)
    last = np.full(k, -1)
    np.minimum.at(first, track_of[known], key[known])
    np.maximum.at(last, track_of[known], key[known])
    base = int(key.max()) + 2
    codes = distinct(track_of[known] * base + key[known])

    def host_frames(pairs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return (np.searchsorted(codes, h_of[pairs] * base + hi, side="right")
                - np.searchsorted(codes, h_of[pairs] * base + lo, side="left"))

    return frames_of[p_of], first[p_of], last[p_of], host_frames


def _co_frames(rows: TrackRows, p_of: np.ndarray, h_of: np.ndarray) -> np.ndarray:
    """Per (piece, host): the number of the piece's frames in which the host has a box too."""
    track_of, key, known = rows.track_of, rows.key, rows.known
    base = int(key.max()) + 1
    codes = distinct(track_of[known] * base + key[known])  # each track's distinct frames, sorted
    lo = np.searchsorted(codes, p_of * base)
    hi = np.searchsorted(codes, (p_of + 1) * base)
    pair = np.repeat(np.arange(len(p_of)), hi - lo)
    at = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)]) if len(p_of) else np.zeros(0, int)
    probe = h_of[pair] * base + codes[at] % base
    found = codes[np.minimum(np.searchsorted(codes, probe), len(codes) - 1)] == probe
    return np.bincount(pair, found.astype(np.int64), minlength=len(p_of))


def _distinct_frames(rows: TrackRows) -> np.ndarray:
    """Per track, the number of distinct frames it has a detection in."""
    key = rows.key
    codes = distinct(rows.track_of[rows.known] * (int(key.max()) + 1) + key[rows.known])
    return np.bincount(codes // (int(key.max()) + 1), minlength=rows.k)


def host_travel(rows: TrackRows, inv: np.ndarray, n: int, host_row: np.ndarray) -> np.ndarray:
    """Per (piece, host) pair (`inv`: each nested frame's pair, of `n`): how far the host's box moved between the
    first and last frame the piece was nested in it, in the host's mean box size."""
    step_of, dets = rows.step_of, rows.dets
    order = np.lexsort((step_of[host_row], inv))
    g = inv[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:] - 1, len(order) - 1]
    r0, r1 = host_row[order[starts]], host_row[order[ends]]
    travel = np.hypot(*(dets.centre[r1] - dets.centre[r0]).T) / np.maximum((dets.side[r0] + dets.side[r1]) / 2, 1e-9)
    out = np.zeros(n)
    out[g[starts]] = travel
    return out


def piece_density(rows: TrackRows, p_of: np.ndarray, h_of: np.ndarray, frames_of: np.ndarray,
                  pad: int = 0) -> np.ndarray:
    """Per (piece, host) pair (p_of, h_of): the piece's frames (`frames_of`: per track) over the host's frames from
    `pad` frames before the piece's first to as many after its last."""
    track_of, key, known, k = rows.track_of, rows.key, rows.known, rows.k
    first = np.full(k, np.iinfo(np.int64).max)
    last = np.full(k, -1)
    np.minimum.at(first, track_of[known], key[known])
    np.maximum.at(last, track_of[known], key[known])
    # The host's distinct frame keys, sorted per host: count those in the piece's padded window.
    codes = distinct(track_of[known] * (int(key.max()) + pad + 2) + key[known])
    base = int(key.max()) + pad + 2
    lo = np.searchsorted(codes, h_of * base + np.maximum(first[p_of] - pad, 0), side="left")
    hi = np.searchsorted(codes, h_of * base + last[p_of] + pad, side="right")
    piece_frames = frames_of[p_of]
    return piece_frames / np.maximum(hi - lo, 1)
