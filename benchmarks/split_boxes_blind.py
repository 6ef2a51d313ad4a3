"""Issue 84's held-out check: a blind second generator of "one animal boxed as two boxes side by side", run through
the tracker as a black box.

How it was written: on 2026-11-29 (session s15, helper "84gen"), by a helper that had not read the tracker
(model_store/core/filters/track*.py), its test scenes (tests/fixtures/tracking_scenes.py, detector_mistakes.py), the
benchmark's generators (benchmarks/tracking_kinds.py, tracking_nights.py, tracking_tune.py) nor the tracking notes,
from the text of issue 84 alone ("Why" and "The class"). Its cameras, animals, speeds and layouts are its own
(benchmarks/split_boxes_scenes.py), its crops drawn here (benchmarks/split_boxes_looks.py) and described by the
product's own `appearance_descriptor` / `animal_descriptor`. The tracker is called only through
`link_camera_scored` and `confirmed_tracks` with the default TrackConfig.

HELD OUT: run once, after the tracker's tuning for issue 84 is done, and its figures reported as they come out. Do
not tune the tracker on these scenes, nor these scenes on the tracker's results; a session that changes either
should say so next to the figures it reports. The unit tests (tests/unit/test_split_boxes_blind.py) check only the
generator's own properties, never the tracker's results.

Per kind (the split class, its two twins, clean), over `--draws` nights of every camera: the count error (per
camera |count - true visits| / true visits, benchmarks/tracking_metrics.py; the mean over cameras, then over draws),
the count against the true visits, for `split` the second boxes folded into their animal's track (the same id as
most of the animal's own boxes), for the twins the couples wrongly merged (both animals mostly under one id).

    python -m benchmarks.split_boxes_blind --seed 101 --draws 3 [--out FILE.json]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from benchmarks.common import print_table, write_json
from benchmarks.split_boxes_looks import descriptors
from benchmarks.split_boxes_scenes import CAMERAS, KINDS, MAIN, SECOND, Scene, scene
from benchmarks.tracking_metrics import count_errors
from model_store.core.filters.tracking import TrackConfig, confirmed_tracks, link_camera_scored


def _mode(ids: np.ndarray) -> int:
    values, counts = np.unique(ids, return_counts=True)
    return int(values[np.argmax(counts)]) if len(values) else -1


def score_scene(sc: Scene, ids: np.ndarray, confirmed: np.ndarray) -> dict:
    """One camera's night against its truth: the count, the second boxes folded, the couples merged."""
    counted = int(sum(bool(confirmed[u]) for u in np.unique(ids) if u >= 0))
    folded = seconds = merged = couples = 0
    main_track = {a["id"]: _mode(ids[(sc.gt_id == a["id"]) & (sc.role == MAIN)]) for a in sc.animals}
    for a in sc.animals:
        if a["split"] is not None:
            second = ids[(sc.gt_id == a["id"]) & (sc.role == SECOND)]
            seconds += len(second)
            folded += int((second == main_track[a["id"]]).sum())
        if a["role"] == "leader" and main_track[a["id"]] >= 0 and main_track[a["partner"]] >= 0:
            couples += 1
            merged += int(main_track[a["id"]] == main_track[a["partner"]])
    return {"camera": sc.camera.name, "kind": sc.kind, "count": counted, "visits": sc.visits,
            "detections": len(ids), "seconds": seconds, "folded": folded, "couples": couples, "merged": merged}


def run_scene(sc: Scene) -> dict:
    """The tracker, as a black box, on one camera's night with the crops' descriptors."""
    appearance, animal = descriptors(sc)
    config = TrackConfig()
    linked = link_camera_scored(sc.times_s, sc.frame_ids, sc.boxes, config, appearance=appearance, scores=sc.scores,
                                animal=animal)
    ids = np.asarray(linked.ids, dtype=np.int64)
    confirmed = np.asarray(confirmed_tracks(ids, config, sc.scores, linked.static), dtype=bool)
    return score_scene(sc, ids, confirmed)


def summarise(rows: list[dict], draws: int) -> list[dict]:
    """Per kind: the count error (mean over cameras per draw, then over draws), the totals, the folds and merges."""
    out = []
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        per_draw = [float(count_errors([r["count"] for r in mine if r["draw"] == d],
                                       [r["visits"] for r in mine if r["draw"] == d]).mean()) for d in range(draws)]
        count, visits = sum(r["count"] for r in mine), sum(r["visits"] for r in mine)
        row = {"kind": kind, "count error %": round(100 * float(np.mean(per_draw)), 2),
               "draws %": " ".join(f"{100 * e:.1f}" for e in per_draw), "count / visits": f"{count} / {visits}",
               "x visits": round(count / max(visits, 1), 2), "seconds folded": "", "couples merged": ""}
        if kind == "split":
            row["seconds folded"] = f"{sum(r['folded'] for r in mine)} / {sum(r['seconds'] for r in mine)}"
        if kind in ("pair", "mother_young"):
            row["couples merged"] = f"{sum(r['merged'] for r in mine)} / {sum(r['couples'] for r in mine)}"
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=101, help="the first draw's seed (draw d uses seed + d)")
    p.add_argument("--draws", type=int, default=3, help="nights of every camera and kind")
    p.add_argument("--out", default=None, help="write every scene's figures and the summary here (JSON)")
    args = p.parse_args(argv)
    if args.draws < 1:
        print(f"error: --draws is at least 1, got {args.draws}", file=sys.stderr)
        return 2
    rows = []
    for d in range(args.draws):
        for kind in KINDS:
            for cam in CAMERAS:
                rows.append({"draw": d, **run_scene(scene(cam, kind, args.seed + d))})
    summary = summarise(rows, args.draws)
    print(f"issue 84's blind split-box check, seed {args.seed}, {args.draws} draws, cameras: "
          + ", ".join(c.name for c in CAMERAS))
    print_table(summary, list(summary[0]))
    print()
    cams = [{"camera": c.name, **{k: "{} / {}".format(*(sum(r[f] for r in rows if r["camera"] == c.name
                                                             and r["kind"] == k) for f in ("count", "visits")))
                                  for k in KINDS}} for c in CAMERAS]
    print_table(cams, ["camera", *KINDS])
    if args.out:
        try:
            write_json(args.out, {"seed": args.seed, "draws": args.draws, "summary": summary, "scenes": rows})
        except OSError as e:
            print(f"error: cannot write {args.out}: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
