"""Stitching: after the frame-by-frame pass, join a track that ended to one that starts a few frames later when
this camera's own evidence says the two are one animal (model_store/core/filters/tracking.py).

Frame by frame, a track that vanished for more than `max_gap_frames` is gone: an insect that flies off for a few
minutes and comes back comes back as a second track. Whole tracks say more than one box (their mean size, their
mean look), but what a distance between two looks means depends on the camera's animals: on a sheet of many
species two insects are far apart; on a sheet of one hue in fixed-size boxes (issue 58's field night) two
different insects are as close as one insect's own frames, and a stitcher fitted to the first joins the second's
newcomers to the insects that just left. So each camera calibrates on its own tracks:
- certainly different: two tracks seen in the same frame (two animals at once);
- certainly the same: the first and second half of one track of at least 2 x `stitch_min_frames` detections.
A track that ended (a) and one that starts up to `stitch_gap_frames` frames later (b), both seen at least
`stitch_min_frames` times, of about one mean size (`stitch_size_ratio`), and b starting within `stitch_reach`
box sizes of a's end (or anywhere, for two tracks of `stitch_far_frames` detections), are joined only when:
- the camera has at least `stitch_min_pairs` different pairs and five same pairs to calibrate on (else nothing
  is joined);
- their mean looks' distance is at most `stitch_margin` times the `stitch_floor_quantile` quantile of the
  different pairs' distances: far below what two animals of this camera show, in absolute terms;
- the calibrated probability that they are one animal, discounted by `stitch_gap_cost` per missed frame, is at
  least `stitch_min_probability`. The probability is Bayes' rule on the distance with kernel densities (of log
  distance) of the two calibration sets and a prior for a return estimated from the candidates themselves (EM
  over their distances, near and far candidates apart): a night where nothing comes back estimates a small prior.
Where the camera's evidence cannot tell its animals apart nothing is stitched: a split is the safe error (a person
merges two occurrences with one click; a merge hides an animal). Where there is too little to calibrate on (one
burst, a camera's first animals), only a walker's next step is joined, on its motion (`_continue_walkers`).
Each track joins at most one before and one after it (one Hungarian assignment, scipy's `linear_sum_assignment`,
on -log of the discounted probability), so chains form (a moth that flew off twice). Each join's evidence
(distance, gap, probability) is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from model_store.core.filters.track_config import TrackConfig
from model_store.core.filters.track_costs import CameraDetections
from model_store.core.filters.track_rows import TrackRows, distinct, spans, track_ends

_CALIBRATION_FRAMES = 300  # frames sampled for the certainly-different pairs
_MIN_SAME = 5  # fewer long tracks than this: one animal's own spread is not known
_LOG_EPS = 1e-4  # distances are compared on log(d + this): a look's distance spans orders of magnitude
_KERNEL_POINTS = 2000  # a calibration set's density is smoothed from at most this many of its distances


class Stitched(NamedTuple):
    """The stitching pass's result: track ids with the joined tracks merged, and per join (the row that starts
    the joined track): the calibrated probability, the mean looks' distance and the frames missed between."""

    track_of: np.ndarray
    rows: np.ndarray
    probability: np.ndarray
    distance: np.ndarray
    gap: np.ndarray


@dataclass(frozen=True, slots=True)
class StitchPass:
    """What stitch_tracks reads of one camera, made once and shared by its steps: the pass's rows (TrackRows; folded
    rows are of unknown step here), each row's look vector (None: no look), and per track its hits, first and last
    row (by step), mean area and mean look; and the long tracks (`stitch_min_frames` hits or more)."""

    rows: TrackRows
    vec: np.ndarray | None
    hits: np.ndarray
    first_row: np.ndarray
    last_row: np.ndarray
    mean_area: np.ndarray
    mean_vec: np.ndarray
    long: np.ndarray


