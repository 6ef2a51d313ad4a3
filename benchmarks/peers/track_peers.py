"""Run the reference trackers (norfair, boxmot's ByteTrack) on the tracking benchmark's detections.

Runs in the reference venv, never in the product's: `/work/refenv/bin/python benchmarks/peers/track_peers.py
IN.npz OUT.json` (benchmarks/tracking.py does it). IN holds every sequence's detections, concatenated:
`seq` (N,) the sequence index, `frame_ids`, `boxes` (x1, y1, x2, y2 normalised), `scores`, and `n_frames`
(one per sequence). Each tracker is reset per sequence and fed every frame in order, empty frames included
(both count a lost track's age in frames). OUT: {name: {"ids": [...N: track id or -1 when the tracker did
not report that detection (not yet confirmed)], "tracks": [...N: the track the tracker put the detection on,
reported or not (its first detection, a track it never confirmed), -1 where it put it on none], "confirmed":
[...N: whether that track was ever confirmed], "seconds": wall time, "settings": {...}}}. Both trackers report a
track only from its second detection on: "tracks" is what they hold, so that every tracker can be scored with
the same rule for short tracks (benchmarks/tracking.py).
Imports neither trapline nor the product: it reads arrays and writes JSON.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import numpy as np

WIDTH, HEIGHT = 1280, 720  # boxmot works in pixels; the boxes are scaled to a 720p frame
# The same memory in frames as trapline's default max_gap_frames; confirmation after 2 detections (trapline: 3, or
# one scored >= 0.6); the rest are each library's documented defaults.
GAP_FRAMES = 5
NORFAIR = {"distance_function": "iou", "distance_threshold": 0.8, "hit_counter_max": GAP_FRAMES,
           "initialization_delay": 1}
BYTETRACK = {"track_thresh": 0.45, "match_thresh": 0.8, "min_conf": 0.1, "track_buffer": GAP_FRAMES,
             "frame_rate": 30}
BOOKKEEPING = [0.0]  # seconds spent reading the trackers' unreported tracks: not the trackers' time


def _frames(seq_rows: np.ndarray, frame_ids: np.ndarray, n_frames: int):
    """(frame index, row indices) for every frame 0..n_frames-1 of one sequence, empty ones included."""
    order = seq_rows[np.argsort(frame_ids[seq_rows], kind="stable")]
    bounds = np.searchsorted(frame_ids[order], np.arange(n_frames + 1))
    for f in range(n_frames):
        yield f, order[bounds[f]:bounds[f + 1]]


def run_norfair(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reported ids, full track ids, whether each detection's track was ever confirmed), per detection."""
    from norfair import Detection, Tracker  # imported here: only the tracker asked for need be installed

    ids, tracks = np.full(len(data["boxes"]), -1, dtype=np.int64), np.full(len(data["boxes"]), -1, dtype=np.int64)
    sure: set[int] = set()
    next_id = next_track = 0
    for s, n_frames in enumerate(data["n_frames"]):
        tracker = Tracker(**NORFAIR)
        local: dict[int, int] = {}
        held: dict[int, int] = {}  # initializing_id (every object has one) -> full track id
        for _, rows in _frames(np.flatnonzero(data["seq"] == s), data["frame_ids"], int(n_frames)):
            dets = [Detection(points=data["boxes"][r].reshape(2, 2), scores=np.repeat(data["scores"][r], 2),
                              data=int(r)) for r in rows]
            mine = {id(d) for d in dets}
            for obj in tracker.update(detections=dets):
                if obj.id is not None and id(obj.last_detection) in mine:
                    if obj.id not in local:
                        local[obj.id] = next_id
                        next_id += 1
                    ids[obj.last_detection.data] = local[obj.id]
            t0 = time.perf_counter()
            for obj in tracker.tracked_objects:  # initializing ones too: every detection starts or joins one
                if id(obj.last_detection) in mine:
                    if obj.initializing_id not in held:
                        held[obj.initializing_id] = next_track
                        next_track += 1
                    tracks[obj.last_detection.data] = held[obj.initializing_id]
                    if obj.id is not None:
                        sure.add(held[obj.initializing_id])
            BOOKKEEPING[0] += time.perf_counter() - t0
    return ids, tracks, np.isin(tracks, list(sure))


def run_bytetrack(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reported ids, full track ids, whether each detection's track was ever confirmed), per detection."""
    from boxmot.trackers.bytetrack.bytetrack import ByteTrack  # imported here: boxmot pulls in torch

    ids, tracks = np.full(len(data["boxes"]), -1, dtype=np.int64), np.full(len(data["boxes"]), -1, dtype=np.int64)
    sure: set[int] = set()
    next_track = 0
    img = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    scale = np.array([WIDTH, HEIGHT, WIDTH, HEIGHT], dtype=np.float32)
    next_id = 0
    for s, n_frames in enumerate(data["n_frames"]):
        tracker = ByteTrack(**BYTETRACK)
        local: dict[int, int] = {}
        held: dict[int, int] = {}  # STrack id -> full track id
        for _, rows in _frames(np.flatnonzero(data["seq"] == s), data["frame_ids"], int(n_frames)):
            dets = np.zeros((len(rows), 6), dtype=np.float32)
            dets[:, :4] = data["boxes"][rows] * scale
            dets[:, 4] = data["scores"][rows]
            out = np.asarray(tracker.update(dets, img)).reshape(-1, 8)  # x1 y1 x2 y2 id conf cls det_ind
            for track_id, det_ind in zip(out[:, 4].astype(int), out[:, 7].astype(int), strict=True):
                if track_id not in local:
                    local[track_id] = next_id
                    next_id += 1
                ids[rows[det_ind]] = local[track_id]
            t0 = time.perf_counter()
            for track in tracker.active_tracks:  # every track updated this frame, the unconfirmed ones too
                if track.frame_id == tracker.frame_count:
                    if track.id not in held:
                        held[track.id] = next_track
                        next_track += 1
                    tracks[rows[int(track.det_ind)]] = held[track.id]
                    if track.is_activated:
                        sure.add(held[track.id])
            BOOKKEEPING[0] += time.perf_counter() - t0
    return ids, tracks, np.isin(tracks, list(sure))


def main(argv: list[str]) -> int:
    logging.disable(logging.WARNING)  # boxmot logs every tracker it builds
    try:
        from loguru import logger  # boxmot's logger

        logger.remove()
    except ImportError:
        pass
    src, dst = argv[1], argv[2]
    only = argv[3].split(",") if len(argv) > 3 else ["norfair", "bytetrack"]
    with np.load(src) as z:
        data = {k: z[k] for k in z.files}
    out = {}
    for name, run, settings in (("norfair", run_norfair, NORFAIR), ("bytetrack", run_bytetrack, BYTETRACK)):
        if name not in only:
            continue
        t0, BOOKKEEPING[0] = time.perf_counter(), 0.0
        ids, tracks, confirmed = run(data)
        out[name] = {"ids": ids.tolist(), "tracks": tracks.tolist(), "confirmed": confirmed.tolist(),
                     "seconds": time.perf_counter() - t0 - BOOKKEEPING[0], "settings": settings}
    with open(dst, "w") as fh:
        json.dump(out, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
