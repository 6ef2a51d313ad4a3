"""Counts under a detector's mistakes (issue 69): per kind of night and per mistake, the tracker with its folding
and static flagging off ("old", the tracker before issue 69) and on ("new").

`flock /tmp/trapline-bench.lock .venv/bin/python -m benchmarks.tracking_mistakes [--seed 48] [--per-kind 2]
 [--bursts 20] [--mistakes NAME ...] [--twins] [--no-mot] [--speed] [--draws N] [--out FILE]`

The scenes are benchmarks/tracking_kinds.py's clean ones (cached, as benchmarks.tracking_nights loads them), with
tests/fixtures/detector_mistakes.py's mistakes laid over them, each sequence from its own seed. The defaults were
set on seed 7 (`--seed 7 --per-kind 1 --bursts 10`); 48 is reported on. Per kind: the count error (mean |count -
animals| / animals of the confirmed, unflagged tracks), merges and splits per 100 animals (each detection's true
animal), ID switches per 100 true tracks (motmetrics; a folded box is not the animal's box, so it is scored as
not reported), the folds made and the wrong ones (a folded piece whose animal is not its track's), and the tracks
flagged static that held an animal. `--speed`: detections/s of link_camera_scored on one camera of >= 100,000
detections with every mistake of the target row on. `--draws N`: each mistake set laid over the same scenes N
times, independently (draw 0 is the report's row): a kind's count error on two nights moves by several points
from one draw of the mistakes to another, so "over 10 %" is judged on the mean over draws. A scene's mistakes
are the same with or without `--kinds`. `split` (issue 84): a fifth of the animals boxed as two boxes side by side;
`--twins` adds benchmarks/tracking_twins.py's bursts (two animals side by side, a mother with its young), which must
stay two, after the kinds (the kinds' mistakes are the same with or without it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

from benchmarks.common import DEFAULT_ROOT, write_json
from benchmarks.tracking import animal_of, cached_scenes, one_camera
from benchmarks.tracking_metrics import count_errors, max_per_frame, mot_accumulator, mot_summary, n_tracks
from benchmarks.tracking_nights import REPORT_SEED, load_kinds
from benchmarks.tracking_tune import link_errors
from benchmarks.tracking_twins import twin_scenes
from model_store.core.filters.tracking import TrackConfig, confirmed_tracks, link_camera_scored
from tests.fixtures.detector_mistakes import Mistakes, with_mistakes

# The target row: part boxes in 20 % of an animal's frames, flicker of up to 3 frames, one static box.
TARGET = Mistakes(part_share=0.2, part_nested=0.5, flicker_rate=0.05, flicker_frames=3, static_boxes=1)
SPLIT = Mistakes(split_share=0.2, split_frames=0.4)
MISTAKES = {
    "clean": Mistakes(),
    "part-boxes": Mistakes(part_share=0.2, part_nested=1.0),
    "duplicates": Mistakes(part_share=0.2, part_nested=0.0),
    "flicker": Mistakes(flicker_rate=0.05, flicker_frames=3),
    "static-box": Mistakes(static_boxes=1),
    "merged": Mistakes(merge_share=0.3),
    "jitter": Mistakes(jitter=0.06),
    # Issue 84: a fifth of the animals boxed as two boxes side by side, the second in about 40 % of their frames.
    "split": SPLIT,
    "target": TARGET,
}
# The tracker before issue 69: no folding, no static flag (the rest of the tracker is this checkout's).
OLD = {"fold": False, "static_min_frames": 0}


def track(seq: dict[str, Any], config: TrackConfig) -> tuple[np.ndarray, ...]:
    """(reported ids: -1 for unconfirmed or flagged tracks, the same with folded boxes -1 too (what MOT scores),
    fold number per detection (-1: not folded), static per detection, the tracker's ids)."""
    linked = link_camera_scored(seq["times_s"], seq["frame_ids"], seq["boxes"], config,
                                appearance=seq["appearance"], scores=seq["scores"], animal=animal_of(seq))
    ids = linked.ids
    n = len(ids)
    folds = getattr(linked, "folds", None)
    fold_no = np.full(n, -1) if folds is None else np.where(np.isnan(folds[:, 0]), -1, folds[:, 0]).astype(np.int64)
    static = np.zeros(n, dtype=bool) if not hasattr(linked, "static") else linked.static
    if not n:
        return ids, ids, fold_no, static, ids
    try:
        ok = confirmed_tracks(ids, config, seq["scores"], static=static)
    except TypeError:  # the tracker before issue 69
        ok = confirmed_tracks(ids, config, seq["scores"])
    reported = np.where(ok[ids], ids, -1)
    return reported, np.where(fold_no >= 0, -1, reported), fold_no, static, ids


def _majority(truth: np.ndarray) -> int:
    real = truth[truth >= 0]
    return int(np.bincount(real).argmax()) if len(real) else -1


def judge_folds(seq: dict[str, Any], ids: np.ndarray, fold_no: np.ndarray) -> tuple[int, int, int, int]:
    """(folds, wrong folds, wrong folds that hid an animal, wrong where folded): a fold is wrong when the folded
    piece's animal (its detections' most frequent true animal) is not the animal of the track it was folded into
    (its other detections'); it hid an animal when that animal has no counted track of its own. It is wrong where
    folded when the piece's animal is not the animal of the track's own boxes in the piece's frames either: a
    piece folded into its own animal's box on a track that the frame pass had switched to another animal (an ID
    switch, counted as such) is wrong by the first measure, right by this one. A piece of false boxes folded into
    an animal is not a wrong fold (no animal is lost)."""
    made = wrong = hidden = at_frames = 0
    truth, frames = seq["truth"], seq["frame_ids"]
    owners = {_majority(truth[(ids == t) & (fold_no < 0)]) for t in np.unique(ids[ids >= 0])}
    for f in np.unique(fold_no[fold_no >= 0]):
        rows = np.flatnonzero(fold_no == f)
        made += 1
        host = np.flatnonzero((ids == ids[rows[0]]) & (fold_no < 0))
        a, b = _majority(truth[rows]), _majority(truth[host])
        if a >= 0 and b >= 0 and a != b:
            wrong += 1
            hidden += int(a not in owners)
            near = host[np.isin(frames[host], frames[rows])]
            there = _majority(truth[near]) if len(near) else b
            at_frames += int(there >= 0 and there != a)
    return made, wrong, hidden, at_frames


def run(seqs: list[dict[str, Any]], config: TrackConfig, mot: bool) -> dict[str, Any]:
    """Per kind: count error, merges, splits, ID switches, folds (wrong), static flags (on animals)."""
    out: dict[str, Any] = {}
    results = [track(s, config) for s in seqs]
    errors = link_errors(seqs, [r[0] for r in results])
    for kind in sorted({s["kind"] for s in seqs}):
        pick = [i for i, s in enumerate(seqs) if s["kind"] == kind]
        truth = [seqs[i]["n_animals"] for i in pick]
        err = count_errors([n_tracks(results[i][0]) for i in pick], truth)
        folds = [judge_folds(seqs[i], results[i][0], results[i][2]) for i in pick]
        flagged = on_animals = 0
        for i in pick:  # each flagged track, and whether it held an animal (its detections' most frequent truth)
            static, ids = results[i][3], results[i][4]
            for t in np.unique(ids[static]):
                flagged += 1
                on_animals += int(_majority(seqs[i]["truth"][ids == t]) >= 0)
        out[kind] = {"count_error_mean_pct": round(100 * float(err.mean()), 2),
                     "merges_per_100": round(errors[kind]["merges_per_100"], 2),
                     "splits_per_100": round(errors[kind]["splits_per_100"], 2),
                     "folds": sum(f[0] for f in folds), "wrong_folds": sum(f[1] for f in folds),
                     "wrong_folds_hiding_an_animal": sum(f[2] for f in folds),
                     "wrong_folds_where_folded": sum(f[3] for f in folds),
                     "static_flags": flagged, "static_flags_on_animals": on_animals}
        if mot:
            out[kind]["id_switches_per_100"] = mot_summary(
                [mot_accumulator(seqs[i], results[i][1]) for i in pick]).get("id_switches_per_100")
    return out


def speed(seqs: list[dict[str, Any]], config: TrackConfig) -> dict[str, Any]:
    """Detections/s of link_camera_scored on one camera of >= 100,000 detections: the nights with TARGET's
    mistakes one after another, a day apart."""
    nights = [s for s in seqs if s["kind"] not in ("deer-crossing", "herd")]
    cam = one_camera(nights, 86_400.0)
    t0 = time.perf_counter()
    link_camera_scored(cam["times_s"], cam["frame_ids"], cam["boxes"], config, appearance=cam["appearance"],
                       scores=cam["scores"], animal=animal_of(cam))
    dt = time.perf_counter() - t0
    return {"detections": len(cam["boxes"]), "seconds": round(dt, 2), "detections_per_s": round(len(cam["boxes"]) / dt)}


# Draw d > 0 of a scene's mistakes takes the seed of draw 0 plus d times this (no two scenes' draws share a seed).
_DRAW_STRIDE = 1_000_003


def mistaken(clean: list[tuple[int, dict[str, Any]]], mistakes: Mistakes, seed: int,
             draw: int = 0) -> list[dict[str, Any]]:
    """The scenes (each with its index in the whole set) with `mistakes` laid over them, each from its own seed:
    draw 0 is the one every report so far was made on."""
    return [with_mistakes(s, mistakes, seed=seed * 100_003 + i + draw * _DRAW_STRIDE) for i, s in clean]


def _draws_text(draws: list[float] | None) -> str:
    """` [draws a, b, c: mean m]` after a row's cells, or nothing for one draw."""
    if not draws:
        return ""
    return f" [draws {', '.join(f'{d:.1f}' for d in draws)}: mean {np.mean(draws):.1f} %]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=REPORT_SEED)
    parser.add_argument("--per-kind", type=int, default=2)
    parser.add_argument("--bursts", type=int, default=20)
    parser.add_argument("--mistakes", nargs="*", default=list(MISTAKES), choices=list(MISTAKES))
    parser.add_argument("--kinds", nargs="*", help="only these kinds")
    parser.add_argument("--twins", action="store_true",
                        help="also issue 84's twins (two animals side by side, a mother with its young: "
                             "benchmarks/tracking_twins.py), after the kinds (their mistakes are their own)")
    parser.add_argument("--config", default="{}", help="TrackConfig fields for the new tracker, as JSON")
    parser.add_argument("--only", choices=["old", "new"], help="run one tracker only")
    parser.add_argument("--no-mot", action="store_true", help="skip the ID switches (motmetrics: slow)")
    parser.add_argument("--speed", action="store_true", help="also the speed at >= 100,000 detections")
    parser.add_argument("--draws", type=int, default=1,
                        help="lay each mistake set over the scenes this many times (independent draws); per kind "
                             "the count error of each draw and their mean are reported beside the first draw's row")
    parser.add_argument("--out", default=str(DEFAULT_ROOT / "tracking" / "tracking-mistakes.json"))
    args = parser.parse_args(argv)
    if args.draws < 1:
        parser.error(f"--draws must be at least 1, got {args.draws}")
    import json

    new = TrackConfig(**json.loads(args.config))
    trackers = {"old": new.model_copy(update=OLD), "new": new}
    if args.only:
        trackers = {args.only: trackers[args.only]}
    # Each scene keeps its index in the whole set: its mistakes are the same with or without --kinds.
    clean = list(enumerate(load_kinds(args.seed, args.per_kind, args.bursts)))
    if args.twins:
        twins = cached_scenes(f"twins-{args.seed}-{args.bursts}", lambda: twin_scenes(args.seed, args.bursts))
        clean += list(enumerate(twins, start=len(clean)))
    if args.kinds:
        clean = [(i, s) for i, s in clean if s["kind"] in args.kinds]
    result: dict[str, Any] = {"command": " ".join(["python -m benchmarks.tracking_mistakes",
                                                   *(argv if argv is not None else sys.argv[1:])]),
                              "load_before": os.getloadavg(), "config": new.model_dump(),
                              "mistakes": {k: MISTAKES[k].__dict__ for k in args.mistakes}, "results": {}}
    for name in args.mistakes:
        seqs = mistaken(clean, MISTAKES[name], args.seed)
        mpf = {k: round(100 * float(count_errors([max_per_frame(s) for s in seqs if s["kind"] == k],
                                                 [s["n_animals"] for s in seqs if s["kind"] == k]).mean()), 1)
               for k in sorted({s["kind"] for s in seqs})}
        got = {label: run(seqs, cfg, not args.no_mot) for label, cfg in trackers.items()}
        for draw in range(1, args.draws):
            again = mistaken(clean, MISTAKES[name], args.seed, draw)
            for label, cfg in trackers.items():
                for kind, row in run(again, cfg, False).items():
                    got[label][kind].setdefault("count_error_draws_pct", [got[label][kind]["count_error_mean_pct"]])
                    got[label][kind]["count_error_draws_pct"].append(row["count_error_mean_pct"])
        result["results"][name] = {"max_per_frame_count_error_pct": mpf, **got}
        print(f"\n### {name}\n")
        print("| kind | max-per-frame | " + " | ".join(f"{t}: count error / merges / splits / ID sw. / folds "
                                                       f"(wrong; where folded) / static flags (on animals)"
                                                       for t in got) + " |")
        print("|---|---|" + "---|" * len(got))
        for kind in mpf:
            cells = []
            for t in got:
                r = got[t][kind]
                cells.append(f"{r['count_error_mean_pct']:.1f} % / {r['merges_per_100']:.1f} / "
                             f"{r['splits_per_100']:.1f} / {r.get('id_switches_per_100', float('nan')):.2f} / "
                             f"{r['folds']} ({r['wrong_folds']}; {r['wrong_folds_where_folded']}) / "
                             f"{r['static_flags']} ({r['static_flags_on_animals']})"
                             + _draws_text(r.get("count_error_draws_pct")))
            print(f"| {kind} | {mpf[kind]:.1f} % | " + " | ".join(cells) + " |", flush=True)
        means = {t: round(float(np.mean([got[t][k]["count_error_mean_pct"] for k in mpf])), 2) for t in got}
        worst = {t: max(mpf, key=lambda k, t=t: got[t][k]["count_error_mean_pct"]) for t in got}
        print("mean count error: " + ", ".join(f"{t} {means[t]:.2f} % (worst {worst[t]} "
                                               f"{got[t][worst[t]]['count_error_mean_pct']:.1f} %)" for t in got))
        result["results"][name]["mean_count_error_pct"] = means
        if args.draws > 1:
            over = {t: {k: float(np.mean(got[t][k]["count_error_draws_pct"])) for k in mpf} for t in got}
            print(f"over {args.draws} draws: " + ", ".join(
                f"{t} mean {np.mean(list(over[t].values())):.2f} %, kinds over 10 %: "
                + (", ".join(f"{k} {v:.1f}" for k, v in sorted(over[t].items(), key=lambda kv: -kv[1]) if v > 10)
                   or "none") for t in got))
            result["results"][name]["mean_count_error_over_draws_pct"] = {
                t: round(float(np.mean(list(over[t].values()))), 2) for t in got}
    if args.speed:
        seqs = mistaken(clean, TARGET, args.seed)
        result["speed"] = {t: speed(seqs, cfg) for t, cfg in trackers.items()}
        print("speed, one camera:", result["speed"])
    result["load_after"] = os.getloadavg()
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
