"""Run the reference trackers (norfair, boxmot's ByteTrack) on the tracking benchmark's detections.

Runs in the reference venv, never in the product's: `/work/refenv/bin/python benchmarks/peers/track_peers.py
IN.npz OUT.json` (benchmarks/tracking.py does it). IN holds every sequence's detections, concatenated:
`seq` (N,) the sequence index, `frame_ids`, `boxes` (x1, y1, x2, y2 normalised), `scores`, and `n_frames`
(one per sequence). Each tracker is reset per sequence and fed every frame in order, empty frames included
(both count a lost track's age in frames). OUT: {name: {"ids": [...N: track id or -1 when the tracker did
not report that detection (not yet confirmed)], "seconds": wall time, "settings": {...}}}.
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


def _frames(seq_rows: np.ndarray, frame_ids: np.ndarray, n_frames: int):
    """(frame index, row indices) for every frame 0..n_frames-1 of one sequence, empty ones included."""
    order = seq_rows[np.argsort(frame_ids[seq_rows], kind="stable")]
    bounds = np.searchsorted(frame_ids[order], np.arange(n_frames + 1))
    for f in range(n_frames):
        yield f, order[bounds[f]:bounds[f + 1]]


def run_norfair(data: dict[str, np.ndarray]) -> np.ndarray:
    from norfair import Detection, Tracker  # imported here: only the tracker asked for need be installed

    ids = np.full(len(data["boxes"]), -1, dtype=np.int64)
    next_id = 0
    for s, n_frames in enumerate(data["n_frames"]):
        tracker = Tracker(**NORFAIR)
        local: dict[int, int] = {}
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
    return ids


def run_bytetrack(data: dict[str, np.ndarray]) -> np.ndarray:
    from boxmot.trackers.bytetrack.bytetrack import ByteTrack  # imported here: boxmot pulls in torch

    ids = np.full(len(data["boxes"]), -1, dtype=np.int64)
    img = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    scale = np.array([WIDTH, HEIGHT, WIDTH, HEIGHT], dtype=np.float32)
    next_id = 0
    for s, n_frames in enumerate(data["n_frames"]):
        tracker = ByteTrack(**BYTETRACK)
        local: dict[int, int] = {}
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
    return ids


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
        t0 = time.perf_counter()
        ids = run(data)
        out[name] = {"ids": ids.tolist(), "seconds": time.perf_counter() - t0, "settings": settings}
    with open(dst, "w") as fh:
        json.dump(out, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
