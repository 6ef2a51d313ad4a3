"""Where ID switches come from: every motmetrics ID switch of trapline, norfair and ByteTrack on some kinds of
night, sorted by what happened to the true animal.

`flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.tracking_switch_causes [--seed 7]
 [--kinds lookalike quick-visits same-spot] [--rule whole] [--more-nights 8]`

An ID switch is a true animal whose reported id changes (benchmarks/tracking_metrics.py). Its new id is either
- a track that starts there: a **restart**, after a missed frame or not, and with the animal's old track ending
  or going on with another animal (a newcomer or a neighbour took it);
- a track that followed another animal before: **took the track of one that left** (that animal is no longer on
  view) or **swapped with a neighbour** (still on view);
- a track that followed this animal before: **back to its own track** (after an interloper's detection or two).
Also counted: switches whose animal had only one detection on its old track. A tracker that confirms a track only
from its second detection (norfair, ByteTrack) never reports such a track, so these switches are what its rule for
short tracks hides (benchmarks/tracking.py's RULES). `--more-nights N` scores N further nights of each light-trap
kind drawn from the seed instead (the report's nights are the first ones, so these are never reported on): a kind
with few switches per night needs more nights to tell trackers apart.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

import numpy as np

from benchmarks.tracking import RULES, cached_scenes, peer_ids, run_peers, run_trapline
from benchmarks.tracking_kinds import NIGHT_KINDS, night
from benchmarks.tracking_metrics import mot_accumulator
from benchmarks.tracking_nights import FIT_SEED, load_kinds
from model_store.core.filters.tracking import TrackConfig


def switch_causes(seq: dict[str, Any], ids: np.ndarray) -> Counter:
    """The causes of one sequence's ID switches (see the module's docstring)."""
    ev = mot_accumulator(seq, ids).mot_events
    ev = ev[ev["Type"].isin(["MATCH", "SWITCH"])]
    on_view = set(zip(seq["gt_frame"].tolist(), seq["gt_id"].tolist(), strict=True))
    frames, truth = seq["frame_ids"], seq["truth"]
    last: dict[int, tuple[int, int]] = {}
    out: Counter = Counter()
    for f, kind, o, h in zip(ev.index.get_level_values(0), ev["Type"], ev["OId"], ev["HId"], strict=True):
        f, o, h = int(f), int(o), int(h)
        if kind == "SWITCH":
            old, seen = last[o]
            earlier = np.flatnonzero((ids == h) & (frames < f))
            if not len(earlier):
                went_on = np.flatnonzero((ids == old) & (frames >= f))
                cause = "restart, " + ("after a miss" if f - seen > 1 else "no miss") + (
                    ", its old track went on with another" if len(went_on) else "")
            elif np.bincount(truth[earlier] + 1).argmax() - 1 == o:
                cause = "back to its own track"
            else:
                other = int(np.bincount(truth[earlier] + 1).argmax() - 1)
                cause = "swapped with a neighbour" if (f, other) in on_view else "took the track of one that left"
            out[cause] += 1
            if ((ids == old) & (truth == o)).sum() == 1:
                out["(its old track held one detection of it)"] += 1
        last[o] = (h, f)
    return out


def more_nights(seed: int, kind: str, after: int, n: int) -> list[dict[str, Any]]:
    """`n` nights of light-trap `kind` from `seed` beyond the first `after` (kind_scenes' own), cached."""
    k = next((i for i, known in enumerate(NIGHT_KINDS) if known.name == kind), None)
    if k is None:
        raise SystemExit(f"--more-nights draws light-trap kinds only; {kind!r} is not one of "
                         f"{[known.name for known in NIGHT_KINDS]}")
    return cached_scenes(f"extra-{seed}-{kind}-{after}-{after + n}",
                         lambda: [night(NIGHT_KINDS[k], seed * 10_000 + 100 * k + i) for i in range(after, after + n)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=FIT_SEED)
    parser.add_argument("--kinds", nargs="+", default=["lookalike", "quick-visits", "same-spot"])
    parser.add_argument("--rule", choices=sorted(RULES), default="whole", help="how the peers' tracks are scored")
    parser.add_argument("--more-nights", type=int, default=0, help="score this many further nights of each kind")
    args = parser.parse_args(argv)
    per_kind, bursts = (2, 30) if args.seed == FIT_SEED else (3, 40)
    if args.more_nights:
        seqs = [s for k in args.kinds for s in more_nights(args.seed, k, per_kind, args.more_nights)]
    else:
        seqs = [s for s in load_kinds(args.seed, per_kind, bursts) if s["kind"] in args.kinds]
    config = TrackConfig()
    methods = {"trapline": run_trapline(seqs, config)[0]}
    peers, _, why = run_peers(seqs)
    methods.update({name: peer_ids(p, seqs, args.rule, config) for name, p in peers.items()})
    print(f"seed {args.seed}, peers scored by rule {args.rule!r}: {RULES[args.rule]}" + (f" ({why})" if why else ""))
    for kind in args.kinds:
        pick = [i for i, s in enumerate(seqs) if s["kind"] == kind]
        tracks = sum(len(np.unique(seqs[i]["gt_id"])) for i in pick)
        for name, ids in methods.items():
            causes = sum((switch_causes(seqs[i], ids[i]) for i in pick), Counter())
            total = sum(v for k, v in causes.items() if not k.startswith("("))
            print(f"{kind} ({tracks} true tracks), {name}: {total} switches ({100 * total / tracks:.2f} per 100)")
            for cause, n in causes.most_common():
                print(f"    {n:3d} {cause}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
