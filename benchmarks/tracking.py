"""Tracking (issue 32): does linking detections into occurrences count animals, against known truth?

`flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.tracking [--sheets 12] [--bursts 300]
 [--hours 3] [--seed 32] [--out FILE] [--no-peers]`

Generates light-trap nights and camera-trap bursts with known truth (tests/fixtures/tracking_scenes.py, cached
under bench-results/tracking/), runs trapline's tracker (model_store/core/filters/tracking.py, default
TrackConfig, the snips' colour/texture descriptors) on each sequence, and scores against the truth: count
error per sequence for the tracker (its confirmed tracks), for the max-per-frame count and for the sum of
detections; ID switches and fragmentations per 100 true tracks (motmetrics); detections/s. The same
detections go to norfair and boxmot's ByteTrack through benchmarks/peers/track_peers.py in /work/refenv
(skipped, and said so, when that venv is missing). Speed is also measured on one camera holding the
nights one after another (>= 100,000 detections), and the bursts tiled to as many.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from benchmarks.common import DEFAULT_ROOT, write_json
from benchmarks.tracking_metrics import count_errors, max_per_frame, mot_accumulator, mot_summary, n_tracks
from model_store.core.filters.appearance import appearance_descriptor
from model_store.core.filters.tracking import TrackConfig, confirmed_tracks, link_camera
from tests.fixtures.tracking_scenes import Sequence, scenes

REFENV = Path(os.environ.get("TRAPLINE_REFENV", "/work/refenv"))
PEERS = Path(__file__).parent / "peers" / "track_peers.py"
SPEED_DETECTIONS = 100_000


def load_scenes(n_sheets: int, n_bursts: int, seed: int, hours: float) -> list[dict[str, Any]]:
    """The generated sequences as arrays, cached (generation renders a snip per detection: minutes)."""
    return cached_scenes(f"scenes-{n_sheets}-{n_bursts}-{seed}-{hours}",
                         lambda: scenes(n_sheets, n_bursts, seed=seed, hours=hours))


def cached_scenes(name: str, build: Callable[[], list[Sequence]]) -> list[dict[str, Any]]:
    """The sequences `build` makes, as arrays, cached under bench-results/tracking/NAME.npz."""
    cache = DEFAULT_ROOT / "tracking" / f"{name}.npz"
    if cache.exists():
        with np.load(cache) as z:
            meta = json.loads(str(z["meta"]))
            return [{**m, **{k: z[f"{i}/{k}"] for k in m["keys"]}} for i, m in enumerate(meta)]
    out, flat, meta = [], {}, []
    for i, seq in enumerate(build()):
        arrays = seq.arrays()
        flat.update({f"{i}/{k}": v for k, v in arrays.items()})
        meta.append({"name": seq.name, "kind": seq.kind, "n_animals": seq.n_animals, "keys": list(arrays)})
        out.append({**meta[-1], **arrays})
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, meta=json.dumps(meta), **flat)
    return out


def animal_of(seq: dict[str, Any]) -> np.ndarray | None:
    """The sequence's animal descriptors (what stitching compares), or None for scenes cached before them."""
    animal = seq.get("animal")
    return animal if animal is not None and animal.size else None


def run_trapline(seqs: list[dict[str, Any]], config: TrackConfig) -> tuple[list[np.ndarray], float]:
    """Each sequence's reported ids (detections of unconfirmed tracks: -1) and the total tracking time."""
    out, seconds = [], 0.0
    for s in seqs:
        t0 = time.perf_counter()
        ids = link_camera(s["times_s"], s["frame_ids"], s["boxes"], config, appearance=s["appearance"],
                          scores=s["scores"], animal=animal_of(s))
        seconds += time.perf_counter() - t0
        confirmed = confirmed_tracks(ids, config, s["scores"]) if len(ids) else np.zeros(0, dtype=bool)
        out.append(np.where(confirmed[ids], ids, -1) if len(ids) else ids)
    return out, seconds


class PeerTracks(NamedTuple):
    """One reference tracker's output per sequence: the ids it reported online (from a track's second detection
    on, -1 before), the track it put each detection on (its first detection and the tracks it never confirmed
    too, -1: none) and whether that track was ever confirmed by the tracker."""

    reported: list[np.ndarray]
    tracks: list[np.ndarray]
    confirmed: list[np.ndarray]


