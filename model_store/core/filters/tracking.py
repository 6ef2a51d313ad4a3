"""Tracking: link the kept detections of one camera's time-ordered frames into tracks (occurrences).

A moth that sits on a light-trap sheet for an hour is photographed every 20 s; a deer in a camera-trap
burst is photographed every second. Counted per frame they are many animals; linked into tracks they are one.
`link_camera` walks the frames of ONE camera in time order. For each frame it builds one cost matrix between
the tracks still alive (seen within `max_gap_frames` frames and `max_gap_s` seconds) and the frame's
detections, from IoU, box-size ratio, centre distance (in box sizes) and appearance distance, gates it, and
solves it with one Hungarian assignment (scipy's `linear_sum_assignment`); a detection left unassigned starts
a new track. One assignment per frame means two detections of one frame never share a track. Geometry is
compared with the track's last box and with the box its velocity predicts, whichever is nearer, so a sitting
moth (jitter, no motion) and a walking deer (steady motion) are both followed. Tracks that were not seen in
a frame stay alive for the gap, so a missed detection or an insect that flies off and comes back re-links.

`appearance_descriptor` is the default appearance: a colour (hue-saturation) and texture (gradient
orientation) histogram of the snip; an identifier's embedding can be passed instead. `confirmed_tracks` says
which tracks count as animals (enough frames or one confident detection), so a lone false positive does not.

Pure numpy/scipy/OpenCV: no Ray, no store, no tables (the occurrences filter wires it to those).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.optimize import linear_sum_assignment

# Hue x saturation bins of the colour part; orientation bins of the texture part of the descriptor.
HUE_BINS, SAT_BINS, ORIENT_BINS = 12, 4, 12
DESCRIPTOR_LENGTH = HUE_BINS * SAT_BINS + ORIENT_BINS
_SNIP_SIDE = 32  # snips are compared at this size: enough for a histogram, cheap for 100,000 snips
_NO_LINK = 1e6  # the cost of a gated pair in the assignment (finite: scipy refuses an all-inf row)


class TrackConfig(BaseModel):
    """The tracker's knobs. The defaults serve light-trap sheets (a frame every 20 s, insects sitting for
    minutes to hours) and camera-trap bursts (~1 s apart, animals walking) alike."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_gap_s: float = Field(600.0, gt=0.0, description="a track not seen for longer than this many seconds "
                                                        "ends; a later detection starts a new track")
    max_gap_frames: int = Field(30, ge=0, description="a track may be missed in at most this many consecutive "
                                                      "frames and still re-link (0: consecutive frames only)")
    iou_weight: float = Field(1.0, ge=0.0, description="weight of 1 - IoU in the link cost")
    size_weight: float = Field(0.5, ge=0.0, description="weight of 1 - (smaller area / larger area)")
    distance_weight: float = Field(1.0, ge=0.0, description="weight of the centre distance, in box sizes, "
                                                            "divided by max_centre_distance")
    appearance_weight: float = Field(1.5, ge=0.0, description="weight of the appearance (cosine) distance; "
                                                              "ignored when there is no appearance")
    max_cost: float = Field(0.55, gt=0.0, description="a pair whose weighted mean cost is above this never links")
    min_iou: float = Field(0.0, ge=0.0, lt=1.0, description="a pair with a lower IoU never links (0: no IoU gate; "
                                                            "moving animals often do not overlap frame to frame)")
    max_centre_distance: float = Field(2.0, gt=0.0, description="a pair whose centres are further apart than this "
                                                                "many box sizes (the mean side) never links")
    min_size_ratio: float = Field(0.33, gt=0.0, le=1.0, description="a pair whose smaller box area is less than "
                                                                    "this fraction of the larger never links")
    max_appearance_distance: float = Field(0.5, gt=0.0, le=2.0, description="a pair whose appearance distance "
                                                                             "(1 - cosine) is above this never "
                                                                             "links")
    appearance: Literal["colour", "none"] = Field("colour", description="colour: use the appearance vectors "
                                                                        "given (the snips' colour/texture "
                                                                        "descriptors or an identifier's); none: "
                                                                        "geometry only")
    appearance_memory: float = Field(0.7, ge=0.0, lt=1.0, description="a track's appearance is a running mean: "
                                                                      "this share of the old one is kept at "
                                                                      "each link")
    predict_motion: bool = Field(True, description="also compare with the box the track's velocity predicts")
    gap_penalty: float = Field(0.01, ge=0.0, description="cost added per frame a track was missed, so the most "
                                                         "recently seen of two similar tracks wins")
    cross_label: bool = Field(True, description="whether detections of different labels may link (a classifier "
                                                 "may call one moth two names across frames)")
    label_penalty: float = Field(0.15, ge=0.0, description="cost added when a linked pair has different labels")
    min_frames: int = Field(2, ge=1, description="a track counts as an animal (confirmed_tracks) when it has at "
                                                 "least this many detections ...")
    confirm_score: float = Field(0.6, ge=0.0, le=1.0, description="... or one detection at least this confident")

    @model_validator(mode="after")
    def _some_weight(self) -> TrackConfig:
        if self.iou_weight + self.size_weight + self.distance_weight + self.appearance_weight <= 0:
            raise ValueError("iou_weight, size_weight, distance_weight and appearance_weight are all 0: "
                             "at least one must be positive")
        return self


