"""Tracking: link the kept detections of one camera's time-ordered frames into tracks (occurrences).

A moth that sits on a light-trap sheet for an hour is photographed every 20 s; a deer in a camera-trap
burst is photographed every second. Counted per frame they are many animals; linked into tracks they are one.
`link_camera` walks the frames of ONE camera in time order. For each frame it builds one cost matrix between
the tracks still alive (seen within `max_gap_frames` frames and `max_gap_s` seconds) and the frame's
detections, from IoU, box-size ratio, centre distance (in box sizes) and appearance distance, gates it, and
solves it with one Hungarian assignment (scipy's `linear_sum_assignment`); a detection left unassigned starts
a new track. One assignment per frame means two detections of one frame never share a track. Geometry is
compared with the track's last box and with the box its velocity predicts, whichever is nearer, so a sitting
moth (jitter, no motion) and a walking deer (steady motion) are both followed; a run of frames whose tracks walk
one way at one pace (a herd) is linked again with that pace as the velocity of a track seen once
(model_store/core/filters/track_herd.py). A track that sits keeps its
size: a box much smaller or larger than its mean, on its spot, is another insect (the turnover of a light-trap
sheet, where a newcomer lands where one just left), unless the frame's edge cuts either box. Tracks that were
not seen in a frame stay alive for the gap, so a missed detection or an insect that flies off and comes back
re-links. After the frame-by-frame pass, a short track that lies inside another track's gap, on its spot, is
given back to it (model_store/core/filters/track_gaps.py: a box its own track refused for a frame; also a walker's
first or last box cut off by a flicker, where the walker's pace puts it, and a walker the detector kept losing, seen
as a chain of short tracks on one steady pace), and a track
that ended is joined to one that starts a few frames later when the camera's own evidence says they are one
animal (model_store/core/filters/track_stitching.py: an insect that flew off for minutes and came back; the
look distance is calibrated on the camera's own tracks, and where it tells nothing, nothing is joined). Before
stitching, a track of an animal's second boxes (a head inside its box, a duplicate beside it) is folded into that
animal's track (model_store/core/filters/track_folds.py; a track of set-aside boxes it left whole is cut by the
boxes they were set aside for, a track of part boxes by the boxes they lie in, and folded again:
track_seconds.py; then a second box of about the animal's size that keeps beside its box and comes and goes is
folded too: track_sides.py; stitching then judges a track on its own boxes), and after it a track that never moved is
flagged static (model_store/core/filters/track_static.py; both the detector's mistakes; `confirmed_tracks`
leaves flagged tracks out). The gates and costs are in track_costs.py, the knobs in track_config.py.

Speed: runs of frames that no gap longer than `max_gap_s` interrupts (segments: a burst, a night) share no
track, so all segments of a camera advance together, one frame each per step, with their pairs scored as flat
arrays; a pair that is the only candidate of both its track and its detection is in every optimal assignment,
so only crowded segments go to the Hungarian solver. The result is the same as walking frame by frame.

The default appearance is model_store/core/filters/appearance.py's `appearance_descriptor` (a colour and
texture histogram of the snip); an identifier's embedding can be passed instead. How much it counts is measured
per camera (`appearance_separation`). Stitching compares `animal` vectors when given (`animal_descriptor`: the
animal's own pixels, tone, extent and shape), else the appearance. `confirmed_tracks` says
which tracks count as animals (enough frames or one confident detection), so a lone false positive does not.

Pure numpy/scipy/OpenCV: no Ray, no store, no tables (the occurrences filter wires it to those).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from model_store.core.filters.appearance import appearance_separation
from model_store.core.filters.track_config import TrackConfig
from model_store.core.filters.track_costs import CameraDetections, FramePass, TrackState, assign
from model_store.core.filters.track_folds import fold_parts
from model_store.core.filters.track_gaps import fill_chains, fill_ends, fill_gaps
from model_store.core.filters.track_herd import herd_pace
from model_store.core.filters.track_rows import distinct, frame_key
from model_store.core.filters.track_seconds import nested_partner, second_boxes, split_by_partner
from model_store.core.filters.track_sides import fold_sides
from model_store.core.filters.track_static import static_tracks
from model_store.core.filters.track_stitching import stitch_tracks

__all__ = ["Linked", "TrackConfig", "confirmed_tracks", "link_camera", "link_camera_scored"]


def _validate(times_s, frame_ids, boxes, labels, appearance, scores, animal=None) -> tuple[np.ndarray, ...]:
    """Seven parameters: link_camera_scored's own detection columns (times_s, frame_ids, boxes and the optional labels,
    appearance, scores, animal), checked here for one length and finite boxes before any is used; it is that
    function's argument check, so it takes what that function took."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4))
    n = len(boxes)
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    frames = np.asarray(frame_ids).reshape(-1)
    if len(times) != n or len(frames) != n:
        raise ValueError(f"times_s ({len(times)}), frame_ids ({len(frames)}) and boxes ({n}) differ in length")
    for name, arr in (("labels", labels), ("appearance", appearance), ("scores", scores), ("animal", animal)):
        if arr is not None and len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} rows for {n} detections")
    if not np.isfinite(boxes).all():
        raise ValueError("boxes hold NaN or infinite coordinates")
    return times, frames, boxes


