"""`trapline identify [evaluate]`: individuals over stored tables, and how well they agree with known ones. The
command's entry in the registry (batch/commands.py) takes its flags from `IdentifyOptions`; this module adds the
action and `--truth`, and runs either."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from batch.flags import add_model_arguments, flag_of
from batch.identify.options import IDENTIFY_FLAGS, IdentifyAction, IdentifyOptions
from batch.options import parse_options
from ground.errors import UserError
from model_store.tables.locations import open_location
from model_store.tables.schema import INDIVIDUALS, SIGHTINGS


def add_arguments(p: argparse.ArgumentParser) -> None:
    """What `trapline identify` takes besides its options: the action and --truth, flags generated from their model."""
    add_model_arguments(p, IdentifyAction, IDENTIFY_FLAGS)


def run(opts: IdentifyOptions, progress: Callable[[str], None] | None = None) -> Any:
    """One identify run (on Ray Data actors with `--ray`)."""
    if not opts.identifier:
        raise UserError("identify needs --identifier NAME[:VERSION|@ALIAS]")
    from batch.identify.run import run_identify  # late: the command line is built without the tables' pandas

    if not opts.ray:
        return run_identify(opts)
    from batch.identify.distributed import RayWorkers  # late (with the next line): Ray loads only for --ray
    from ground.ray_runtime import ensure_ray, shutdown_ray  # late: as above

    started = ensure_ray(log_to_driver=False)
    try:
        return run_identify(opts, workers=RayWorkers(opts.identifier, opts.store))
    finally:
        if started:
            shutdown_ray()


def run_text(r: Any) -> str:
    c = r.changes
    return (f"identified {r.sightings - r.unidentifiable} of {r.sightings} sightings with {r.identifier} "
            f"({r.unidentifiable} unidentifiable): {r.individuals} individuals, run {r.run_id}\n"
            f"  changed since the last run: {len(c.new)} new, {len(c.merged)} merged, {len(c.split)} split\n"
            f"  tables    wrote {{{SIGHTINGS},{INDIVIDUALS}}} (run_id={r.run_id})")


def cmd_identify(args: argparse.Namespace) -> int:
    given = {k: v for k, v in vars(args).items() if k in IdentifyOptions.model_fields}
    opts = parse_options(IdentifyOptions, given, "identify", flag_of(IDENTIFY_FLAGS))
    what = parse_options(IdentifyAction, {k: v for k, v in vars(args).items() if k in IdentifyAction.model_fields},
                         "identify", flag_of(IDENTIFY_FLAGS))  # the action named as it is given: no flag
    if what.action == "evaluate":
        if not what.truth:
            raise UserError("identify evaluate needs --truth CSV (uri or rel_path -> individual)")
        from batch.identify.evaluate import evaluate  # late: as run_identify in `run`

        figures = evaluate(opts.tables, what.truth)
        if args.json_output:
            print(json.dumps(figures))
        else:
            top1 = "n/a" if figures["top1"] is None else f"{figures['top1']:.3f}"
            ari = "n/a" if figures["ari"] is None else f"{figures['ari']:.3f}"
            print(f"{figures['sightings']} labelled sightings ({figures['unidentifiable']} unidentifiable): "
                  f"top-1 {top1}, adjusted Rand index {ari}, individuals found {figures['individuals_found']} "
                  f"of {figures['individuals_true']}")
        return 0
    if what.action == "weekly":
        return _weekly(opts.tables, args.json_output)
    print(run_text(run(opts)))
    return 0


def _weekly(tables: str, json_output: bool) -> int:
    """`trapline identify weekly`: per week the individuals seen, the new ones, the share of sightings assigned and
    whether the profiles are ready to be named."""
    from batch.identify import weekly  # late (with the next line): the tables are read only for this action
    from model_store.tables.identities import current  # late: as above

    weeks = weekly.weekly(current(open_location(tables)).sightings)
    ready = weekly.readiness(weeks)
    if json_output:
        print(json.dumps({"weeks": weeks.astype(object).where(weeks.notna(), None).to_dict("records"),
                          "readiness": ready.as_dict()}))
        return 0
    print(weeks.to_string(index=False) if not weeks.empty else "no identify run with sightings yet")
    print(("ready to name: " if ready.ready else "not ready to name: ") + "; ".join(ready.reasons))
    return 0