def appearance_descriptor(snip_rgb: np.ndarray) -> np.ndarray:
    """A colour/texture descriptor of one snip (H, W, 3 uint8 RGB): float32, L2-normalised, fixed length."""
    snip = np.asarray(snip_rgb)
    if snip.ndim != 3 or snip.shape[2] != 3 or snip.shape[0] < 1 or snip.shape[1] < 1:
        raise ValueError(f"a snip is (H, W, 3) RGB, got shape {snip.shape}")
    small = cv2.resize(np.ascontiguousarray(snip, dtype=np.uint8), (_SNIP_SIDE, _SNIP_SIDE),
                       interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    # Hue x saturation only: brightness changes with the light (flash, dusk, lamp) while the colour does not.
    colour = cv2.calcHist([hsv], [0, 1], None, [HUE_BINS, SAT_BINS], [0, 180, 0, 256]).ravel()
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    magnitude, angle = cv2.cartToPolar(gx, gy)
    # Orientation modulo 180 degrees, weighted by gradient strength: stripes vs spots vs plain.
    bins = (np.mod(angle.ravel(), np.pi) / np.pi * ORIENT_BINS).astype(np.int64) % ORIENT_BINS
    texture = np.bincount(bins, weights=magnitude.ravel(), minlength=ORIENT_BINS)
    # Square roots (Hellinger) so that one dominant bin does not swamp the rest; each part has equal say.
    parts = [np.sqrt(colour / max(colour.sum(), 1e-9)), np.sqrt(texture / max(texture.sum(), 1e-9))]
    vec = np.concatenate([p / max(np.linalg.norm(p), 1e-9) for p in parts]).astype(np.float32)
    return vec / max(float(np.linalg.norm(vec)), 1e-9)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def _geometry_cost(config: TrackConfig, tracks: np.ndarray, dets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weighted geometric cost, gate passed) of every track box against every detection box."""
    iou = _iou(tracks, dets)
    at, ad = _area(tracks), _area(dets)
    ratio = np.minimum(at[:, None], ad[None, :]) / np.maximum(np.maximum(at[:, None], ad[None, :]), 1e-12)
    ct = (tracks[:, :2] + tracks[:, 2:]) / 2
    cd = (dets[:, :2] + dets[:, 2:]) / 2
    side = (np.sqrt(at)[:, None] + np.sqrt(ad)[None, :]) / 2
    dist = np.linalg.norm(ct[:, None, :] - cd[None, :, :], axis=2) / np.maximum(side, 1e-9)
    cost = (config.iou_weight * (1 - iou) + config.size_weight * (1 - ratio)
            + config.distance_weight * np.minimum(dist / config.max_centre_distance, 1.0))
    ok = (iou >= config.min_iou) & (ratio >= config.min_size_ratio) & (dist <= config.max_centre_distance)
    return cost, ok


class _Tracks:
    """The growing state of one camera's tracks: last box, velocity, last time and frame, appearance."""

    def __init__(self, capacity: int, dim: int) -> None:
        self.box = np.zeros((capacity, 4))
        self.velocity = np.zeros((capacity, 2))  # of the centre, per second
        self.time = np.zeros(capacity)
        self.frame = np.zeros(capacity, dtype=np.int64)
        self.hits = np.zeros(capacity, dtype=np.int64)
        self.label = np.zeros(capacity, dtype=np.int64)
        self.app = np.zeros((capacity, dim), dtype=np.float32)
        self.count = 0

    def start(self, boxes: np.ndarray, t: float, frame: int, labels: np.ndarray, app: np.ndarray | None) -> np.ndarray:
        ids = np.arange(self.count, self.count + len(boxes))
        self.box[ids], self.time[ids], self.frame[ids], self.hits[ids] = boxes, t, frame, 1
        self.velocity[ids] = 0.0
        self.label[ids] = labels
        if app is not None:
            self.app[ids] = app
        self.count += len(boxes)
        return ids

    def extend(self, ids: np.ndarray, boxes: np.ndarray, t: float, frame: int, app: np.ndarray | None,
               memory: float) -> None:
        dt = t - self.time[ids]
        moved = ((boxes[:, :2] + boxes[:, 2:]) - (self.box[ids, :2] + self.box[ids, 2:])) / 2
        step = np.divide(moved, dt[:, None], out=np.zeros_like(moved), where=dt[:, None] > 0)
        # A running mean of the velocity: a sitting moth's jitter averages out, a walking deer's pace stays.
        first = self.hits[ids] == 1
        self.velocity[ids] = np.where(first[:, None], step, 0.5 * self.velocity[ids] + 0.5 * step)
        self.box[ids], self.time[ids], self.frame[ids] = boxes, t, frame
        self.hits[ids] += 1
        if app is not None:
            mixed = memory * self.app[ids] + (1 - memory) * app
            self.app[ids] = mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-9)


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


