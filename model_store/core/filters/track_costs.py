"""The tracker's gates and costs (model_store/core/filters/tracking.py): the state of one camera's tracks, and one
frame's assignment of detections to them.

Each (live track, detection) pair of a segment is gated on centre distance first (a sitter's reach, a crawler's
own wander, a track seen once; wider after a gap), then costed from IoU, box-size ratio and centre distance
against the track's last box or the box its velocity predicts (a track seen once: its herd's pace, if any),
whichever is nearer; a sitter keeps its size; appearance counts as far as it separates the camera's animals; a
track missed for a while costs more to link.
A pair that is the only candidate of its track and its detection is linked at once; the rest go to one
Hungarian assignment per segment, where each link must save against starting a new track (`max_cost`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from model_store.core.filters.track_config import TrackConfig


class TrackState:
    """The growing state of one camera's tracks: last box (and its area and side), centre velocity per second,
    last time and frame position, number of detections, label, appearance (a running mean)."""

    def __init__(self, capacity: int, dim: int) -> None:
        self.box = np.zeros((capacity, 4))
        self.area = np.zeros(capacity)
        self.mean_area = np.zeros(capacity)
        self.interval = np.zeros(capacity)
        self.side = np.zeros(capacity)
        self.velocity = np.zeros((capacity, 2))
        self.wander = np.zeros(capacity)
        self.time = np.zeros(capacity)
        self.frame = np.zeros(capacity, dtype=np.int64)
        self.hits = np.zeros(capacity, dtype=np.int64)
        self.label = np.zeros(capacity, dtype=np.int64)
        self.segment = np.zeros(capacity, dtype=np.int64)
        self.app = np.zeros((capacity, dim), dtype=np.float32)
        self.count = 0

    def start(self, dets: CameraDetections, rows: np.ndarray, step: int) -> np.ndarray:
        ids = np.arange(self.count, self.count + len(rows))
        self.box[ids], self.area[ids], self.side[ids] = dets.boxes[rows], dets.area[rows], dets.side[rows]
        self.mean_area[ids], self.interval[ids] = dets.area[rows], 0.0
        self.time[ids], self.frame[ids], self.hits[ids] = dets.time[rows], step, 1
        self.label[ids], self.segment[ids] = dets.labels[rows], dets.segment[rows]
        if dets.app is not None:
            self.app[ids] = dets.app[rows]
        self.count += len(rows)
        return ids

    def extend(self, ids: np.ndarray, dets: CameraDetections, rows: np.ndarray, step: int, config: TrackConfig) -> None:
        boxes, t = dets.boxes[rows], dets.time[rows]
        dt = (t - self.time[ids])[:, None]
        moved = ((boxes[:, :2] + boxes[:, 2:]) - (self.box[ids, :2] + self.box[ids, 2:])) * 0.5
        pace = np.divide(moved, dt, out=np.zeros_like(moved), where=dt > 0)
        # How far this step fell from where the track's motion said, in box sizes: a sitter's jitter, a steady
        # crawler's turns. It sets how far the track's gate reaches (a running mean, like the velocity).
        off = np.hypot(*(moved - self.velocity[ids] * dt).T) / np.maximum((self.side[ids] + dets.side[rows]) / 2,
                                                                          1e-9)
        self.wander[ids] = np.where(self.hits[ids] == 1, off, 0.5 * (self.wander[ids] + off))
        # A running mean of the velocity: a sitting moth's jitter averages out, a walking deer's pace stays.
        self.velocity[ids] = np.where((self.hits[ids] == 1)[:, None], pace, config.velocity_memory * self.velocity[ids]
                                     + (1 - config.velocity_memory) * pace)
        # The mean area (a sitter's box jitters; its size does not change) and the time per frame step.
        self.mean_area[ids] = (self.mean_area[ids] * self.hits[ids] + dets.area[rows]) / (self.hits[ids] + 1)
        per_step = dt[:, 0] / np.maximum(step - self.frame[ids], 1)
        self.interval[ids] = np.where(self.hits[ids] == 1, per_step, 0.5 * (self.interval[ids] + per_step))
        self.box[ids], self.area[ids], self.side[ids] = boxes, dets.area[rows], dets.side[rows]
        self.time[ids], self.frame[ids] = t, step
        self.hits[ids] += 1
        if dets.app is not None:
            memory = config.appearance_memory
            mixed = memory * self.app[ids] + (1 - memory) * dets.app[rows]
            self.app[ids] = mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-9)


class CameraDetections:
    """One camera's detections with what the cost needs of each, computed once for all frames: the box, its
    area, side and centre, its frame's time, label code, appearance (and the animal descriptor stitching compares,
    when given), and segment (set by link_camera)."""

    def __init__(self, boxes: np.ndarray, labels: np.ndarray, app: np.ndarray | None,
                 animal: np.ndarray | None = None) -> None:
        self.boxes = boxes
        self.time = np.zeros(len(boxes))
        self.segment = np.zeros(len(boxes), dtype=np.int64)
        self.area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
        self.side = np.sqrt(self.area)
        self.centre = (boxes[:, :2] + boxes[:, 2:]) * 0.5
        self.labels = labels
        self.app = app
        self.animal = animal
        self.overlaps: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # track_pairs.overlapping_pairs's


@dataclass(frozen=True, slots=True)
class FramePass:
    """One camera's frame pass (tracking.py), made once by link_camera_scored and read by every step of it: the tracks
    grown so far (`state`; the herd pass links its segments again into a new one), the camera's detections, each
    row's step (-1: unknown time), the camera's measured appearance separation, and the two outputs the steps write
    in place: each row's track and the confidence of the link that put it there."""

    state: TrackState
    dets: CameraDetections
    step_of: np.ndarray
    separation: float
    track_of: np.ndarray
    confidence: np.ndarray