class Calibration(NamedTuple):
    """One camera's look distances between certainly different and certainly same tracks."""

    different: np.ndarray
    same: np.ndarray

    def enough(self, config: TrackConfig) -> bool:
        return len(self.different) >= config.stitch_min_pairs and len(self.same) >= _MIN_SAME

    def bar(self, config: TrackConfig) -> float:
        """The largest distance a join may have: far below the different pairs' low end."""
        return config.stitch_margin * float(np.quantile(self.different, config.stitch_floor_quantile))

    def likelihoods(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(same, different) densities of log distance: each calibration set smoothed by a Gaussian kernel, so
        that the different pairs' low tail (two lookalikes among many animals) is what was seen, not a fit's."""
        x = np.log(d + _LOG_EPS)
        return tuple(_density(x, np.log(s + _LOG_EPS)) for s in (self.same, self.different))


def _density(x: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """A Gaussian kernel density of `sample` at `x` (Silverman's bandwidth; at most _KERNEL_POINTS points)."""
    if len(sample) > _KERNEL_POINTS:
        sample = np.sort(sample)[np.linspace(0, len(sample) - 1, _KERNEL_POINTS).astype(np.int64)]
    spread = min(float(sample.std()), float(np.subtract(*np.percentile(sample, [75, 25]))) / 1.34 or np.inf)
    h = max(0.9 * spread * len(sample) ** -0.2, 0.05)
    out, block = np.zeros(len(x)), np.empty((512, len(sample)))
    for lo in range(0, len(x), 512):  # (512 x 2,000) at a time, in place: a third faster, the same numbers
        z = block[:len(x[lo:lo + 512])]
        np.subtract(x[lo:lo + 512, None], sample[None, :], out=z)
        z /= h
        z *= z
        z *= -0.5
        out[lo:lo + 512] = np.exp(z, out=z).sum(axis=1)
    return out / (len(sample) * h) + 1e-12


def return_prior(f_same: np.ndarray, f_diff: np.ndarray, iterations: int = 50) -> float:
    """The share of candidate pairs that are returns, estimated by EM on their likelihoods (mixture weight of
    two known components), kept within 0.001..0.5."""
    pi = 0.1
    for _ in range(iterations):
        post = pi * f_same / np.maximum(pi * f_same + (1 - pi) * f_diff, 1e-300)
        pi = float(np.clip(post.mean(), 1e-3, 0.5)) if len(post) else pi
    return pi


def calibrate(config: TrackConfig, p: StitchPass) -> Calibration:
    """The camera's certainly-different pairs (long tracks seen in one frame) and certainly-same pairs (the two
    halves of one track), as distances between mean looks (the pass's `vec` is not None)."""
    track_of, step_of, known = p.rows.track_of, p.rows.step_of, p.rows.known
    vec, mean_vec, hits = p.vec, p.mean_vec, p.hits
    k = len(hits)
    long = hits >= config.stitch_min_frames
    rows = known[long[track_of[known]]]
    frame = p.rows.key[rows]
    frames = distinct(frame)
    if len(frames) > _CALIBRATION_FRAMES:
        frames = frames[np.linspace(0, len(frames) - 1, _CALIBRATION_FRAMES).astype(np.int64)]
    pairs = []
    order = np.argsort(frame, kind="stable")
    bounds = np.searchsorted(frame[order], np.r_[frames, frames + 1])
    for lo, hi in zip(bounds[:len(frames)], bounds[len(frames):], strict=True):
        here = distinct(track_of[rows[order[lo:hi]]])
        if len(here) > 1:
            i, j = np.triu_indices(len(here), 1)
            pairs.append(here[i] * k + here[j])
    different = np.zeros(0)
    if pairs:
        uniq = distinct(np.concatenate(pairs))
        different = 1.0 - np.einsum("ij,ij->i", mean_vec[uniq // k], mean_vec[uniq % k])
    # The same animal: the first half of each long track against its second half.
    whole = hits >= 2 * config.stitch_min_frames
    rows = known[whole[track_of[known]]]
    if not len(rows):
        return Calibration(np.maximum(different, 0.0), np.zeros(0))
    rows = rows[np.lexsort((step_of[rows], track_of[rows]))]
    ids = track_of[rows]
    start = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    position = np.arange(len(rows)) - np.repeat(start, np.diff(np.r_[start, len(rows)]))
    half = position >= hits[ids] // 2
    sums = np.zeros((k, 2, vec.shape[1]))
    np.add.at(sums, (ids, half.astype(np.int64)), vec[rows].astype(np.float64))
    tracks = distinct(ids)
    a, b = sums[tracks, 0], sums[tracks, 1]
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-9)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-9)
    same = 1.0 - np.einsum("ij,ij->i", a, b)
    return Calibration(np.maximum(different, 0.0), np.maximum(same, 0.0))


def _candidates(config: TrackConfig, p: StitchPass, within: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (ended track, later track) pair of the long tracks where the second starts at most `within` frames
    after the first ended (0: the very next, for walkers), in its segment and within max_gap_s."""
    step_of, dets, long, first_row, last_row = p.rows.step_of, p.rows.dets, p.long, p.first_row, p.last_row
    span = int(step_of.max()) + 2
    seg_step = dets.segment[first_row[long]] * span + step_of[first_row[long]]
    by_start = long[np.argsort(seg_step, kind="stable")]
    starts = np.sort(seg_step)
    end_key = dets.segment[last_row[long]] * span + step_of[last_row[long]]
    lo = np.searchsorted(starts, end_key, side="right")
    hi = np.searchsorted(starts, end_key + within + 1, side="right")
    owner, at = spans(lo, hi)
    a, b = long[owner], by_start[at]
    ra, rb = last_row[a], first_row[b]
    ok = (dets.segment[ra] == dets.segment[rb]) & (dets.time[rb] - dets.time[ra] <= config.max_gap_s)
    if not config.cross_label:
        ok &= dets.labels[ra] == dets.labels[rb]
    return a[ok], b[ok]


def _continue_walkers(config: TrackConfig, p: StitchPass, none: Stitched) -> Stitched:
    """Where the looks cannot be calibrated (a single burst, a camera's first few animals), join only a walker's
    next step: a track that moved steadily (at least 2 x sit_speed box sizes a frame over its whole length) and
    one that starts in the very next frame, of its size, within `stitch_reach` box sizes of where its motion said,
    the only such pair of both. The evidence is the motion, not the look; a sitter that left and a
    newcomer that landed are never joined this way. Its evidence has no look distance (NaN: not calibrated), and
    its probability is how near the prediction it started (1 - off / reach), not a calibrated one; `none` (no join)
    when there is no such pair."""
    step_of, dets, first_row, last_row = p.rows.step_of, p.rows.dets, p.first_row, p.last_row
    mean_area, hits = p.mean_area, p.hits
    a, b = _candidates(config, p, 0)
    if not len(a):
        return none
    ra, rb, fa = last_row[a], first_row[b], first_row[a]
    steps = np.maximum(step_of[ra] - step_of[fa], 1)
    side = np.sqrt(np.maximum(mean_area[a], 1e-12))
    pace = (dets.centre[ra] - dets.centre[fa]) / steps[:, None]
    speed = np.hypot(*pace.T) / side
    off = np.hypot(*(dets.centre[rb] - dets.centre[ra] - pace).T) / side
    ratio = np.minimum(mean_area[a], mean_area[b]) / np.maximum(np.maximum(mean_area[a], mean_area[b]), 1e-12)
    reach = config.stitch_reach
    ok = (speed >= 2 * config.sit_speed) & (off <= reach) & (ratio >= config.stitch_size_ratio)
    a, b, rb, off = a[ok], b[ok], rb[ok], off[ok]
    one = (np.bincount(a, minlength=len(hits))[a] == 1) & (np.bincount(b, minlength=len(hits))[b] == 1)
    a, b, rb, off = a[one], b[one], rb[one], off[one]
    if not len(a):
        return none
    root = _chains(p, a, b)
    n = len(a)
    return Stitched(root[p.rows.track_of], rb, np.clip(1.0 - off / reach, 0.0, 1.0), np.full(n, np.nan),
                    np.zeros(n, dtype=np.int64))


def _chains(p: StitchPass, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Each track's root: joined tracks followed back to the first of their chain."""
    step_of, first_row, k = p.rows.step_of, p.first_row, len(p.hits)
    root = np.arange(k)
    prev = np.full(k, -1)
    prev[after] = before
    for t in after[np.argsort(step_of[first_row[after]], kind="stable")]:
        if prev[t] >= 0:
            root[t] = root[prev[t]]
    return root


def stitch_pass(config: TrackConfig, track_of: np.ndarray, step_of: np.ndarray, dets: CameraDetections) -> StitchPass:
    """The stitching pass's per-camera values (StitchPass) over the rows of known step (at least one)."""
    vec = dets.animal if dets.animal is not None else dets.app
    rows = TrackRows.of(dets, track_of, step_of)
    known, k = rows.known, rows.k
    ids = track_of[known]
    hits = np.bincount(ids, minlength=k)
    # Each track's first and last row (by step), mean area and mean look.
    order, bounds, tracks, first_row, last_row = track_ends(track_of, step_of, known, k)
    mean_area = np.bincount(ids, dets.area[known], minlength=k) / np.maximum(hits, 1)
    mean_vec = np.zeros((k, vec.shape[1] if vec is not None else 0))
    if vec is not None:
        mean_vec[tracks] = np.add.reduceat(vec[order].astype(np.float64), bounds[:-1], axis=0)
        mean_vec /= np.maximum(np.linalg.norm(mean_vec, axis=1, keepdims=True), 1e-9)
    long = tracks[hits[tracks] >= config.stitch_min_frames]
    return StitchPass(rows, vec, hits, first_row, last_row, mean_area, mean_vec, long)


def stitch_tracks(config: TrackConfig, track_of: np.ndarray, step_of: np.ndarray,
                  dets: CameraDetections, folded: np.ndarray | None = None) -> Stitched:
    """Join the tracks this camera's evidence says are one animal (see the module docstring). Rows with
    step_of < 0 (unknown time) are never joined. `folded` (N,) bool: an animal's second boxes folded into its
    track; they move with it but say nothing of it (a head's box would shrink its mean size and blur its look,
    and a return would miss the size and look bars)."""
    none = Stitched(track_of, np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    if config.stitch_gap_frames == 0 or not len(track_of):
        return none
    if folded is not None and folded.any():
        step_of = np.where(folded, -1, step_of)  # left out of every mean, end and calibration below
    known = np.flatnonzero(step_of >= 0)
    if not len(known):
        return none
    p = stitch_pass(config, track_of, step_of, dets)
    if len(p.long) < 2:
        return none
    hits, first_row, last_row, mean_area, mean_vec = p.hits, p.first_row, p.last_row, p.mean_area, p.mean_vec
    calibration = calibrate(config, p) if p.vec is not None else None
    if calibration is None or not calibration.enough(config):
        # Nothing says what a look distance means here: only a walker's next step (below) may be joined.
        return _continue_walkers(config, p, none)
    a, b = _candidates(config, p, config.stitch_gap_frames)
    ra, rb = last_row[a], first_row[b]
    gap = step_of[rb] - step_of[ra] - 1
    ratio = np.minimum(mean_area[a], mean_area[b]) / np.maximum(np.maximum(mean_area[a], mean_area[b]), 1e-12)
    reach = np.hypot(*(dets.centre[rb] - dets.centre[ra]).T) / np.maximum(np.sqrt(mean_area[a]), 1e-9)
    near = reach <= config.stitch_reach
    far = (hits[a] >= config.stitch_far_frames) & (hits[b] >= config.stitch_far_frames)
    ok = (ratio >= config.stitch_size_ratio) & (near | far)
    a, b, rb, gap, near = a[ok], b[ok], rb[ok], gap[ok], near[ok]
    if not len(a):
        return none
    distance = np.maximum(1.0 - np.einsum("ij,ij->i", mean_vec[a], mean_vec[b]), 0.0)
    f_same, f_diff = calibration.likelihoods(distance)
    # The prior for a return, estimated on the candidates (near and far apart: a far newcomer is far more common).
    prior = np.where(near, return_prior(f_same[near], f_diff[near]), return_prior(f_same[~near], f_diff[~near]))
    probability = prior * f_same / np.maximum(prior * f_same + (1 - prior) * f_diff, 1e-300)
    discounted = probability * np.exp(-config.stitch_gap_cost * gap)
    ok = (distance <= calibration.bar(config)) & (discounted >= config.stitch_min_probability)
    if not ok.any():
        return none
    a, b, rb, gap, distance, probability, discounted = (x[ok] for x in (a, b, rb, gap, distance, probability,
                                                                         discounted))
    from scipy.optimize import linear_sum_assignment  # imported here: see track_costs.assign

    au, ai = np.unique(a, return_inverse=True)
    bu, bi = np.unique(b, return_inverse=True)
    # -log of the discounted probability: the cost grows with the distance and with the gap; 1e3: not a join.
    matrix = np.full((len(au), len(bu)), 1e3)
    matrix[ai, bi] = -np.log(np.maximum(discounted, 1e-12))
    x, y = linear_sum_assignment(matrix)
    picked = matrix[x, y] < 1e3
    x, y = x[picked], y[picked]
    pair = {(int(i), int(j)): n for n, (i, j) in enumerate(zip(ai, bi, strict=True))}
    chosen = np.array([pair[(int(i), int(j))] for i, j in zip(x, y, strict=True)], dtype=np.int64)
    before, after = au[x], bu[y]
    root = _chains(p, before, after)
    return Stitched(root[track_of], first_row[after], np.clip(probability[chosen], 0.0, 1.0), distance[chosen],
                    gap[chosen].astype(np.int64))
