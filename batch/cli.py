"""`trapline reprocess | export | postprocess | events | report | crops | tables`: the archive door's commands."""

from __future__ import annotations

import argparse
import dataclasses
import json

from batch.export.options import EXPORT_FLAGS, ExportOptions
from batch.export.registry import run_export
from batch.flags import add_model_arguments
from batch.options import SET_FLAGS, CheckOptions, CompactOptions, parse_options
from batch.refilter import postprocess, snips
from batch.refilter.events import run_events
from batch.refilter.options import CROPS_FLAGS, POSTPROCESS_FLAGS, CropsOptions, EventsOptions, PostprocessOptions
from batch.reprocess import job
from batch.reprocess.options import add_reprocess_arguments
from batch.review import build_report
from batch.review.build import result_json
from batch.review.options import REVIEW_FLAGS, ReviewOptions
from model_store.tables.maintenance import check, compact
from trapline.ray_output import console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reprocess", help="run a model over an image archive (Ray Data) into Parquet detection tables",
        description="Run a model version over an image archive and write the images/detections tables. "
                    "Reruns skip what is done; a killed run resumes where it stopped.")
    add_reprocess_arguments(p)
    p.set_defaults(func=cmd_reprocess)

    p = sub.add_parser("export", help="export detection tables as MegaDetector JSON, COCO results or Camtrap DP")
    add_model_arguments(p, ExportOptions, EXPORT_FLAGS)
    _add_output_arguments(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("postprocess", help="re-apply a post-processing filter to stored detections (no model)",
                       description="Apply a filter to the stored raw detections of one model version and write "
                                   "the result as a new filter set. --camera, --since/--until and --image "
                                   "intersect, as in every command that takes them.")
    add_model_arguments(p, PostprocessOptions, POSTPROCESS_FLAGS)
    _add_output_arguments(p)
    p.set_defaults(func=cmd_postprocess)

    p = sub.add_parser("events", help="group each camera's images into events (visits) by capture-time gap",
                       description="Group each camera's images into events by capture-time gap and write the "
                                   "`events` table next to images/detections (rerunning replaces it).")
    add_model_arguments(p, EventsOptions, SET_FLAGS)
    _add_output_arguments(p)
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("report", help="a static HTML page to review a run: counts, scores, galleries, failures",
                       description="Write a static HTML review report (index.html with plots/ and thumbs/ beside "
                                   "it; opens from disk): counts per camera, day and label, score histograms, a "
                                   "gallery per label and score band, sampled blanks, filtered-out boxes and "
                                   "failed files; --compare adds what another model version found differently.")
    add_model_arguments(p, ReviewOptions, REVIEW_FLAGS)
    _add_output_arguments(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("crops", help="JPEG snips of stored kept detections, from the tables (no model)",
                       description="Cut a JPEG snip of every kept detection of one model version and result set "
                                   "from its source image, with the names and snips rows reprocess --crops would "
                                   "write. Reruns write nothing new; unreadable images are listed, not fatal.")
    add_model_arguments(p, CropsOptions, CROPS_FLAGS)
    _add_output_arguments(p)
    p.set_defaults(func=cmd_crops)

    p = sub.add_parser("tables", help="upkeep of stored tables: compact small parts, check for duplicates",
                       description="Maintenance of the tables runs and the online recorder write (no model).")
    tables = p.add_subparsers(dest="tables_command", metavar="{compact,check}", required=True)
    c = tables.add_parser("compact", help="merge small parts into large ones (same rows, fewer files)",
                          description="Merge each model version's committed parts into large ones, under its run "
                                      "lease, atomically for trapline's readers; idempotent.")
    add_model_arguments(c, CompactOptions, SET_FLAGS)
    _add_output_arguments(c)
    c.set_defaults(func=cmd_tables_compact)
    c = tables.add_parser("check", help="report duplicate or orphaned rows (exit 1 when any)",
                          description="Read every partition and report rows stored twice, images processed twice "
                                      "in one result set, uncommitted part files and unsettled uploads.")
    add_model_arguments(c, CheckOptions, SET_FLAGS)
    _add_output_arguments(c)
    c.set_defaults(func=cmd_tables_check)


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    """How the result is printed: not an option of the work itself, so not part of the options model."""
    p.add_argument("--json", action="store_true", dest="json_output", help="print the result as JSON")


def options(model: type, args: argparse.Namespace, command: str):
    """The command's options model from the flags given (the CLI's flags are generated from the same model)."""
    given = {k: v for k, v in vars(args).items()
             if k not in ("func", "command", "tables_command", "json_output", "verbose")}
    return parse_options(model, given, command)


def cmd_crops(args: argparse.Namespace) -> int:
    opts = options(CropsOptions, args, "crops")
    report = snips.run_crops(**opts.run_kwargs(), progress=_progress)
    print(json.dumps(dataclasses.asdict(report), indent=2) if args.json_output else snips.format_report(report))
    return 0


def cmd_tables_compact(args: argparse.Namespace) -> int:
    opts = options(CompactOptions, args, "tables compact")
    report = compact(opts.tables, target_rows=opts.target_rows, wait_s=opts.wait_s, log=_progress)
    print(json.dumps(dataclasses.asdict(report), indent=2) if args.json_output else report.line())
    return 0


def cmd_tables_check(args: argparse.Namespace) -> int:
    report = check(options(CheckOptions, args, "tables check").tables)
    print(json.dumps(dataclasses.asdict(report), indent=2) if args.json_output else "\n".join(report.lines()))
    return 0 if report.clean else 1


def cmd_reprocess(args: argparse.Namespace) -> int:
    return job.cmd_reprocess(args)


def cmd_export(args: argparse.Namespace) -> int:
    report = run_export(**options(ExportOptions, args, "export").run_kwargs())
    if args.json_output:
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        print(f"exported {report.images} image(s) ({report.failed} failed) and {report.detections} detection(s) "
              f"of {report.model} [filters {report.filters_hash}] as {report.format}:")
        for path in report.written:
            print(f"  {path}")
        for note in report.notes:
            print(f"note: {note}")
    return 0


def cmd_postprocess(args: argparse.Namespace) -> int:
    opts = options(PostprocessOptions, args, "postprocess")
    report = postprocess.run_postprocess(**opts.run_kwargs(), progress=_progress)
    print(json.dumps(dataclasses.asdict(report), indent=2) if args.json_output else
          postprocess.format_report(report))
    return 0


def _progress(line: str) -> None:
    print(line, file=console(), flush=True)


def cmd_events(args: argparse.Namespace) -> int:
    r = run_events(**options(EventsOptions, args, "events").run_kwargs())
    if args.json_output:
        print(json.dumps(dataclasses.asdict(r), indent=2))
        return 0
    print(f"{r.events} event(s) from {r.images} image(s) of {r.model} [filters {r.filters_hash}], gap {r.gap_s:g}s"
          + (f"; left out: {r.failed} failed" if r.failed else "")
          + (f", {r.without_time} without a capture time" if r.without_time else ""))
    if r.occurrences is not None:
        print(f"{r.occurrences} animal(s) (confirmed occurrences); per camera and night/day "
              "(events, max-per-frame count, occurrences by label):")
        for p in r.periods:
            labels = ", ".join(f"{k} {n}" for k, n in sorted(p["labels"].items())) or "none"
            print(f"  {p['camera_id']:<12} {p['period']:<17} {p['events']:>4} event(s)  max-per-frame "
                  f"{p['max_per_frame']:>4}  occurrences {p['occurrences']:>4} ({labels})")
    print(f"  {r.written}" if r.written else "dry run: nothing was written")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    opts = options(ReviewOptions, args, "report").report_options()
    result = build_report(opts, log=_progress)
    if args.json_output:
        print(result_json(result))
        return 0
    print(f"report of {result.model} [filters {result.filters_hash}]: {result.images} image(s), "
          f"{result.thumbnails} thumbnail(s) in {result.wall_s:.1f}s")
    if result.compared_with:
        print(f"compared with {result.compared_with}: {result.only_a} box(es) only in {result.model}, "
              f"{result.only_b} only in {result.compared_with}")
    if result.agreement is not None:
        print(f"agreement with people's identifications: {result.agreement:.0%} (per label in the report)")
    if result.occurrences is not None:
        print(f"animals: {result.occurrences} confirmed occurrence(s); the model's vote disagrees with a person's "
              f"identification on {result.disagreements}")
    if result.unreadable:
        print(f"warning: {result.unreadable} image(s) could not be read (listed in the report)")
    print(f"  open {result.index}")
    return 0