class Pairs(NamedTuple):
    """The P candidate (track, detection) pairs one geometric cost is taken over: the track side's box (P, 4), area
    and side, the detection's row in the camera's detections, and how far (in box sizes) the pair may lie apart."""

    box: np.ndarray
    area: np.ndarray
    side: np.ndarray
    rows: np.ndarray
    reach: np.ndarray


def _geometry_cost(config: TrackConfig, dets: CameraDetections, pairs: Pairs) -> np.ndarray:
    """Weighted geometric cost of each pair's track box against its detection; inf where a gate (IoU, size ratio,
    centre distance up to the pair's `reach` sides) fails."""
    tb, ta, ts, rows, reach = pairs
    db, da = dets.boxes[rows], dets.area[rows]
    ix = np.minimum(tb[:, 2], db[:, 2]) - np.maximum(tb[:, 0], db[:, 0])
    iy = np.minimum(tb[:, 3], db[:, 3]) - np.maximum(tb[:, 1], db[:, 1])
    inter = np.maximum(ix, 0) * np.maximum(iy, 0)
    iou = inter / np.maximum(ta + da - inter, 1e-12)
    ratio = np.minimum(ta, da) / np.maximum(np.maximum(ta, da), 1e-12)
    dc = dets.centre[rows]
    dist = np.hypot((tb[:, 0] + tb[:, 2]) * 0.5 - dc[:, 0], (tb[:, 1] + tb[:, 3]) * 0.5 - dc[:, 1])
    dist /= np.maximum((ts + dets.side[rows]) * 0.5, 1e-9)
    cost = (config.iou_weight * (1 - iou) + config.size_weight * (1 - ratio)
            + config.distance_weight * np.minimum(dist / reach, 1.0))
    cost[(iou < config.min_iou) | (ratio < config.min_size_ratio) | (dist > reach)] = np.inf
    return cost