class Linked(NamedTuple):
    """What link_camera_scored returns, per detection: its track id (0..K-1, first-seen order) and how sure the
    link that put it on its track is (0..1; 1.0 for a track's first detection). A track's weakest link is the
    lowest of its detections'. `stitches` (N, 3): for a detection a stitch attached (the first of a track joined
    to an earlier one), that join's evidence: look distance, frames missed, calibrated probability (its link
    confidence); NaN for every other detection. `folds` (N, 4): for a detection folded into its animal's track
    (a second box of the animal), its fold's number (one per folded piece), the share of the piece's frames inside
    or on the animal's box, the spread of its place there and how far the animal moved meanwhile (box sizes); NaN
    elsewhere (its link confidence is the fold's: at most 0.5 for a weak one). `static` (N,): the detection's
    track never moved (flagged; confirmed_tracks leaves it out when given it)."""

    ids: np.ndarray
    link_confidence: np.ndarray
    stitches: np.ndarray
    folds: np.ndarray
    static: np.ndarray


def link_camera(times_s: np.ndarray, frame_ids: np.ndarray, boxes: np.ndarray, config: TrackConfig, *,
                labels: np.ndarray | None = None, appearance: np.ndarray | None = None,
                scores: np.ndarray | None = None, animal: np.ndarray | None = None) -> np.ndarray:
    """Track ids (N,) int64, 0..K-1, for the N kept detections of ONE camera (any order in, ids in first-seen order).
    times_s (N,) float seconds (NaN: unknown -> such a frame links to nothing across frames),
    frame_ids (N,) int (detections of one frame share it), boxes (N, 4) x1, y1, x2, y2 normalised 0..1,
    appearance (N, D) from appearance_descriptor or an identifier's vectors, or None. labels (N,) any values (with
    cross_label off, only equal labels link); scores are not used to link (confirmed_tracks uses them).
    animal (N, D2) from animal_descriptor: what the stitching pass compares (None: the appearance).

    Eight parameters: the config and the N detections as parallel column arrays, three required (times_s, frame_ids,
    boxes) and four optional ones keyword-only (labels, appearance, scores, animal); each is a column the caller already
    holds (a clip's rows, a camera's rows of the tables: some 50 calls in the product, tests and benchmarks), and an
    object around them would be built only to be taken apart in _validate."""
    return link_camera_scored(times_s, frame_ids, boxes, config, labels=labels, appearance=appearance,
                              scores=scores, animal=animal).ids


