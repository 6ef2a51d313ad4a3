"""Gap filling: after the frame-by-frame pass, give a short track that sits inside another track's gap, on that
track's spot, back to it (model_store/core/filters/tracking.py).

Frame by frame, one box can be refused by its own track: one snip's descriptor far from the track's look, a box
of another size on a sitter's spot (the gates that keep a newcomer off a leaver's track). The box then starts a
track of its own, confirmed when it is confident, and the track it left goes on in the next frame where it was:
one animal counted twice and two ID switches (A, B, A). Seen whole, the pattern says one animal: track A is seen
right before and right after B, B's boxes lie within `fill_reach` box sizes of A's on both sides, and A was not
seen while B was. No appearance is needed, so it works on a sheet of lookalikes too. A newcomer that lands
beside a sitter which the detector missed for a frame is further off than a sitter's jitter; and where two tracks
could take the short one, or two short ones of different frames one gap, nothing is joined (an ambiguity is left
as it is). Two or more short ones in the very same frames of the gap are the animal's box and its second box (a
duplicate NMS kept, a part): the nearest is given back and the others, lying on it, are left for folding
(track_folds.py; issue 69: before, neither was joined, and both were counted).

A walker's first box can be lost the same way (`fill_ends`): a track of one box has no pace yet, so when the
detector then misses the walker for a frame or two (flicker), the walker is a box size or more away when it is
seen again and starts a track of its own; the lone box, confident, is counted as a second animal (a herd's
walkers, issue 69). Seen whole, the walker's own pace says where it was: a short track that ends at most
`max_gap_frames` frames before a walker's first box (or starts as long after its last), within `fill_reach` box
sizes of where the walker's pace puts it in that frame, and of a size the frame pass would link, is given to the
walker; only where one walker and one short track are each other's only candidate.

A fast walker that the detector keeps losing can leave no walker at all (`fill_chains`): missed for two to four
frames at a time, it is a box size or more further on each time it is seen again, past what the frame pass links
after a gap, so it is a chain of short tracks of one or two boxes, each confident and counted. No one of them has a
pace; three in a row do. Of short tracks A, B, C (each at most `fill_max_frames` boxes, each starting at most
`max_gap_frames` frames after the one before ends, within the frame pass's widest reach of it, of about its size
(`chain_size_ratio`: a walker keeps its size) and, where the boxes have an appearance, looking no further apart
than `max_appearance_distance`), where B lies within `fill_reach` box sizes of where a steady pace from A to C puts
it then, moving at least 2 x `sit_speed` box sizes a frame (a walker, as `fill_ends`'s), the three are one walker;
only where each has one such successor and one such predecessor (a link past a track of such a triple, A to C, is
none). An animal's second boxes (set aside before the frame pass) are no link of a chain.
"""

from __future__ import annotations

import numpy as np

from model_store.core.filters.track_config import TrackConfig
from model_store.core.filters.track_costs import CameraDetections, gap_growth
from model_store.core.filters.track_rows import distinct, frame_key, spans, track_ends


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
    order, _, _, first_row, last_row = track_ends(track_of, step_of, known, k)
    same = track_of[order[1:]] == track_of[order[:-1]]
    next_row = np.full(len(track_of), -1)
    next_row[order[:-1][same]] = order[1:][same]
    hits = np.bincount(track_of[known], minlength=k)
    short = np.flatnonzero((hits >= 1) & (hits <= config.fill_max_frames) & (first_row >= 0))
    if not len(short):
        return track_of, none, np.zeros(0)
    # A's row just before B starts: any row of the same segment up to max_gap_frames + 1 steps before B's first.
    key = frame_key(dets.segment, step_of)
    by_key = known[np.argsort(key[known], kind="stable")]
    sorted_key = key[by_key]
    fb = first_row[short]
    lo = np.searchsorted(sorted_key, key[fb] - config.max_gap_frames - 1, side="left")
    hi = np.searchsorted(sorted_key, key[fb], side="left")
    owner, at = spans(lo, hi)
    b, before = short[owner], by_key[at]
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
    _, once = np.unique(b * k + a, return_index=True)  # one candidate per (short track, track)
    b, a, reach = b[once], a[once], reach[once]
    # Only where it is unambiguous: one track for the short one, and one short one for the track's gap, or
    # several in the very same frames (the animal's box and its second box, a duplicate that NMS kept): the
    # nearest is given, and the others lie on it, for folding.
    keep = (np.bincount(b, minlength=k)[b] == 1) & _nearest_of_one_span(a, b, reach, key[first_row[b]],
                                                                        key[last_row[b]], k)
    keep &= ~np.isin(a, b)  # a track given to another takes none itself (no chains of gaps)
    b, a, reach = b[keep], a[keep], reach[keep]
    return _give(track_of, b, a, 1.0 - reach / config.fill_reach)