def run_peers(seqs: list[dict[str, Any]]) -> tuple[dict[str, PeerTracks], dict[str, float], str | None]:
    """norfair's and ByteTrack's tracks per sequence, their times, or why they were skipped."""
    python = REFENV / "bin" / "python"
    if not python.exists():
        return {}, {}, f"skipped: no reference venv at {REFENV}"
    lengths = [len(s["boxes"]) for s in seqs]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "dets.npz", Path(tmp) / "tracks.json"
        np.savez(src, seq=np.repeat(np.arange(len(seqs)), lengths),
                 frame_ids=np.concatenate([s["frame_ids"] for s in seqs]),
                 boxes=np.concatenate([s["boxes"] for s in seqs]),
                 scores=np.concatenate([s["scores"] for s in seqs]),
                 n_frames=np.array([int(max(s["gt_frame"].max(initial=-1), s["frame_ids"].max(initial=-1))) + 1
                                    for s in seqs]))
        proc = subprocess.run([str(python), str(PEERS), str(src), str(dst)], capture_output=True, text=True)
        if proc.returncode != 0:
            return {}, {}, f"failed: {proc.stderr.strip()[-500:]}"
        result = json.loads(dst.read_text())
    cuts = np.cumsum(lengths)[:-1]
    peers = {name: PeerTracks(*(np.split(np.asarray(r[key], dtype=dtype), cuts)
                                for key, dtype in (("ids", np.int64), ("tracks", np.int64), ("confirmed", bool))))
             for name, r in result.items()}
    return peers, {name: r["seconds"] for name, r in result.items()}, None


# How a tracker's tracks are scored. The reference trackers report a track only from its second detection on (an
# online tracker's initialisation delay), and never report a track they did not confirm; trapline's tracks are
# scored whole, and trapline confirms a track of three detections or of one confident one. Scoring the peers'
# online output gives them a rule for short tracks trapline does not get.
RULES = {"whole": "every tracker's whole tracks (first detection included), each confirmed by its own tracker's rule",
         "same": "every tracker's whole tracks, confirmed by one rule (trapline's: >= min_frames detections or one "
                 ">= confirm_score)",
         "online": "what each tracker reports online (the peers: from a track's second detection on)"}


def peer_ids(peer: PeerTracks, seqs: list[dict[str, Any]], rule: str, config: TrackConfig) -> list[np.ndarray]:
    """A reference tracker's ids per sequence as scored under `rule` (RULES); -1: not reported."""
    if rule == "online":
        return peer.reported
    if rule == "whole":
        return [np.where(c, t, -1) for t, c in zip(peer.tracks, peer.confirmed, strict=True)]
    if rule != "same":
        raise ValueError(f"unknown scoring rule {rule!r}: one of {sorted(RULES)}")
    out = []
    for tracks, s in zip(peer.tracks, seqs, strict=True):
        held = tracks >= 0
        ids = np.full(len(tracks), -1, dtype=np.int64)
        if held.any():
            _, dense = np.unique(tracks[held], return_inverse=True)
            ids[held] = np.where(confirmed_tracks(dense, config, s["scores"][held])[dense], dense, -1)
        out.append(ids)
    return out


def score(seqs: list[dict[str, Any]], ids: list[np.ndarray]) -> dict[str, Any]:
    """Count error and MOT metrics of one method, per kind of scene."""
    out: dict[str, Any] = {}
    for kind in sorted({s["kind"] for s in seqs}):
        pick = [i for i, s in enumerate(seqs) if s["kind"] == kind]
        truth = [seqs[i]["n_animals"] for i in pick]
        errors = count_errors([n_tracks(ids[i]) for i in pick], truth)
        hard = count_errors([max_per_frame(seqs[i]) for i in pick], truth) >= 0.3
        out[kind] = {"count_error_mean_pct": round(100 * float(errors.mean()), 2),
                     "count_error_where_max_per_frame_off_30pct": (round(100 * float(errors[hard].mean()), 2)
                                                                    if hard.any() else None),
                     **mot_summary([mot_accumulator(seqs[i], ids[i]) for i in pick])}
    return out


def baselines(seqs: list[dict[str, Any]]) -> dict[str, Any]:
    """Count error of the max-per-frame count and of the sum of detections, per kind of scene."""
    out: dict[str, Any] = {}
    for kind in sorted({s["kind"] for s in seqs}):
        pick = [s for s in seqs if s["kind"] == kind]
        truth = [s["n_animals"] for s in pick]
        mpf = count_errors([max_per_frame(s) for s in pick], truth)
        total = count_errors([len(s["boxes"]) for s in pick], truth)
        out[kind] = {"sequences": len(pick), "true_animals": int(sum(truth)),
                     "detections": int(sum(len(s["boxes"]) for s in pick)),
                     "max_per_frame_count_error_mean_pct": round(100 * float(mpf.mean()), 2),
                     "sequences_where_max_per_frame_off_30pct": int((mpf >= 0.3).sum()),
                     "sum_of_detections_count_error_mean_pct": round(100 * float(total.mean()), 2)}
    return out