def link_camera_scored(times_s: np.ndarray, frame_ids: np.ndarray, boxes: np.ndarray, config: TrackConfig, *,
                       labels: np.ndarray | None = None, appearance: np.ndarray | None = None,
                       scores: np.ndarray | None = None, animal: np.ndarray | None = None) -> Linked:
    """link_camera's track ids and each detection's link confidence (see Linked).

    Eight parameters: link_camera's, for the same reason (the detections' parallel columns, the optional ones
    keyword-only)."""
    times, frames, boxes = _validate(times_s, frame_ids, boxes, labels, appearance, scores, animal)
    n = len(boxes)
    if n == 0:
        return Linked(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((0, 3)), np.zeros((0, 4)),
                      np.zeros(0, dtype=bool))
    label_codes = np.zeros(n, dtype=np.int64)
    if labels is not None:  # as text, so that None and mixed types compare as values
        label_codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)[1].reshape(-1)
    app = None
    if appearance is not None and config.appearance != "none" and config.appearance_weight > 0:
        app = np.asarray(appearance, dtype=np.float32).reshape(n, -1)
        app = app / np.maximum(np.linalg.norm(app, axis=1, keepdims=True), 1e-9)
    animal_vec = None
    if animal is not None and config.appearance != "none":
        animal_vec = np.asarray(animal, dtype=np.float32).reshape(n, -1)
        animal_vec = animal_vec / np.maximum(np.linalg.norm(animal_vec, axis=1, keepdims=True), 1e-9)
    elif app is None and appearance is not None and config.appearance != "none":
        # appearance_weight 0: the frame pass ignores the look, stitching still compares it
        animal_vec = np.asarray(appearance, dtype=np.float32).reshape(n, -1)
        animal_vec = animal_vec / np.maximum(np.linalg.norm(animal_vec, axis=1, keepdims=True), 1e-9)
    dets = CameraDetections(boxes, label_codes, app, animal_vec)
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
    frame_pass = FramePass(TrackState(n, app.shape[1] if app is not None else 0), dets, step_of, separation,
                           np.empty(n, dtype=np.int64), np.ones(n))
    track_of, confidence = frame_pass.track_of, frame_pass.confidence
    unknown = np.flatnonzero(step_of < 0)  # unknown time: every detection is a track of its own
    known_rows = np.flatnonzero(step_of >= 0)
    # An animal's second boxes (a duplicate, a part) are kept out of the frame pass, so they cannot take its
    # track; they are linked among themselves after it and folded back (track_seconds.py, track_folds.py).
    partner = second_boxes(config, step_of, dets, scores)
    second = partner >= 0
    first = known_rows[~second[known_rows]]
    _frame_pass(config, frame_pass, first)
    frame_pass = _herd_pass(config, frame_pass, first)
    _frame_pass(config, frame_pass, known_rows[second[known_rows]])
    state = frame_pass.state
    if len(unknown):
        track_of[unknown] = state.start(dets, unknown, -1)
    track_of, filled, sure = fill_gaps(config, track_of, step_of, dets)
    confidence[filled] = sure
    track_of, filled, sure = fill_chains(config, track_of, step_of, dets, second)
    confidence[filled] = sure
    track_of, filled, sure = fill_ends(config, track_of, step_of, dets)
    confidence[filled] = sure
    folded = fold_sides(config, _fold(config, track_of, step_of, dets, partner), step_of, dets)
    confidence[folded.rows] = folded.confidence
    is_folded = np.zeros(n, dtype=bool)
    is_folded[folded.rows] = True
    stitched = stitch_tracks(config, folded.track_of, step_of, dets, is_folded)
    confidence[stitched.rows] = stitched.probability
    static = static_tracks(config, stitched.track_of, step_of, dets, is_folded)[stitched.track_of]
    fold_evidence = np.full((n, 4), np.nan)
    fold_evidence[folded.rows] = np.stack([folded.fold, folded.share, folded.spread, folded.moved], axis=1)
    return Linked(_first_seen_order(stitched.track_of, time_order), confidence, _stitch_evidence(stitched, n),
                  fold_evidence, static)


def _herd_pass(config: TrackConfig, frame_pass: FramePass, rows_in: np.ndarray) -> FramePass:
    """The segments of `rows_in` (linked by the first frame pass) whose tracks walk one way at one pace (a herd:
    track_herd.py) linked again, with that pace as a one-box track's motion; the other segments' tracks kept,
    numbered 0..K-1 in a new state (only its count is read later: no track outlives its segment). The pass with that
    new state, or `frame_pass` itself when no segment is a herd."""
    state, dets, track_of = frame_pass.state, frame_pass.dets, frame_pass.track_of
    if not len(rows_in) or not config.predict_motion:  # without motion a pace changes no cost: nothing to redo
        return frame_pass
    pace = herd_pace(config, state, int(dets.segment.max()) + 1)
    again = np.isfinite(pace[dets.segment[rows_in], 0])
    if not again.any():
        return frame_pass
    kept = rows_in[~again]
    fresh = TrackState(len(state.box), state.app.shape[1])
    if len(kept):
        distinct_ids, track_of[kept] = np.unique(track_of[kept], return_inverse=True)
        fresh.count = len(distinct_ids)
    frame_pass.confidence[rows_in[again]] = 1.0  # a track's first detection's, where the second pass starts one
    frame_pass = dataclasses.replace(frame_pass, state=fresh)
    _frame_pass(config, frame_pass, rows_in[again], pace)
    return frame_pass


