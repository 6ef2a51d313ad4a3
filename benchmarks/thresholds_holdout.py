"""Thresholds from people's reviews, checked on cameras they were not derived on.

`python -m benchmarks.thresholds_holdout [--seeds 1,...,20] [--cameras 20] [--per-camera 300] [--target 0.95]`

Each seed generates a season of reviews (tests/fixtures/threshold_reviews.py: per camera, detections of deer, fox and
boar whose chance of being right rises with the score along a logistic curve per label; wrong ones relabelled or
rejected; boxes people added). The cameras are split in two halves at random (by seed); `propose`
(batch/postprocessing/thresholds.py) derives each label's threshold from the first half, and the precision of that
label's detections scoring at least the threshold is measured on the second half. The claim: within 0.02 of the
target. No Ray, no tables: the proposal's arithmetic alone, on a few thousand judged boxes; a second or two.
"""

from __future__ import annotations

import argparse
import random

from batch.postprocessing.accuracy_stats import rate, wilson
from batch.postprocessing.thresholds import propose
from benchmarks.common import print_table
from tests.fixtures.threshold_reviews import season


def holdout(seed: int, cameras: int, per_camera: int, target: float) -> list[dict]:
    judged = season(seed, cameras, per_camera)
    names = sorted({j.camera_id for j in judged})
    random.Random(seed).shuffle(names)
    fit = set(names[: len(names) // 2])
    p = propose([j for j in judged if j.camera_id in fit], target, min_camera=10**9)  # the label's, on new cameras
    rows = []
    for e in p["labels"]:
        held = [j for j in judged if j.camera_id not in fit and j.model == e["label"] and j.score is not None
                and e["threshold"] is not None and j.score >= e["threshold"]]
        k = sum(j.people == e["label"] for j in held)
        lo, hi = wilson(k, len(held)) or (None, None)
        got = rate(k, len(held))["value"]
        rows.append({"seed": seed, "label": e["label"], "threshold": e["threshold"], "fit reviewed": e["reviewed"],
                     "fit precision": e["precision"]["value"] if e["threshold"] is not None else None,
                     "held-out precision": got, "wilson 95%": f"{lo:.3f}-{hi:.3f}" if lo is not None else "-",
                     "kept held-out": len(held), "diff": None if got is None else round(got - target, 4)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default=",".join(str(s) for s in range(1, 21)))
    ap.add_argument("--cameras", type=int, default=20)
    ap.add_argument("--per-camera", type=int, default=300)
    ap.add_argument("--target", type=float, default=0.95)
    a = ap.parse_args()
    rows = [r for s in a.seeds.split(",") for r in holdout(int(s), a.cameras, a.per_camera, a.target)]
    print_table(rows, ["seed", "label", "threshold", "fit reviewed", "fit precision", "held-out precision",
                       "wilson 95%", "kept held-out", "diff"])
    diffs = [r["diff"] for r in rows if r["diff"] is not None]
    within = sum(abs(d) <= 0.02 for d in diffs)
    fit = sorted(r["fit reviewed"] for r in rows)
    print(f"held-out precision within 0.02 of {a.target:g}: {within}/{len(diffs)} (label, seed) pairs "
          f"({len(rows) - len(diffs)} without a threshold); held-out - target: mean {sum(diffs) / len(diffs):+.4f}, "
          f"mean |diff| {sum(map(abs, diffs)) / len(diffs):.4f}, range {min(diffs):+.4f} to {max(diffs):+.4f}; "
          f"reviewed detections of a label in the fitting half: median {fit[len(fit) // 2]}")


if __name__ == "__main__":
    main()
