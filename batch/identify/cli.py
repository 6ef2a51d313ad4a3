"""`trapline identify [evaluate]`: individuals over stored tables, and how well they agree with known ones."""

from __future__ import annotations

import argparse
import json

from batch.flags import add_model_arguments
from batch.identify.evaluate import evaluate
from batch.identify.options import IDENTIFY_FLAGS, IdentifyOptions
from batch.identify.run import run_identify
from batch.options import parse_options
from trapline.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "identify", help="re-identify individuals among stored detections (sightings and individuals tables)",
        description="Describe every kept detection the identifier covers (its box cut from the archive image), "
                    "match them (a shortlist, then verified matching), cluster them into individuals honouring "
                    "people's decisions, and write the sightings and individuals tables beside detections. "
                    "`trapline identify evaluate --tables T --truth CSV` compares the newest run with known "
                    "individuals. `trapline identify weekly --tables T` gives per week the individuals seen, the new "
                    "ones, the share of sightings assigned and whether the profiles are ready to be named.")
    p.add_argument("action", nargs="?", choices=["run", "evaluate", "weekly"], default="run")
    add_model_arguments(p, IdentifyOptions, IDENTIFY_FLAGS)
    p.add_argument("--truth", default=None, help="evaluate: CSV of uri or rel_path -> individual")
    p.add_argument("--json", dest="json_output", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_identify)


def cmd_identify(args: argparse.Namespace) -> int:
    given = {k: v for k, v in vars(args).items()
             if k not in ("func", "command", "action", "truth", "json_output", "verbose")}
    opts = parse_options(IdentifyOptions, given, "identify")
    if args.action == "evaluate":
        if not args.truth:
            raise UserError("identify evaluate needs --truth CSV (uri or rel_path -> individual)")
        figures = evaluate(opts.tables, args.truth)
        if args.json_output:
            print(json.dumps(figures))
        else:
            top1 = "n/a" if figures["top1"] is None else f"{figures['top1']:.3f}"
            ari = "n/a" if figures["ari"] is None else f"{figures['ari']:.3f}"
            print(f"{figures['sightings']} labelled sightings ({figures['unidentifiable']} unidentifiable): "
                  f"top-1 {top1}, adjusted Rand index {ari}, individuals found {figures['individuals_found']} "
                  f"of {figures['individuals_true']}")
        return 0
    if args.action == "weekly":
        return _weekly(opts.tables, args.json_output)
    if not opts.identifier:
        raise UserError("identify needs --identifier NAME[:VERSION|@ALIAS]")
    if opts.ray:
        r = _on_ray(opts)
    else:
        r = run_identify(**opts.run_kwargs())
    c = r.changes
    print(f"identified {r.sightings - r.unidentifiable} of {r.sightings} sightings with {r.identifier} "
          f"({r.unidentifiable} unidentifiable): {r.individuals} individuals, run {r.run_id}")
    print(f"  changed since the last run: {len(c.new)} new, {len(c.merged)} merged, {len(c.split)} split")
    return 0


def _weekly(tables: str, json_output: bool) -> int:
    from batch.identify import weekly  # late (with the next line): the tables are read only for this action
    from model_store.tables.identities import current  # late: as above

    weeks = weekly.weekly(current(tables).sightings)
    ready = weekly.readiness(weeks)
    if json_output:
        print(json.dumps({"weeks": weeks.astype(object).where(weeks.notna(), None).to_dict("records"),
                          "readiness": ready.as_dict()}))
        return 0
    print(weeks.to_string(index=False) if not weeks.empty else "no identify run with sightings yet")
    print(("ready to name: " if ready.ready else "not ready to name: ") + "; ".join(ready.reasons))
    return 0


def _on_ray(opts: IdentifyOptions):
    from batch.identify.distributed import RayWorkers  # late (with the next line): Ray loads only for --ray
    from trapline.ray_runtime import ensure_ray, shutdown_ray  # late: as above

    started = ensure_ray(log_to_driver=False)
    try:
        return run_identify(**opts.run_kwargs(), workers=RayWorkers(opts.identifier, opts.store))
    finally:
        if started:
            shutdown_ray()
