"""`trapline occurrences review|split|merge|move`: see the least certain tracks and fix them from the shell.

The same functions as the HTTP routes (batch/postprocessing/occurrences.py): a fix is a decision in the tables'
decisions log, applied by the next `trapline postprocess --filter track` and every run after it.
"""

from __future__ import annotations

import argparse
import json

from trapline.base.errors import BatchError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("occurrences", help="list the least certain occurrences; split, merge or move their "
                                           "detections (the decisions log)",
                       description="review: occurrences whose weakest link the tracker is least sure of, least "
                                   "certain first. split OCC --frame N: the N-th frame (0: first, as `review` "
                                   "shows them) and the later ones are another animal. merge OCC OTHER: one "
                                   "animal. move OCC --frame N --to OTHER: that frame's detection belongs to "
                                   "OTHER. Fixes apply at the next `trapline postprocess --filter track`.")
    p.add_argument("action", choices=["review", "split", "merge", "move"])
    p.add_argument("occurrence", nargs="*", help="split/move: OCC; merge: OCC OTHER")
    p.add_argument("--tables", required=True, help="the detection tables (directory or s3://...)")
    p.add_argument("--model", default=None, help="NAME or NAME:VERSION when the tables hold several")
    p.add_argument("--filters-hash", default=None, help="the result set (default: the newest with occurrences)")
    p.add_argument("--frame", type=int, default=None, help="split/move: the frame, 0-based in time order")
    p.add_argument("--to", default=None, help="move: the occurrence the detection belongs to")
    p.add_argument("--below", type=float, default=1.0, help="review: link confidence under this")
    p.add_argument("--limit", type=int, default=20, help="review: how many to list")
    p.add_argument("--who", default="cli", help="the person deciding, as the log keeps it")
    p.add_argument("--comment", default=None)
    p.set_defaults(func=cmd_occurrences)


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise BatchError(message)


def cmd_occurrences(args: argparse.Namespace) -> int:
    # late (these three): the tables' readers and pandas load when the command runs, not for every command line
    from batch.postprocessing import occurrences
    from batch.postprocessing.determine import key_of
    from model_store.tables.reader import Tables

    where = (args.model, args.filters_hash)
    if args.action == "review":
        occ = occurrences.load(args.tables, *where)
        queue = occurrences.review_queue(occ.rows, args.below)
        print(f"{len(queue)} occurrence(s) with a link under {args.below} "
              f"({occ.tset.model_name}:{occ.tset.model_version} [filters {occ.tset.filters_hash}])")
        for row in queue.head(args.limit).to_dict("records"):
            weakest = row["weakest_link"]
            at = [key_of(d) for d in row["detections"]].index(key_of(weakest))
            print(f"  {row['occurrence_id']}  confidence {row['link_confidence']:.2f}  {row['frames']:>4} frame(s)  "
                  f"{row['label'] or '-'}  weakest link at frame {at}")
        return 0
    need = 2 if args.action == "merge" else 1
    _need(len(args.occurrence) == need, f"{args.action} takes {need} occurrence id(s)")
    oid = args.occurrence[0]
    if args.action == "merge":
        decision = occurrences.merge(args.tables, oid, args.occurrence[1], args.who, args.comment, *where)
    else:
        _need(args.frame is not None, f"{args.action} needs --frame N")
        _need(args.action == "split" or args.to is not None, "move needs --to OTHER")
        occ = occurrences.load(args.tables, *where)
        frames = occurrences.frames(Tables(args.tables), occ, occurrences.find(occ, oid))
        _need(0 <= args.frame < len(frames), f"--frame must be 0..{len(frames) - 1}, got {args.frame}")
        key = key_of(frames[args.frame])
        decision = (occurrences.split(args.tables, oid, key, args.who, args.comment, *where)
                    if args.action == "split" else
                    occurrences.move(args.tables, oid, key, args.to, args.who, args.comment, *where))
    print(json.dumps(decision))
    print("recorded; it applies at the next `trapline postprocess --filter track` over these tables")
    return 0