def _frame_pass(config: TrackConfig, frame_pass: FramePass, rows_in: np.ndarray,
                herd: np.ndarray | None = None) -> None:
    """Link `rows_in` (known times) frame by frame into new tracks of the pass's state, writing its track_of and
    confidence. It is called up to three times per camera (first boxes, a herd's segments again, second boxes), so
    the pass (FramePass) stays with the caller; `herd` is per segment its herd's pace (assign's; None on the first
    boxes' and the second boxes' passes)."""
    if not len(rows_in):
        return
    state, dets, step_of = frame_pass.state, frame_pass.dets, frame_pass.step_of
    track_of, confidence = frame_pass.track_of, frame_pass.confidence
    by_step = rows_in[np.lexsort((dets.segment[rows_in], step_of[rows_in]))]
    n_steps = int(step_of[rows_in].max()) + 1
    bounds = np.searchsorted(step_of[by_step], np.arange(n_steps + 1)).tolist()
    live = np.zeros(0, dtype=np.int64)
    now, seen = np.full(int(dets.segment.max()) + 1, np.nan), np.zeros(0, dtype=np.int64)
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
            tracks, picked, sure = assign(config, frame_pass, live, rows, step, herd)
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


def _fold(config: TrackConfig, track_of: np.ndarray, step_of: np.ndarray, dets: CameraDetections,
          partner: np.ndarray):
    """fold_parts, and where it left a track of set-aside boxes unfolded (none of its boxes folded, nothing folded
    into it), that track cut by its boxes' partners (track_seconds.py `split_by_partner`: the set-aside boxes of
    two neighbours linked into one track) and folded again, all at once. A track every box of which is a part box
    (inside another box of its frame, of a part's size, alike: `nested_partner`; parts are not set aside) is cut
    the same way, by the boxes its boxes lie in: the part boxes of two neighbours linked into one track."""
    folded = fold_parts(config, track_of, step_of, dets)
    if not config.fold:
        return folded
    k = int(track_of.max()) + 1
    aside = partner >= 0
    # A track all of whose boxes lie inside others' (parts are not set aside) is cut by those boxes too.
    nested = nested_partner(config, step_of, dets)
    every = np.bincount(track_of, nested >= 0, minlength=k) == np.bincount(track_of, minlength=k)
    every[track_of[aside]] = False
    partner = np.where(every[track_of], nested, partner)
    touched = np.zeros(k, dtype=bool)
    touched[track_of[folded.rows]] = True  # a piece folded, or
    touched[folded.track_of[folded.rows]] = True  # a host
    left = distinct(track_of[partner >= 0])
    left = left[~touched[left]]
    if not len(left):
        return folded
    split = split_by_partner(track_of, partner, frame_key(dets.segment, step_of), left)
    return folded if split is track_of else fold_parts(config, split, step_of, dets)


def _stitch_evidence(stitched, n: int) -> np.ndarray:
    """Per detection (N, 3): the distance, frames missed and calibrated probability of the stitch that attached
    it (the first detection of a joined track), NaN elsewhere."""
    out = np.full((n, 3), np.nan)
    out[stitched.rows] = np.stack([stitched.distance, stitched.gap, stitched.probability], axis=1)
    return out


def _first_seen_order(track_of: np.ndarray, det_order: np.ndarray) -> np.ndarray:
    """Renumber tracks 0..K-1 in the order their first detection is met in time order."""
    seen = track_of[det_order]
    _, first = np.unique(seen, return_index=True)
    rank = np.empty(int(track_of.max()) + 1, dtype=np.int64)
    rank[seen[np.sort(first)]] = np.arange(len(first))
    return rank[track_of]


def confirmed_tracks(track_ids: np.ndarray, config: TrackConfig, scores: np.ndarray | None = None,
                     static: np.ndarray | None = None) -> np.ndarray:
    """Per track (K,) bool: does it count as an animal? It has at least `min_frames` detections, or one detection
    scored at least `confirm_score` (scores None: frames only). A lone, unsure box is more likely a false
    positive than a visit. `static` (N,) bool, Linked.static: a track all of whose detections are flagged (it
    never moved) does not count."""
    ids = np.asarray(track_ids, dtype=np.int64)
    if not len(ids):
        return np.zeros(0, dtype=bool)
    k = int(ids.max()) + 1
    enough = np.bincount(ids, minlength=k) >= config.min_frames
    if scores is not None:
        best = np.full(k, -np.inf)
        np.maximum.at(best, ids, np.asarray(scores, dtype=np.float64))
        enough |= best >= config.confirm_score
    if static is not None:
        enough &= np.bincount(ids, np.asarray(static, dtype=np.float64), minlength=k) < np.bincount(ids, minlength=k)
    return enough
