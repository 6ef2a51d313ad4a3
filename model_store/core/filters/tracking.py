"""Tracking: link the kept detections of one camera's time-ordered frames into tracks (occurrences).

A moth that sits on a light-trap sheet for an hour is photographed every 20 s; a deer in a camera-trap
burst is photographed every second. Counted per frame they are many animals; linked into tracks they are one.
`link_camera` walks the frames of ONE camera in time order. For each frame it builds one cost matrix between
the tracks still alive (seen within `max_gap_frames` frames and `max_gap_s` seconds) and the frame's
detections, from IoU, box-size ratio, centre distance (in box sizes) and appearance distance, gates it, and
solves it with one Hungarian assignment (scipy's `linear_sum_assignment`); a detection left unassigned starts
a new track. One assignment per frame means two detections of one frame never share a track. Geometry is
compared with the track's last box and with the box its velocity predicts, whichever is nearer, so a sitting
moth (jitter, no motion) and a walking deer (steady motion) are both followed. A track that sits keeps its
size: a box much smaller or larger than its mean, on its spot, is another insect (the turnover of a light-trap
sheet, where a newcomer lands where one just left), unless the frame's edge cuts either box. Tracks that were
not seen in a frame stay alive for the gap, so a missed detection or an insect that flies off and comes back
re-links.

Speed: runs of frames that no gap longer than `max_gap_s` interrupts (segments: a burst, a night) share no
track, so all segments of a camera advance together, one frame each per step, with their pairs scored as flat
arrays; a pair that is the only candidate of both its track and its detection is in every optimal assignment,
so only crowded segments go to the Hungarian solver. The result is the same as walking frame by frame.

The default appearance is model_store/core/filters/appearance.py's `appearance_descriptor` (a colour and
texture histogram of the snip); an identifier's embedding can be passed instead. How much it counts is measured
per camera (`appearance_separation`). `confirmed_tracks` says
which tracks count as animals (enough frames or one confident detection), so a lone false positive does not.

Pure numpy/scipy/OpenCV: no Ray, no store, no tables (the occurrences filter wires it to those).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from model_store.core.filters.appearance import appearance_separation


class TrackConfig(BaseModel):
    """The tracker's knobs. The defaults serve light-trap sheets (a frame every 20 s, insects sitting for
    minutes to hours) and camera-trap bursts (~1 s apart, animals walking) alike: they were fitted across
    benchmarks/tracking_kinds.py's kinds of night and burst on a seed the benchmark does not report on
    (`python -m benchmarks.tracking_tune`; BENCHMARKS.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_gap_s: float = Field(600.0, gt=0.0, description="a track not seen for longer than this many seconds "
                                                        "ends; a later detection starts a new track")
    max_gap_frames: int = Field(5, ge=0, description="a track may be missed in at most this many consecutive "
                                                      "frames (of this camera, with a kept detection) and still "
                                                      "re-link (0: consecutive frames only)")
    iou_weight: float = Field(1.0, ge=0.0, description="weight of 1 - IoU in the link cost")
    size_weight: float = Field(0.5, ge=0.0, description="weight of 1 - (smaller area / larger area)")
    distance_weight: float = Field(1.0, ge=0.0, description="weight of the centre distance, in box sizes, "
                                                            "divided by max_centre_distance")
    appearance_weight: float = Field(1.5, ge=0.0, description="weight of the appearance (cosine) distance; "
                                                              "ignored when there is no appearance")
    max_cost: float = Field(0.55, gt=0.0, description="the cost of starting a new track: a pair links only when "
                                                      "its weighted mean cost is below this, and the assignment "
                                                      "weighs each link's saving against starting a track, so a "
                                                      "poor link loses to a new track rather than being forced")
    min_iou: float = Field(0.0, ge=0.0, lt=1.0, description="a pair with a lower IoU never links (0: no IoU gate; "
                                                            "moving animals often do not overlap frame to frame)")
    max_centre_distance: float = Field(1.5, gt=0.0, description="a pair whose centres are further apart than this "
                                                                "many box sizes (the mean side) never links, "
                                                                "however the track moved before")
    sit_reach: float = Field(1.0, gt=0.0, description="the centre-distance gate, in box sizes, of a track that "
                                                      "has sat still: an insect that sits moves a few pixels, so "
                                                      "one that arrives further off is another insect")
    wander_gain: float = Field(5.0, ge=0.0, description="the gate widens by this many times the track's own "
                                                        "wander (how far its last steps fell from where its "
                                                        "motion said, in box sizes), up to max_centre_distance")
    first_reach: float = Field(1.4, gt=0.0, description="the gate, in box sizes, of a track seen once (its "
                                                        "motion is not known yet)")
    gap_distance_growth: float = Field(1.0, ge=0.0, description="for a track missed in g frames the centre-"
                                                                "distance gate is max_centre_distance x "
                                                                "sqrt(1 + this x g): it may have moved on")
    min_size_ratio: float = Field(0.33, gt=0.0, le=1.0, description="a pair whose smaller box area is less than "
                                                                    "this fraction of the larger never links")
    sit_size_ratio: float = Field(0.7, gt=0.0, le=1.0, description="the same gate for a track that sits (moves "
                                                                    "less than sit_speed), against its mean area: "
                                                                    "an insect that sits keeps its size, so a box "
                                                                    "of another size on its spot is another insect")
    sit_speed: float = Field(0.1, ge=0.0, description="a track moving less than this many box sizes per frame "
                                                      "(its velocity over its own frame interval) sits")
    max_appearance_distance: float = Field(0.5, gt=0.0, le=2.0, description="a pair whose appearance distance "
                                                                             "(1 - cosine) is above this never "
                                                                             "links (only where the appearance "
                                                                             "separates, see min_separation)")
    min_separation: float = Field(0.5, ge=0.0, le=1.0, description="appearance counts only as far as it tells "
                                                                   "the camera's animals apart: its weight is "
                                                                   "scaled by the separation measured on the "
                                                                   "camera's own detections (0: alike, 1: always "
                                                                   "apart), and it gates only at or above this")
    appearance: Literal["colour", "none"] = Field("colour", description="colour: use the appearance vectors "
                                                                        "given (the snips' colour/texture "
                                                                        "descriptors or an identifier's); none: "
                                                                        "geometry only")
    appearance_memory: float = Field(0.7, ge=0.0, lt=1.0, description="a track's appearance is a running mean: "
                                                                      "this share of the old one is kept at "
                                                                      "each link")
    gap_penalty_hits: float = Field(100.0, gt=0.0, description="gap_penalty is halved for a track seen this many "
                                                             "times more than once, a third for twice as many, "
                                                             "... (a long sitter that flew off is likely back)")
    predict_motion: bool = Field(True, description="also compare with the box the track's velocity predicts")
    velocity_memory: float = Field(0.5, ge=0.0, lt=1.0, description="a track's velocity is a running mean: this "
                                                                    "share of the old one is kept at each link (an "
                                                                    "alpha-beta filter, the steady state of a "
                                                                    "constant-velocity Kalman filter)")
    gap_penalty: float = Field(0.06, ge=0.0, description="cost added per frame a track was missed, so the most "
                                                         "recently seen of two similar tracks wins")
    cross_label: bool = Field(True, description="whether detections of different labels may link (a classifier "
                                                 "may call one moth two names across frames)")
    label_penalty: float = Field(0.15, ge=0.0, description="cost added when a linked pair has different labels")
    min_frames: int = Field(3, ge=1, description="a track counts as an animal (confirmed_tracks) when it has at "
                                                 "least this many detections ...")
    confirm_score: float = Field(0.6, ge=0.0, le=1.0, description="... or one detection at least this confident")

    @model_validator(mode="after")
    def _some_weight(self) -> TrackConfig:
        if self.iou_weight + self.size_weight + self.distance_weight + self.appearance_weight <= 0:
            raise ValueError("iou_weight, size_weight, distance_weight and appearance_weight are all 0: "
                             "at least one must be positive")
        return self


class _Tracks:
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

    def start(self, dets: _Detections, rows: np.ndarray, step: int) -> np.ndarray:
        ids = np.arange(self.count, self.count + len(rows))
        self.box[ids], self.area[ids], self.side[ids] = dets.boxes[rows], dets.area[rows], dets.side[rows]
        self.mean_area[ids], self.interval[ids] = dets.area[rows], 0.0
        self.time[ids], self.frame[ids], self.hits[ids] = dets.time[rows], step, 1
        self.label[ids], self.segment[ids] = dets.labels[rows], dets.segment[rows]
        if dets.app is not None:
            self.app[ids] = dets.app[rows]
        self.count += len(rows)
        return ids

    def extend(self, ids: np.ndarray, dets: _Detections, rows: np.ndarray, step: int, config: TrackConfig) -> None:
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


class _Detections:
    """One camera's detections with what the cost needs of each, computed once for all frames: the box, its
    area, side and centre, its frame's time, label code, appearance, and segment (set by link_camera)."""

    def __init__(self, boxes: np.ndarray, labels: np.ndarray, app: np.ndarray | None) -> None:
        self.boxes = boxes
        self.time = np.zeros(len(boxes))
        self.segment = np.zeros(len(boxes), dtype=np.int64)
        self.area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
        self.side = np.sqrt(self.area)
        self.centre = (boxes[:, :2] + boxes[:, 2:]) * 0.5
        self.labels = labels
        self.app = app


def _geometry_cost(config: TrackConfig, tb: np.ndarray, ta: np.ndarray, ts: np.ndarray, dets: _Detections,
                   rows: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Weighted geometric cost of each track box `tb` (P, 4) (areas `ta`, sides `ts`) against the detection of
    the same pair, `rows` (P,); inf where a gate (IoU, size ratio, centre distance up to `reach` sides) fails."""
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


def _validate(times_s, frame_ids, boxes, labels, appearance, scores) -> tuple[np.ndarray, ...]:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4))
    n = len(boxes)
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    frames = np.asarray(frame_ids).reshape(-1)
    if len(times) != n or len(frames) != n:
        raise ValueError(f"times_s ({len(times)}), frame_ids ({len(frames)}) and boxes ({n}) differ in length")
    for name, arr in (("labels", labels), ("appearance", appearance), ("scores", scores)):
        if arr is not None and len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} rows for {n} detections")
    if not np.isfinite(boxes).all():
        raise ValueError("boxes hold NaN or infinite coordinates")
    return times, frames, boxes


class Linked(NamedTuple):
    """What link_camera_scored returns, per detection: its track id (0..K-1, first-seen order) and how sure the
    link that put it on its track is (0..1; 1.0 for a track's first detection). A track's weakest link is the
    lowest of its detections'."""

    ids: np.ndarray
    link_confidence: np.ndarray


def link_camera(times_s: np.ndarray, frame_ids: np.ndarray, boxes: np.ndarray, config: TrackConfig, *,
                labels: np.ndarray | None = None, appearance: np.ndarray | None = None,
                scores: np.ndarray | None = None) -> np.ndarray:
    """Track ids (N,) int64, 0..K-1, for the N kept detections of ONE camera (any order in, ids in first-seen order).
    times_s (N,) float seconds (NaN: unknown -> such a frame links to nothing across frames),
    frame_ids (N,) int (detections of one frame share it), boxes (N, 4) x1, y1, x2, y2 normalised 0..1,
    appearance (N, D) from appearance_descriptor or an identifier's vectors, or None. labels (N,) any values (with
    cross_label off, only equal labels link); scores are not used to link (confirmed_tracks uses them)."""
    return link_camera_scored(times_s, frame_ids, boxes, config, labels=labels, appearance=appearance,
                              scores=scores).ids


def link_camera_scored(times_s: np.ndarray, frame_ids: np.ndarray, boxes: np.ndarray, config: TrackConfig, *,
                       labels: np.ndarray | None = None, appearance: np.ndarray | None = None,
                       scores: np.ndarray | None = None) -> Linked:
    """link_camera's track ids and each detection's link confidence (see Linked)."""
    times, frames, boxes = _validate(times_s, frame_ids, boxes, labels, appearance, scores)
    n = len(boxes)
    if n == 0:
        return Linked(np.zeros(0, dtype=np.int64), np.zeros(0))
    label_codes = np.zeros(n, dtype=np.int64)
    if labels is not None:  # as text, so that None and mixed types compare as values
        label_codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)[1].reshape(-1)
    app = None
    if appearance is not None and config.appearance != "none" and config.appearance_weight > 0:
        app = np.asarray(appearance, dtype=np.float32).reshape(n, -1)
        app = app / np.maximum(np.linalg.norm(app, axis=1, keepdims=True), 1e-9)
    dets = _Detections(boxes, label_codes, app)
    frame_codes = np.unique(frames, return_inverse=True)[1].reshape(-1)
    n_frames = int(frame_codes.max()) + 1
    # A frame's time is the earliest known time of its detections; a frame with none links to nothing.
    frame_time = np.full(n_frames, np.inf)
    np.fmin.at(frame_time, frame_codes, np.where(np.isnan(times), np.inf, times))
    frame_order = np.lexsort((np.arange(n_frames), frame_time))
    frame_rank = np.empty(n_frames, dtype=np.int64)
    frame_rank[frame_order] = np.arange(n_frames)
    time_order = np.argsort(frame_rank[frame_codes], kind="stable")
    # Segments: a gap longer than max_gap_s ends every track, so the frames after it are a problem of their own.
    # All segments advance together, one frame each per step: 10,000 bursts of 10 frames cost 10 steps.
    known = frame_order[np.isfinite(frame_time[frame_order])]
    new_segment = np.concatenate([[True], np.diff(frame_time[known]) > config.max_gap_s])
    frame_segment = np.full(n_frames, -1)
    frame_segment[known] = np.cumsum(new_segment) - 1
    frame_step = np.full(n_frames, -1)
    frame_step[known] = np.arange(len(known)) - np.flatnonzero(new_segment)[frame_segment[known]]
    dets.time, dets.segment = frame_time[frame_codes], frame_segment[frame_codes]
    step_of = frame_step[frame_codes]

    separation = appearance_separation(app, frame_rank[frame_codes], boxes) if app is not None else 0.0
    state = _Tracks(n, app.shape[1] if app is not None else 0)
    track_of = np.empty(n, dtype=np.int64)
    confidence = np.ones(n)
    unknown = np.flatnonzero(step_of < 0)  # unknown time: every detection is a track of its own
    known_rows = np.flatnonzero(step_of >= 0)
    by_step = known_rows[np.lexsort((dets.segment[known_rows], step_of[known_rows]))]
    n_steps = int(step_of.max()) + 1
    bounds = np.searchsorted(step_of[by_step], np.arange(n_steps + 1)).tolist()
    live = np.zeros(0, dtype=np.int64)
    now, seen = np.full(len(known), np.nan), np.zeros(0, dtype=np.int64)
    for step in range(n_steps):
        rows = by_step[bounds[step]:bounds[step + 1]]  # this step's detections, by segment
        now[seen] = np.nan
        seen = dets.segment[rows]
        now[seen] = dets.time[rows]  # each segment's time at this step (NaN: its frames are over)
        if len(live):
            # a track lives while its segment has frames, within the gap in frames and in seconds
            live = live[(step - state.frame[live] <= config.max_gap_frames + 1)
                        & (now[state.segment[live]] - state.time[live] <= config.max_gap_s)]
        fresh = rows
        if len(live) and len(rows):
            tracks, picked, sure = _assign(config, state, live, dets, rows, step, separation)
            if len(picked):
                track_of[rows[picked]] = tracks
                confidence[rows[picked]] = sure
                state.extend(tracks, dets, rows[picked], step, config)
                unmatched = np.ones(len(rows), dtype=bool)
                unmatched[picked] = False
                fresh = rows[unmatched]
        if len(fresh):
            new = state.start(dets, fresh, step)
            track_of[fresh] = new
            live = np.concatenate([live, new])
    if len(unknown):
        track_of[unknown] = state.start(dets, unknown, -1)
    return Linked(_first_seen_order(track_of, time_order), confidence)


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


def _assign(config: TrackConfig, state: _Tracks, live: np.ndarray, dets: _Detections, rows: np.ndarray,
            step: int, separation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Hungarian assignment per segment of this step's detections to the live tracks of their segment:
    (track ids, positions in `rows`, each link's confidence)."""
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
    reach = np.minimum(reach, config.max_centre_distance) * np.sqrt(1 + config.gap_distance_growth * missed)
    # The distance gate first, on centres alone (from the last box or the predicted one): on a crowded sheet
    # most pairs are far apart, and only the near ones need the whole cost.
    shift = np.zeros((len(t), 2))
    if config.predict_motion:
        shift = state.velocity[t] * (dets.time[r] - state.time[t])[:, None] * (hits > 1)[:, None]
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
    cost = _geometry_cost(config, tb, ta, ts, dets, r, reach)
    if config.predict_motion:
        # The box the velocity predicts is a second hypothesis of where a moving track is; the nearer counts.
        moving = np.flatnonzero(np.abs(shift).sum(axis=1) > 0)
        if len(moving):
            predicted = tb[moving] + np.concatenate([shift[moving], shift[moving]], axis=1)
            cost[moving] = np.minimum(cost[moving], _geometry_cost(config, predicted, ta[moving], ts[moving], dets,
                                                                   r[moving], reach[moving]))
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
    out_l, out_r, out_c = [li[alone]], [ri[alone]], [cost[alone]]
    rest = np.flatnonzero(~alone)
    if len(rest):
        # Imported here: scipy.optimize costs ~0.3-1 s to import, and every process that imports model_store (each
        # Ray worker of a reprocess, each CLI command) imported it through the filters for this one call.
        from scipy.optimize import linear_sum_assignment

        seg = dets.segment[rows[ri[rest]]]
        order = rest[np.argsort(seg, kind="stable")]
        cuts = np.flatnonzero(np.diff(np.sort(seg))) + 1
        for part in np.split(order, cuts):
            lu, lpos = np.unique(li[part], return_inverse=True)
            ru, rpos = np.unique(ri[part], return_inverse=True)
            # Each link saves (max_cost - cost) over starting a new track; the assignment maximises the saving,
            # so it never forces a poor link for the sake of linking more pairs (0: not a link).
            matrix = np.zeros((len(lu), len(ru)))
            matrix[lpos, rpos] = cost[part] - config.max_cost
            a, b = linear_sum_assignment(matrix)
            linked = matrix[a, b] < 0
            out_l.append(lu[a[linked]])
            out_r.append(ru[b[linked]])
            out_c.append(matrix[a[linked], b[linked]] + config.max_cost)
    picked_l, picked_r, picked_c = np.concatenate(out_l), np.concatenate(out_r), np.concatenate(out_c)
    alt = np.minimum(_runner_up(li, cost, picked_l, picked_c), _runner_up(ri, cost, picked_r, picked_c))
    # How sure each link is, 0..1: its margin over the best alternative (starting a new track, or the next
    # candidate of its track or of its detection), as a share of max_cost.
    confidence = np.clip((np.minimum(alt, config.max_cost) - picked_c) / config.max_cost, 0.0, 1.0)
    return live[picked_l], picked_r, confidence


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


def _first_seen_order(track_of: np.ndarray, det_order: np.ndarray) -> np.ndarray:
    """Renumber tracks 0..K-1 in the order their first detection is met in time order."""
    seen = track_of[det_order]
    _, first = np.unique(seen, return_index=True)
    rank = np.empty(int(track_of.max()) + 1, dtype=np.int64)
    rank[seen[np.sort(first)]] = np.arange(len(first))
    return rank[track_of]


def confirmed_tracks(track_ids: np.ndarray, config: TrackConfig, scores: np.ndarray | None = None) -> np.ndarray:
    """Per track (K,) bool: does it count as an animal? It has at least `min_frames` detections, or one detection
    scored at least `confirm_score` (scores None: frames only). A lone, unsure box is more likely a false
    positive than a visit."""
    ids = np.asarray(track_ids, dtype=np.int64)
    if not len(ids):
        return np.zeros(0, dtype=bool)
    k = int(ids.max()) + 1
    enough = np.bincount(ids, minlength=k) >= config.min_frames
    if scores is None:
        return enough
    best = np.full(k, -np.inf)
    np.maximum.at(best, ids, np.asarray(scores, dtype=np.float64))
    return enough | (best >= config.confirm_score)