def link_camera(times_s: np.ndarray, frame_ids: np.ndarray, boxes: np.ndarray, config: TrackConfig, *,
                labels: np.ndarray | None = None, appearance: np.ndarray | None = None,
                scores: np.ndarray | None = None) -> np.ndarray:
    """Track ids (N,) int64, 0..K-1, for the N kept detections of ONE camera (any order in, ids in first-seen order).
    times_s (N,) float seconds (NaN: unknown -> such a frame links to nothing across frames),
    frame_ids (N,) int (detections of one frame share it), boxes (N, 4) x1, y1, x2, y2 normalised 0..1,
    appearance (N, D) from appearance_descriptor or an identifier's vectors, or None."""
    times, frames, boxes = _validate(times_s, frame_ids, boxes, labels, appearance, scores)
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    label_codes = (np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1) if labels is not None
                   else np.zeros(n, dtype=np.int64))
    app = None
    if appearance is not None and config.appearance != "none":
        app = np.asarray(appearance, dtype=np.float32).reshape(n, -1)
        app = app / np.maximum(np.linalg.norm(app, axis=1, keepdims=True), 1e-9)
    frame_codes = np.unique(frames, return_inverse=True)[1].reshape(-1)
    n_frames = int(frame_codes.max()) + 1
    # A frame's time is the earliest known time of its detections; a frame with none links to nothing.
    frame_time = np.full(n_frames, np.inf)
    np.fmin.at(frame_time, frame_codes, np.where(np.isnan(times), np.inf, times))
    frame_order = np.lexsort((np.arange(n_frames), frame_time))
    frame_rank = np.empty(n_frames, dtype=np.int64)
    frame_rank[frame_order] = np.arange(n_frames)
    det_rank = frame_rank[frame_codes]
    det_order = np.argsort(det_rank, kind="stable")
    starts = np.searchsorted(det_rank[det_order], np.arange(n_frames + 1))

    state = _Tracks(n, app.shape[1] if app is not None else 0)
    track_of = np.empty(n, dtype=np.int64)
    live = np.zeros(0, dtype=np.int64)
    for pos, frame in enumerate(frame_order):
        idx = det_order[starts[pos]:starts[pos + 1]]
        t = frame_time[frame]
        if not np.isfinite(t):  # unknown time: every detection is a track of its own, and no track follows it
            track_of[idx] = state.start(boxes[idx], np.inf, pos, label_codes[idx],
                                        app[idx] if app is not None else None)
            continue
        if len(live):
            live = live[(pos - state.frame[live] - 1 <= config.max_gap_frames) & (t - state.time[live]
                                                                                   <= config.max_gap_s)]
        matched_tracks, matched_dets = _assign(config, state, live, boxes[idx], t, pos, label_codes[idx],
                                               app[idx] if app is not None else None)
        if len(matched_dets):
            track_of[idx[matched_dets]] = matched_tracks
            state.extend(matched_tracks, boxes[idx[matched_dets]], t, pos,
                         app[idx[matched_dets]] if app is not None else None, config.appearance_memory)
        fresh = np.setdiff1d(np.arange(len(idx)), matched_dets, assume_unique=True)
        if len(fresh):
            new = state.start(boxes[idx[fresh]], t, pos, label_codes[idx[fresh]],
                              app[idx[fresh]] if app is not None else None)
            track_of[idx[fresh]] = new
            live = np.concatenate([live, new])
    return _first_seen_order(track_of, det_order)


