"""Choosing TrackConfig's defaults on scenes the benchmark does not score (another seed), so that the figures
in BENCHMARKS.md are not fitted to the scenes they are measured on.

`flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.tracking_tune [--seed 7] [--sheets 4]
 [--bursts 150]`: a small grid around the defaults; per setting, the mean count error on sheets and bursts and
the ID switches per 100 true tracks (motmetrics), best first.
"""

from __future__ import annotations

import argparse
import itertools
import sys

from benchmarks.tracking import load_scenes, run_trapline, score
from model_store.core.filters.tracking import TrackConfig

GRID = {"max_cost": [0.5, 0.55, 0.6], "max_centre_distance": [2.0, 2.5], "appearance_weight": [1.5, 3.0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sheets", type=int, default=4)
    parser.add_argument("--bursts", type=int, default=150)
    parser.add_argument("--hours", type=float, default=3.0)
    args = parser.parse_args(argv)
    seqs = load_scenes(args.sheets, args.bursts, args.seed, args.hours)
    rows = []
    for values in itertools.product(*GRID.values()):
        setting = dict(zip(GRID, values, strict=True))
        ids, _ = run_trapline(seqs, TrackConfig(**setting))
        s = score(seqs, ids)
        rows.append((s["sheet"]["count_error_mean_pct"] + s["burst"]["count_error_mean_pct"]
                     + s["sheet"]["id_switches_per_100"] / 4 + s["burst"]["id_switches_per_100"], setting, s))
    for total, setting, s in sorted(rows, key=lambda r: r[0])[:15]:
        print(f"{total:6.2f} {setting} sheet err {s['sheet']['count_error_mean_pct']} idsw "
              f"{s['sheet']['id_switches_per_100']} | burst err {s['burst']['count_error_mean_pct']} idsw "
              f"{s['burst']['id_switches_per_100']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