def _nearest_of_one_span(a: np.ndarray, b: np.ndarray, reach: np.ndarray, first: np.ndarray, last: np.ndarray,
                         k: int) -> np.ndarray:
    """Per candidate (short track b for track a's gap, at `reach`, spanning frame keys first..last): is it a's only
    candidate, or the nearest of candidates that all span the same frames (ties: the lower id)?"""
    out = np.zeros(len(a), dtype=bool)
    if not len(a):
        return out
    order = np.lexsort((b, reach, a))
    head = np.concatenate([[True], a[order][1:] != a[order][:-1]])
    # One span: every candidate of a track starts and ends where its nearest does.
    lead = np.full(k, -1)
    lead[a[order][head]] = order[head]
    same = (first == first[lead[a]]) & (last == last[lead[a]])
    one_span = np.bincount(a, ~same, minlength=k) == 0
    out[order[head]] = one_span[a[order][head]]
    return out


def _distance(dets: CameraDetections, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Centre distance of rows r1 and r2 in their mean box side."""
    return np.hypot(*(dets.centre[r1] - dets.centre[r2]).T) / np.maximum((dets.side[r1] + dets.side[r2]) / 2, 1e-9)


def fill_ends(config: TrackConfig, track_of: np.ndarray, step_of: np.ndarray,
              dets: CameraDetections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(track ids with the short tracks given to the walker whose path they lie on just before its start or
    just after its end, their rows, each join's confidence 0..1: how far inside the reach it is). See the module
    docstring. Rows with step_of < 0 (unknown time) are never joined."""
    none = np.zeros(0, dtype=np.int64)
    ends = _ends(config, track_of, step_of, 4)
    if ends is None:
        return track_of, none, np.zeros(0)
    known, k, first_row, last_row, hits = ends
    # A walker: three boxes or more, moving steadily (its pace over its whole length, as stitching's walkers).
    # Its pace is per second: a frame where the detector saw nothing at all is not a row, so steps undercount.
    travel = dets.centre[last_row] - dets.centre[first_row]
    steps = np.maximum(step_of[last_row] - step_of[first_row], 1)
    # A track of unknown-time rows alone has no ends (-1: the camera's last row, whose time may be inf) and no
    # known hits, so it is neither a walker nor short below: its NaN pace is never read, and not warned about.
    with np.errstate(invalid="ignore"):
        pace = travel / np.maximum(dets.time[last_row] - dets.time[first_row], 1e-9)[:, None]
    side = np.maximum(np.sqrt(np.bincount(track_of[known], dets.area[known], minlength=k) / np.maximum(hits, 1)),
                      1e-9)
    walker = np.flatnonzero((hits >= 3) & (np.hypot(*travel.T) / steps / side >= 2 * config.sit_speed)
                            & (dets.time[last_row] > dets.time[first_row]))
    short = np.flatnonzero((hits >= 1) & (hits <= config.fill_max_frames))
    if not len(walker) or not len(short):
        return track_of, none, np.zeros(0)
    key = frame_key(dets.segment, step_of)
    pairs = []  # (short, walker, the short's row next to the walker, the walker's row next to it)
    for w_row, s_row, after in ((first_row, last_row, 1), (last_row, first_row, -1)):
        # Walkers sorted by the key of their end here; shorts whose own end lies 1..max_gap_frames + 1 away.
        by = walker[np.argsort(key[w_row[walker]], kind="stable")]
        wk = key[w_row[by]]
        sk = key[s_row[short]]
        lo = np.searchsorted(wk, sk + 1 if after > 0 else sk - config.max_gap_frames - 1, side="left")
        hi = np.searchsorted(wk, sk + config.max_gap_frames + 1 if after > 0 else sk - 1, side="right")
        owner, at = spans(lo, hi)
        s, w = short[owner], by[at]
        pairs.append((s, w, s_row[s], w_row[w]))
    s, w, rs, rw = (np.concatenate(x) for x in zip(*pairs, strict=True))
    ok = (s != w) & (dets.segment[rs] == dets.segment[rw])
    if not config.cross_label:
        ok &= dets.labels[rs] == dets.labels[rw]
    s, w, rs, rw = s[ok], w[ok], rs[ok], rw[ok]
    # Where the walker's pace puts it in the short track's frame, and how far the short track's box is from it.
    predicted = dets.centre[rw] + pace[w] * (dets.time[rs] - dets.time[rw])[:, None]
    off = np.hypot(*(dets.centre[rs] - predicted).T) / side[w]
    ratio = np.minimum(dets.area[rs], dets.area[rw]) / np.maximum(np.maximum(dets.area[rs], dets.area[rw]), 1e-12)
    ok = (off <= config.fill_reach) & (ratio >= config.min_size_ratio)
    s, w, rs, rw, off = s[ok], w[ok], rs[ok], rw[ok], off[ok]
    # Only where it is unambiguous: one walker for the short track, one short track for each end of the walker.
    end = w * 2 + (step_of[rs] > step_of[rw])
    one = (np.bincount(s, minlength=k)[s] == 1) & (np.bincount(end, minlength=2 * k)[end] == 1)
    return _give(track_of, s[one], w[one], 1.0 - off[one] / config.fill_reach)


def fill_chains(config: TrackConfig, track_of: np.ndarray, step_of: np.ndarray, dets: CameraDetections,
                second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(track ids with each chain of short tracks on one walker's steady pace joined, their rows, each join's
    confidence 0..1: how far inside the reach its worst step is). See the module docstring. `second` (N,) bool: the
    animal's second boxes set aside before the frame pass; a track of them is no link. Rows with step_of < 0
    (unknown time) are never joined."""
    none = np.zeros(0, dtype=np.int64)
    ends = _ends(config, track_of, step_of, 3)
    if ends is None:
        return track_of, none, np.zeros(0)
    known, k, first_row, last_row, hits = ends
    own = np.bincount(track_of[known], ~second[known], minlength=k)
    short = np.flatnonzero((hits >= 1) & (hits <= config.fill_max_frames) & (own == hits))
    if len(short) < 3:
        return track_of, none, np.zeros(0)
    # Links A -> B: B starts 1..max_gap_frames + 1 frames after A ends, of one segment.
    key = frame_key(dets.segment, step_of)
    by = short[np.argsort(key[first_row[short]], kind="stable")]
    start_key = key[first_row[by]]
    end_key = key[last_row[short]]
    owner, at = spans(np.searchsorted(start_key, end_key + 1, side="left"),
                      np.searchsorted(start_key, end_key + config.max_gap_frames + 1, side="right"))
    a, b = short[owner], by[at]
    ra, rb = last_row[a], first_row[b]
    missed = step_of[rb] - step_of[ra] - 1
    ratio = np.minimum(dets.area[ra], dets.area[rb]) / np.maximum(np.maximum(dets.area[ra], dets.area[rb]), 1e-12)
    reach = config.max_centre_distance * gap_growth(config, missed)
    ok = ((dets.segment[ra] == dets.segment[rb]) & (dets.time[rb] > dets.time[ra])
          & (_distance(dets, ra, rb) <= reach) & (ratio >= config.chain_size_ratio))
    if not config.cross_label:
        ok &= dets.labels[ra] == dets.labels[rb]
    if dets.app is not None:  # a link's two boxes show one animal: never further apart than a frame-pass link
        ok &= 1.0 - np.einsum("ij,ij->i", dets.app[ra], dets.app[rb]) <= config.max_appearance_distance
    a, b, ra, rb = a[ok], b[ok], ra[ok], rb[ok]
    if not len(a):
        return track_of, none, np.zeros(0)
    # Triples A -> B -> C (link i: A -> B, link j: B -> C): where does A-to-C's steady pace put B's first box?
    # Between two boxes, not beyond them: one box's jitter moves an extrapolated place by the gap's ratio.
    by_src = np.argsort(a, kind="stable")
    src = a[by_src]
    i, j = spans(np.searchsorted(src, b, side="left"), np.searchsorted(src, b, side="right"))
    j = by_src[j]
    r0, r1, r2 = ra[i], rb[i], rb[j]
    share = ((dets.time[r1] - dets.time[r0]) / np.maximum(dets.time[r2] - dets.time[r0], 1e-9))[:, None]
    predicted = dets.centre[r0] + share * (dets.centre[r2] - dets.centre[r0])
    off = np.hypot(*(dets.centre[r1] - predicted).T) / np.maximum(dets.side[r1], 1e-9)
    travel = np.hypot(*(dets.centre[r2] - dets.centre[r0]).T) / np.maximum(step_of[r2] - step_of[r0], 1)
    ok = (off <= config.fill_reach) & (travel / np.maximum(dets.side[r0], 1e-9) >= 2 * config.sit_speed)
    i, j, off = i[ok], j[ok], off[ok]
    # A link that skips a track of a kept triple (A -> C past B) is no link of the chain: A -> B -> C is.
    skipped = np.isin(a * k + b, a[i] * k + b[j])
    ok = ~skipped[i] & ~skipped[j]
    i, j, off = i[ok], j[ok], off[ok]
    # Only where it is unambiguous: each track has one successor and one predecessor over the kept triples.
    links = distinct(np.concatenate([i, j]))
    succ = np.bincount(a[links], minlength=k)
    pred = np.bincount(b[links], minlength=k)
    keep = ((succ[a[i]] == 1) & (succ[a[j]] == 1) & (pred[b[i]] == 1) & (pred[b[j]] == 1))
    i, j, off = i[keep], j[keep], off[keep]
    if not len(i):
        return track_of, none, np.zeros(0)
    # Each chain's tracks to its first: follow the predecessors (a chain has no branches now).
    target = np.arange(k)
    target[b[i]], target[b[j]] = a[i], a[j]
    for _ in range(k):
        nxt = target[target]
        if (nxt == target).all():
            break
        target = nxt
    sure = np.ones(k)
    np.minimum.at(sure, b[i], 1.0 - off / config.fill_reach)
    np.minimum.at(sure, b[j], 1.0 - off / config.fill_reach)
    joined = np.flatnonzero(target[track_of] != track_of)
    worst = np.ones(k)
    np.minimum.at(worst, target, sure)
    return target[track_of], joined, np.clip(worst[target[track_of[joined]]], 0.0, 1.0)


def _ends(config: TrackConfig, track_of: np.ndarray, step_of: np.ndarray,
          least: int) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray] | None:
    """(known rows, number of tracks, each track's first and last known row, its known rows), or None when filling
    is off or fewer than `least` rows have a known time."""
    known = np.flatnonzero(step_of >= 0)
    if config.fill_max_frames == 0 or len(known) < least:
        return None
    k = int(track_of.max()) + 1
    _, _, _, first_row, last_row = track_ends(track_of, step_of, known, k)
    return known, k, first_row, last_row, np.bincount(track_of[known], minlength=k)


def _give(track_of: np.ndarray, short: np.ndarray, to: np.ndarray,
          sure: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(track ids with each `short` track given to `to`, the rows given, each one's confidence: its join's `sure`)."""
    if not len(short):
        return track_of, np.zeros(0, dtype=np.int64), np.zeros(0)
    k = int(track_of.max()) + 1
    target = np.arange(k)
    target[short] = to
    joined = np.flatnonzero(np.isin(track_of, short))
    per_track = np.zeros(k)
    per_track[short] = sure
    return target[track_of], joined, np.clip(per_track[track_of[joined]], 0.0, 1.0)
