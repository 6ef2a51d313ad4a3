"""The gate before promote (issue 82, item 6) on the demo's two detector versions: v1 (production) against v2, and
against v2 with a threshold published absurdly high (a config-only version that keeps almost no box).

`python -m benchmarks.promote_gate [--cameras 10] [--per-camera 12] [--seed 7] [--error-rate 0.05]
[--threshold 0.99]`

A season of the demo's rendered scenes (their true boxes known) at `--cameras` cameras runs through demo-detector:1
into tables, and simulated reviewers who know the truth judge it (tests/fixtures/gate_season.py: a detection on a
true box of its label confirmed, any other rejected, every missed true box added, a picture with no animal marked
empty), each verdict the wrong way round at `--error-rate`. The gate (batch/review/promote_gate.py) then compares
each candidate with demo-detector:1 on the held-out cameras (the training-set split's test cameras, seed 0), both run
in-process; the claim: v2 passes (better, or no worse within the intervals), the absurd threshold is refused. Less
than a minute on 2 cores (one detector pass over the season, two gate runs).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from batch.review.promote_gate import compare, table
from model_store import ModelStore
from model_store.demo.publish import DEMO_NAME, publish_demo
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from tests.fixtures.gate_season import publish_threshold, write_season


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, default=10)
    ap.add_argument("--per-camera", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--error-rate", type=float, default=0.05)
    ap.add_argument("--threshold", type=float, default=0.99)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = str(root / "store")
        models = ModelStore(store)
        publish_demo(models, with_torch=False)
        absurd = publish_threshold(models, f"{DEMO_NAME}:2", "2-absurd", a.threshold)
        t0 = time.perf_counter()
        tables = write_season(root / "season", models, f"{DEMO_NAME}:1", a.cameras, a.per_camera, a.seed,
                              a.error_rate)
        print(f"season: {a.cameras} cameras x {a.per_camera} scenes through {DEMO_NAME}:1, reviewed with error rate "
              f"{a.error_rate:g}, in {time.perf_counter() - t0:.1f} s\n")
        verdicts = {}
        for candidate in (f"{DEMO_NAME}:2", absurd):
            t0 = time.perf_counter()
            c = compare(Tables(open_location(tables)), f"{DEMO_NAME}:1", candidate, models)
            verdicts[candidate] = c["verdict"]
            print(f"{table(c)}\n  ({time.perf_counter() - t0:.1f} s; refused: {c['refused']})\n")
        print("; ".join(f"{k}: {v}" for k, v in verdicts.items()))


if __name__ == "__main__":
    main()
