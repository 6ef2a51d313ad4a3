"""Stitching's joins, judged (issue 58): per kind of night, how many tracks the stitching pass joined, how many of
those joins put two animals together, and what the whole tracker's count error, merges and splits are.

`flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.tracking_stitches [--seed 48] [--per-kind 3]
 [--bursts 40] [--config JSON] [--stitcher FILE] [--out FILE]`

A join is read off the tracker's own output: the tracks of one run with stitching off (`stitch_gap_frames` 0, so
the frame-by-frame pass and gap filling only) that the run with stitching puts in one track, in time order, each
pair of consecutive pieces one join. A join is wrong when the two pieces' animals (each piece's most frequent true
animal; false positives left out) differ. The scenes are benchmarks/tracking_kinds.py's, on the seed given
(48, held out, unless told; the fit seed is 7). `--stitcher FILE`: the track_stitching.py of issue 48 (before issue
58: `git show c308649:model_store/core/filters/track_stitching.py > /tmp/stitch48.py`) in place of this one, with
its own gates' defaults, to see what the calibrated stitcher changed on the same scenes (the rest of the tracker is
this checkout's, the frame-by-frame pass unchanged by issue 58).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from typing import Any

import numpy as np

from benchmarks.common import DEFAULT_ROOT, write_json
from benchmarks.tracking import run_trapline
from benchmarks.tracking_nights import REPORT_SEED, load_kinds
from benchmarks.tracking_tune import link_errors
from model_store.core.filters import tracking
from model_store.core.filters.track_stitching import Stitched
from model_store.core.filters.tracking import TrackConfig, link_camera

# issue 48's stitching gates and defaults: mean looks within 0.015, or 0.01 anywhere (knobs this TrackConfig has
# not any more), both tracks of >= 3 detections, >= 10 to be joined anywhere (defaults issue 58 changed)
ISSUE48_GATES = {"stitch_appearance_distance": 0.015, "stitch_far_distance": 0.01, "stitch_min_frames": 3,
                 "stitch_far_frames": 10}


def use_stitcher(path: str) -> None:
    """Run issue 48's stitch_tracks(config, track_of, step_of, dets, separation) from `path` in this tracker."""
    spec = importlib.util.spec_from_file_location("stitch48", path)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)

    def stitch(config: TrackConfig, track_of: np.ndarray, step_of: np.ndarray, dets) -> Stitched:
        knobs = type("Issue48Config", (), {**config.model_dump(), **ISSUE48_GATES})()
        # issue 48 stitched only where appearance_separation >= min_separation; measured as the frame pass does
        separation = tracking.appearance_separation(dets.app, step_of, dets.boxes) if dets.app is not None else 0.0
        joined, rows, sure = old.stitch_tracks(knobs, track_of, step_of, dets, separation)
        n = len(rows)
        return Stitched(joined, rows, sure, np.full(n, np.nan), np.zeros(n, dtype=np.int64))

    tracking.stitch_tracks = stitch


def joins(seq: dict[str, Any], config: TrackConfig) -> tuple[int, int]:
    """(stitched joins, wrong ones) of one sequence."""
    kw = {"appearance": seq["appearance"], "scores": seq["scores"]}
    if "animal" in seq and seq["animal"].size:
        kw["animal"] = seq["animal"]
    args = (seq["times_s"], seq["frame_ids"], seq["boxes"])
    pieces = link_camera(*args, config.model_copy(update={"stitch_gap_frames": 0}), **kw)
    whole = link_camera(*args, config, **kw)
    truth, frames = seq["truth"], seq["frame_ids"]
    made = wrong = 0
    for track in np.unique(whole):
        rows = np.flatnonzero(whole == track)
        parts = np.unique(pieces[rows])
        if len(parts) < 2:
            continue
        starts = [frames[rows[pieces[rows] == p]].min() for p in parts]
        owners = []
        for p in parts[np.argsort(starts, kind="stable")]:
            mine = truth[rows[(pieces[rows] == p) & (truth[rows] >= 0)]]
            owners.append(int(np.bincount(mine).argmax()) if len(mine) else -1)
        for a, b in zip(owners[:-1], owners[1:], strict=True):
            made += 1
            wrong += int(a != b or a < 0)
    return made, wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=REPORT_SEED)
    parser.add_argument("--per-kind", type=int, default=3)
    parser.add_argument("--bursts", type=int, default=40)
    parser.add_argument("--config", default="{}", help="TrackConfig fields as JSON (default: the defaults)")
    parser.add_argument("--kinds", nargs="*", help="only these kinds")
    parser.add_argument("--stitcher", help="issue 48's track_stitching.py, to run in place of this one")
    parser.add_argument("--out", default=str(DEFAULT_ROOT / "tracking" / "tracking-stitches.json"))
    args = parser.parse_args(argv)
    config = TrackConfig(**json.loads(args.config))
    if args.stitcher:
        use_stitcher(args.stitcher)
    seqs = load_kinds(args.seed, args.per_kind, args.bursts)
    if args.kinds:
        seqs = [s for s in seqs if s["kind"] in args.kinds]
    ids, _ = run_trapline(seqs, config)
    errors = link_errors(seqs, ids)
    result: dict[str, Any] = {"command": " ".join(["python -m benchmarks.tracking_stitches",
                                                   *(argv if argv is not None else sys.argv[1:])]),
                              "load_before": os.getloadavg(), "config": config.model_dump(), "kinds": {}}
    print("| kind | count error | merges / splits per 100 | stitched joins | wrong | wrong share |")
    print("|---|---|---|---|---|---|")
    for kind, e in errors.items():
        made = wrong = 0
        for s in seqs:
            if s["kind"] == kind:
                m, w = joins(s, config)
                made, wrong = made + m, wrong + w
        share = 100 * wrong / made if made else 0.0
        result["kinds"][kind] = {**e, "stitched_joins": made, "wrong_joins": wrong, "wrong_share_pct": share}
        print(f"| {kind} | {e['count_error_mean_pct']:.1f} % | {e['merges_per_100']:.1f} / {e['splits_per_100']:.1f} "
              f"| {made} | {wrong} | {share:.1f} % |", flush=True)
    mean = np.mean([e["count_error_mean_pct"] for e in errors.values()])
    print(f"mean count error over kinds: {mean:.2f} %")
    result["mean_count_error_pct"] = float(mean)
    result["load_after"] = os.getloadavg()
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