def one_camera(seqs: list[dict[str, Any]], gap_s: float) -> dict[str, np.ndarray]:
    """The sequences one after another on one camera, repeated until >= SPEED_DETECTIONS detections."""
    parts, n, offset_t, offset_f = [], 0, 0.0, 0
    keys = ("times_s", "frame_ids", "boxes", "appearance", "scores") + (
        ("animal",) if all(animal_of(s) is not None for s in seqs) else ())
    while n < SPEED_DETECTIONS:
        for s in seqs:
            parts.append({**{k: s[k] for k in keys}, "times_s": s["times_s"] + offset_t,
                          "frame_ids": s["frame_ids"] + offset_f})
            n += len(s["boxes"])
            offset_t += float(np.nanmax(s["times_s"], initial=0.0)) + gap_s
            offset_f += int(s["frame_ids"].max(initial=0)) + 1
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def speed(seqs: list[dict[str, Any]], config: TrackConfig) -> dict[str, Any]:
    """Detections/s of link_camera on one camera with >= 100,000 detections, per kind; descriptor snips/s."""
    out: dict[str, Any] = {}
    for kind, gap in (("sheet", 86_400.0), ("burst", 3_600.0)):
        pick = [s for s in seqs if s["kind"] == kind]
        if not pick:
            continue
        cam = one_camera(pick, gap)
        t0 = time.perf_counter()
        link_camera(cam["times_s"], cam["frame_ids"], cam["boxes"], config, appearance=cam["appearance"],
                    scores=cam["scores"], animal=animal_of(cam))
        dt = time.perf_counter() - t0
        out[f"{kind}_one_camera"] = {"detections": len(cam["boxes"]), "seconds": round(dt, 2),
                                     "detections_per_s": round(len(cam["boxes"]) / dt)}
    rng = np.random.default_rng(0)
    snips = [rng.integers(0, 255, (int(rng.integers(16, 96)), int(rng.integers(16, 96)), 3), dtype=np.uint8)
             for _ in range(2000)]
    t0 = time.perf_counter()
    for snip in snips:
        appearance_descriptor(snip)
    out["appearance_descriptor_snips_per_s"] = round(len(snips) / (time.perf_counter() - t0))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sheets", type=int, default=12, help="light-trap nights")
    parser.add_argument("--bursts", type=int, default=300, help="camera-trap bursts")
    parser.add_argument("--hours", type=float, default=3.0, help="hours per night")
    parser.add_argument("--seed", type=int, default=32)
    parser.add_argument("--no-peers", action="store_true", help="do not run norfair and ByteTrack")
    parser.add_argument("--out", default=str(DEFAULT_ROOT / "tracking" / "tracking.json"))
    args = parser.parse_args(argv)
    config = TrackConfig()
    t0 = time.perf_counter()
    seqs = load_scenes(args.sheets, args.bursts, args.seed, args.hours)
    print(f"scenes: {len(seqs)} sequences, {sum(len(s['boxes']) for s in seqs)} detections "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    n_dets = sum(len(s["boxes"]) for s in seqs)
    trap_ids, trap_s = run_trapline(seqs, config)
    methods = {"trapline": trap_ids}
    seconds = {"trapline": trap_s}
    skipped = "skipped: --no-peers"
    if not args.no_peers:
        peers, peer_s, skipped = run_peers(seqs)
        methods.update({name: peer_ids(p, seqs, "whole", config) for name, p in peers.items()})
        seconds.update(peer_s)
    result = {"command": " ".join(["python -m benchmarks.tracking", *(argv if argv is not None else sys.argv[1:])]),
              "load_before": os.getloadavg(), "config": config.model_dump(), "baselines": baselines(seqs),
              "methods": {name: {**score(seqs, ids), "detections_per_s": round(n_dets / seconds[name])}
                          for name, ids in methods.items()},
              "peers": skipped or "ran", "speed": speed(seqs, config), "load_after": os.getloadavg()}
    print(json.dumps(result, indent=1))
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
