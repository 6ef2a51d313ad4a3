"""`trapline identify [evaluate]`: individuals over stored tables, and how well they agree with known ones."""

from __future__ import annotations

import argparse
import json

from batch.identify.evaluate import evaluate
from batch.identify.run import run_identify
from trapline.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "identify", help="re-identify individuals among stored detections (sightings and individuals tables)",
        description="Describe every kept detection the identifier covers (its box cut from the archive image), "
                    "match them (a shortlist, then verified matching), cluster them into individuals honouring "
                    "people's decisions, and write the sightings and individuals tables beside detections. "
                    "`trapline identify evaluate --tables T --truth CSV` compares the newest run with known "
                    "individuals.")
    p.add_argument("action", nargs="?", choices=["run", "evaluate"], default="run")
    p.add_argument("--tables", required=True, help="the tables directory or s3:// prefix")
    p.add_argument("--identifier", help="NAME[:VERSION|@ALIAS] of an identifier in the store (run)")
    p.add_argument("--store", default=None, help="model store root (default: $TRAPLINE_MODEL_STORE or ./models)")
    p.add_argument("--model", default=None, help="the detector version of the tables to read (when several)")
    p.add_argument("--threshold", type=float, default=0.5, help="P(same individual) that joins two sightings")
    p.add_argument("--truth", default=None, help="evaluate: CSV of uri or rel_path -> individual")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_identify)


def cmd_identify(args: argparse.Namespace) -> int:
    if args.action == "evaluate":
        if not args.truth:
            raise UserError("identify evaluate needs --truth CSV (uri or rel_path -> individual)")
        figures = evaluate(args.tables, args.truth)
        if args.json:
            print(json.dumps(figures))
        else:
            top1 = "n/a" if figures["top1"] is None else f"{figures['top1']:.3f}"
            ari = "n/a" if figures["ari"] is None else f"{figures['ari']:.3f}"
            print(f"{figures['sightings']} labelled sightings ({figures['unidentifiable']} unidentifiable): "
                  f"top-1 {top1}, adjusted Rand index {ari}, individuals found {figures['individuals_found']} "
                  f"of {figures['individuals_true']}")
        return 0
    if not args.identifier:
        raise UserError("identify needs --identifier NAME[:VERSION|@ALIAS]")
    r = run_identify(args.tables, args.identifier, args.store, args.model, args.threshold)
    c = r.changes
    print(f"identified {r.sightings - r.unidentifiable} of {r.sightings} sightings with {r.identifier} "
          f"({r.unidentifiable} unidentifiable): {r.individuals} individuals, run {r.run_id}")
    print(f"  changed since the last run: {len(c.new)} new, {len(c.merged)} merged, {len(c.split)} split")
    return 0