def gap_growth(config: TrackConfig, missed: np.ndarray) -> np.ndarray:
    """How much further than `max_centre_distance` an animal unseen for `missed` frames may have gone, like a
    random walk: sqrt(1 + gap_distance_growth * missed). The frame pass and the chain join share it; a negative
    gap (rows of another segment, refused by the caller) counts as none."""
    return np.sqrt(1 + config.gap_distance_growth * np.maximum(missed, 0))


def _pairs(live_segment: np.ndarray, row_segment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (live track, detection) pair of one segment, as positions into `live` and into the detections
    (which are sorted by segment)."""
    n_seg = int(max(live_segment.max(), row_segment.max())) + 1
    by_seg = np.argsort(live_segment, kind="stable")
    lc, mc = np.bincount(live_segment, minlength=n_seg), np.bincount(row_segment, minlength=n_seg)
    pc = lc * mc
    pair_seg = np.repeat(np.arange(n_seg), pc)
    within = np.arange(len(pair_seg)) - np.repeat(np.cumsum(pc) - pc, pc)
    per_row = mc[pair_seg]
    return (by_seg[(np.cumsum(lc) - lc)[pair_seg] + within // per_row],
            (np.cumsum(mc) - mc)[pair_seg] + within % per_row)


def assign(config: TrackConfig, frame_pass: FramePass, live: np.ndarray, rows: np.ndarray, step: int,
           herd: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Hungarian assignment per segment of this step's detections (`rows`) to the live tracks of their segment:
    (track ids, positions in `rows`, each link's confidence). `step` says how long each track has been unseen;
    `herd` (segments, 2): per segment the pace its herd walks at (track_herd.py; NaN: none), a track seen once's
    predicted motion."""
    state, dets, separation = frame_pass.state, frame_pass.dets, frame_pass.separation
    empty = np.zeros(0, dtype=np.int64)
    li, ri = _pairs(state.segment[live], dets.segment[rows])
    if not len(li):
        return empty, empty, np.zeros(0)
    t, r = live[li], rows[ri]
    missed = step - 1 - state.frame[t]
    # How far a track may have gone: a sitter a little, a crawler as far as its own wander says, a track seen
    # once as far as an unknown motion may take it; an animal unseen for a while further, like a random walk.
    hits = state.hits[t]
    reach = np.where(hits > 1, np.clip(config.sit_reach + config.wander_gain * state.wander[t], config.sit_reach,
                                       config.max_centre_distance), config.first_reach)
    reach = np.minimum(reach, config.max_centre_distance) * gap_growth(config, missed)
    # The distance gate first, on centres alone (from the last box or the predicted one): on a crowded sheet
    # most pairs are far apart, and only the near ones need the whole cost.
    shift = np.zeros((len(t), 2))
    if config.predict_motion:
        # A track seen once has no motion of its own: it walks at its herd's pace, if any, else it stands.
        once = np.zeros(2) if herd is None else np.nan_to_num(herd[state.segment[t]])
        velocity = np.where((hits > 1)[:, None], state.velocity[t], once)
        shift = velocity * (dets.time[r] - state.time[t])[:, None]
    centre = (state.box[t, :2] + state.box[t, 2:]) * 0.5
    limit = reach * (state.side[t] + dets.side[r]) * 0.5
    gap = dets.centre[r] - centre
    near = np.flatnonzero((np.hypot(gap[:, 0], gap[:, 1]) <= limit)
                          | (np.hypot(gap[:, 0] - shift[:, 0], gap[:, 1] - shift[:, 1]) <= limit))
    if len(near) < len(li):
        li, ri, t, r = li[near], ri[near], t[near], r[near]
        missed, reach, shift = missed[near], reach[near], shift[near]
    if not len(li):
        return empty, empty, np.zeros(0)
    tb, ta, ts = state.box[t], state.area[t], state.side[t]
    cost = _geometry_cost(config, dets, Pairs(tb, ta, ts, r, reach))
    if config.predict_motion:
        # The box the velocity predicts is a second hypothesis of where a moving track is; the nearer counts.
        moving = np.flatnonzero(np.abs(shift).sum(axis=1) > 0)
        if len(moving):
            predicted = tb[moving] + np.concatenate([shift[moving], shift[moving]], axis=1)
            cost[moving] = np.minimum(cost[moving], _geometry_cost(
                config, dets, Pairs(predicted, ta[moving], ts[moving], r[moving], reach[moving])))
    if config.sit_size_ratio > config.min_size_ratio:
        # A sitter keeps its size: a box of another size on its spot is another insect (against its mean area,
        # which the box jitter does not move much).
        speed = np.hypot(*state.velocity[t].T) * state.interval[t] / np.maximum(ts, 1e-9)
        ma, da = state.mean_area[t], dets.area[r]
        ratio = np.minimum(ma, da) / np.maximum(np.maximum(ma, da), 1e-12)
        # A box the frame's edge cuts does not show the animal's size.
        cut = ((np.minimum(tb[:, :2], dets.boxes[r, :2]).min(axis=1) <= 0.005)
               | (np.maximum(tb[:, 2:], dets.boxes[r, 2:]).max(axis=1) >= 0.995))
        cost[(state.hits[t] > 1) & (speed < config.sit_speed) & (ratio < config.sit_size_ratio) & ~cut] = np.inf
    weights = config.iou_weight + config.size_weight + config.distance_weight
    if dets.app is not None and separation > 0:
        # Appearance only as far as it separates this camera's animals: on a sheet of lookalikes it says nothing.
        distance = 1.0 - np.einsum("ij,ij->i", state.app[t], dets.app[r])
        if separation >= config.min_separation:
            distance[distance > config.max_appearance_distance] = np.inf
        cost += config.appearance_weight * separation * distance
        weights += config.appearance_weight * separation
    # A track missed for a while costs more to link, the less it was seen before: an insect that sat for an hour
    # and flew off is likely back; one seen twice and gone is likely gone, and the newcomer another.
    cost = cost / weights + config.gap_penalty * missed / (1.0 + (state.hits[t] - 1) / config.gap_penalty_hits)
    differ = state.label[t] != dets.labels[r]
    if config.cross_label:
        cost += config.label_penalty * differ
    else:
        cost[differ] = np.inf
    ok = np.flatnonzero(cost < config.max_cost)
    li, ri, cost = li[ok], ri[ok], cost[ok]
    # A pair that is the only candidate of its track and of its detection is in every optimal assignment:
    # only the rest (a crowded segment) goes to the Hungarian solver.
    alone = (np.bincount(li, minlength=len(live))[li] == 1) & (np.bincount(ri, minlength=len(rows))[ri] == 1)
    parts = [(li[alone], ri[alone], cost[alone])]
    rest = np.flatnonzero(~alone)
    if len(rest):
        parts += _crowded(li[rest], ri[rest], cost[rest], dets.segment[rows[ri[rest]]], config.max_cost)
    picked_l, picked_r, picked_c = (np.concatenate(column) for column in zip(*parts))
    alt = np.minimum(_runner_up(li, cost, picked_l, picked_c), _runner_up(ri, cost, picked_r, picked_c))
    # How sure each link is, 0..1: its margin over the best alternative (starting a new track, or the next
    # candidate of its track or of its detection), as a share of max_cost.
    confidence = np.clip((np.minimum(alt, config.max_cost) - picked_c) / config.max_cost, 0.0, 1.0)
    return live[picked_l], picked_r, confidence


def _crowded(li: np.ndarray, ri: np.ndarray, cost: np.ndarray, seg: np.ndarray,
             max_cost: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The links of the contested pairs (track position li, detection position ri, cost, segment), one optimal
    assignment per segment, as (track positions, detection positions, costs) pieces.

    A segment with one track or one detection takes its cheapest pair, all such segments at once; the others go
    to scipy's Hungarian solver one by one. Each segment's positions in its matrix are found for all segments at
    once (np.unique per segment was half of this step's time on a crowded camera: thousands of small segments)."""
    order = np.lexsort((ri, li, seg))
    li, ri, cost, seg = li[order], ri[order], cost[order], seg[order]
    starts = np.flatnonzero(np.concatenate([[True], seg[1:] != seg[:-1]]))
    ends = np.append(starts[1:], len(seg))
    part = np.repeat(np.arange(len(starts)), ends - starts)
    # Each pair's row and column in its segment's matrix: the rank of its track (detection) among the segment's.
    l_new = np.concatenate([[True], (seg[1:] != seg[:-1]) | (li[1:] != li[:-1])])
    n_l = np.add.reduceat(l_new, starts)
    lpos = np.cumsum(l_new) - 1 - (np.cumsum(n_l) - n_l)[part]
    by_r = np.lexsort((ri, seg))
    r_new = np.concatenate([[True], (seg[by_r][1:] != seg[by_r][:-1]) | (ri[by_r][1:] != ri[by_r][:-1])])
    n_r = np.add.reduceat(r_new, starts)
    rpos = np.empty(len(ri), dtype=np.int64)
    rpos[by_r] = np.cumsum(r_new) - 1 - (np.cumsum(n_r) - n_r)[part[by_r]]
    out = []
    # One track or one detection: its cheapest pair (the first of equal ones, in (track, detection) order).
    single = (n_l == 1) | (n_r == 1)
    if single.any():
        is_single = single[part]
        keys = np.flatnonzero(is_single)
        best = keys[np.lexsort((keys, cost[keys], part[keys]))]
        best = best[np.concatenate([[True], part[best][1:] != part[best][:-1]])]
        out.append((li[best], ri[best], cost[best]))
    if not single.all():
        # Imported here: scipy.optimize costs ~0.3-1 s to import, and every process that imports model_store (each
        # Ray worker of a reprocess, each CLI command) imported it through the filters for this one call.
        from scipy.optimize import linear_sum_assignment

        for p in np.flatnonzero(~single).tolist():
            lo, hi = starts[p], ends[p]
            # Each link saves (max_cost - cost) over starting a new track; the assignment maximises the saving,
            # so it never forces a poor link for the sake of linking more pairs (0: not a link).
            matrix, pair = np.zeros((n_l[p], n_r[p])), np.full((n_l[p], n_r[p]), -1)
            matrix[lpos[lo:hi], rpos[lo:hi]] = cost[lo:hi] - max_cost
            pair[lpos[lo:hi], rpos[lo:hi]] = np.arange(lo, hi)
            a, b = linear_sum_assignment(matrix)
            linked = pair[a, b][matrix[a, b] < 0]
            # The pair's own cost, not the matrix's (cost - max_cost) + max_cost: rounded, that could come out
            # above the cost itself, and the link's runner-up (_runner_up) would then be the link itself.
            out.append((li[linked], ri[linked], cost[linked]))
    return out


def _runner_up(group: np.ndarray, cost: np.ndarray, picked: np.ndarray, picked_cost: np.ndarray) -> np.ndarray:
    """For each picked pair (its group `picked`, its cost), the cheapest other candidate of its group (inf: none)."""
    n = int(max(group.max(initial=-1), picked.max(initial=-1))) + 1
    order = np.lexsort((cost, group))
    g, c = group[order], cost[order]
    starts = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]])) if len(g) else np.zeros(0, dtype=np.int64)
    first, second = np.full(n, np.inf), np.full(n, np.inf)
    first[g[starts]] = c[starts]
    has_two = starts + 1 < len(g)
    has_two[has_two] = g[starts[has_two] + 1] == g[starts[has_two]]
    second[g[starts[has_two]]] = c[starts[has_two] + 1]
    return np.where(picked_cost <= first[picked], second[picked], first[picked])

