"""What lowering the tracker's ID switches costs: motmetrics' ID switches per 100 true tracks, IDF1 and count
error on the kinds where trapline trails norfair on switches (lookalike, quick-visits) and on same-spot, for
TrackConfig settings given as JSON, on the fit seed (7) unless told.

`flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.tracking_switches [--seed 7] '{}' '{"max_cost": 0.6}'
...` (a few seconds a setting). Also prints each setting's benchmarks.tracking_tune objective on all kinds of the
seed (with its ten fly-off nights) and fly-off's count error; `--peers` first prints norfair's and ByteTrack's
figures on the same kinds under each of benchmarks/tracking.py's RULES for which tracks are scored.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.tracking import RULES, peer_ids, run_peers, run_trapline, score
from benchmarks.tracking_nights import FIT_SEED, load_kinds
from benchmarks.tracking_tune import fly_off_nights, objective
from model_store.core.filters.tracking import TrackConfig

KINDS = ("lookalike", "quick-visits", "same-spot")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=FIT_SEED)
    parser.add_argument("--peers", action="store_true", help="also norfair and ByteTrack, under each scoring rule")
    parser.add_argument("settings", nargs="+", help="TrackConfig fields as JSON, e.g. '{\"max_cost\": 0.6}'")
    args = parser.parse_args(argv)
    per_kind, bursts = (2, 30) if args.seed == FIT_SEED else (3, 40)
    every = load_kinds(args.seed, per_kind, bursts)
    seqs = [s for s in every if s["kind"] in KINDS]
    every = [s for s in every if s["kind"] != "fly-off-and-back"] + fly_off_nights(args.seed, 10)
    if args.peers:
        peers, _, why = run_peers(seqs)
        for rule in RULES if not why else ():
            for name, peer in peers.items():
                print(f"{name} ({rule}):", _cells(score(seqs, peer_ids(peer, seqs, rule, TrackConfig()))), flush=True)
    for setting in args.settings:
        value, kinds = objective(every, json.loads(setting))
        print(f"objective {value:.2f}, fly-off-and-back {kinds['fly-off-and-back']['count_error_mean_pct']:.1f} %",
              end=" | ")
        ids, _ = run_trapline(seqs, TrackConfig(**json.loads(setting)))
        print(_cells(score(seqs, ids)), setting, flush=True)
    return 0


def _cells(scored: dict[str, dict[str, float]]) -> str:
    return " | ".join(f"{kind} {r['count_error_mean_pct']:.1f} % / switches {r['id_switches_per_100']:.2f} / IDF1 "
                      f"{r['idf1']:.3f}" for kind, r in scored.items())


if __name__ == "__main__":
    sys.exit(main())