def _assign(config: TrackConfig, state: _Tracks, live: np.ndarray, boxes: np.ndarray, t: float, pos: int,
            labels: np.ndarray, app: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """One Hungarian assignment of a frame's detections to the live tracks: (track ids, detection positions)."""
    empty = np.zeros(0, dtype=np.int64)
    if not len(live) or not len(boxes):
        return empty, empty
    last = state.box[live]
    cost, ok = _geometry_cost(config, last, boxes)
    if config.predict_motion:
        shift = state.velocity[live] * (t - state.time[live])[:, None]
        moving = np.flatnonzero((state.hits[live] > 1) & (np.abs(shift).sum(axis=1) > 0))
        if len(moving):
            predicted = last[moving] + np.tile(shift[moving], 2)
            p_cost, p_ok = _geometry_cost(config, predicted, boxes)
            better = p_ok & (~ok[moving] | (p_cost < cost[moving]))
            cost[moving] = np.where(better, p_cost, cost[moving])
            ok[moving] |= p_ok
    weights = config.iou_weight + config.size_weight + config.distance_weight
    if app is not None and config.appearance_weight > 0:
        distance = np.clip(1.0 - state.app[live] @ app.T, 0.0, 2.0)
        cost = cost + config.appearance_weight * distance
        ok &= distance <= config.max_appearance_distance
        weights += config.appearance_weight
    cost = cost / weights + config.gap_penalty * (pos - state.frame[live] - 1)[:, None]
    differ = state.label[live][:, None] != labels[None, :]
    if config.cross_label:
        cost = cost + config.label_penalty * differ
    else:
        ok &= ~differ
    ok &= cost <= config.max_cost
    if not ok.any():
        return empty, empty
    rows, cols = linear_sum_assignment(np.where(ok, cost, _NO_LINK))
    keep = ok[rows, cols]
    return live[rows[keep]], cols[keep]


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
