"""`trapline reprocess | export | postprocess`: the archive door's commands (parse, dispatch, print)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from .options import add_reprocess_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reprocess", help="run a model over an image archive (Ray Data) into Parquet detection tables",
        description="Run a model version over an image archive and write the images/detections tables. "
                    "Reruns skip what is done; a killed run resumes where it stopped.")
    add_reprocess_arguments(p)
    p.set_defaults(func=cmd_reprocess)

    p = sub.add_parser("export", help="export detection tables as MegaDetector JSON, COCO results or Camtrap DP")
    p.add_argument("--tables", required=True, metavar="DST", help="the reprocess --out location")
    p.add_argument("--format", required=True, choices=["megadetector", "coco", "camtrap-dp"])
    p.add_argument("--out", required=True, help="output file (megadetector, coco) or directory (camtrap-dp)")
    _add_set_arguments(p)
    p.add_argument("--timezone", default="Z", help="UTC offset of the capture times for Camtrap DP (default Z)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("postprocess", help="re-apply a post-processing filter to stored detections (no model)",
                       description="Apply a filter to the stored raw detections of one model version and write "
                                   "the result as a new filter set.")
    p.add_argument("--tables", required=True, metavar="DST", help="the reprocess --out location")
    p.add_argument("--filter", required=True, dest="filter_name",
                   help="filter name: min_size, class_mask, score; on classifier scores: classifier_mask, rank_rollup")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", help='the filter\'s config as JSON, e.g. \'{"min_area_fraction": 0.001}\'')
    group.add_argument("--remove", action="store_true", help="take the filter out of the set")
    _add_set_arguments(p, source=True)
    p.add_argument("--rows-per-file", type=int, default=5000, help="images per Parquet part (default 5000)")
    p.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_postprocess)


def _add_set_arguments(p: argparse.ArgumentParser, source: bool = False) -> None:
    p.add_argument("--model", default=None, help="NAME, NAME:VERSION or NAME@ALIAS (needed when several are stored)")
    p.add_argument("--store", default=None, help="model store root, to resolve NAME@ALIAS")
    p.add_argument("--filters-hash", dest="filters_hash", default=None,
                   help=("the filter set to start from" if source else "the filter set to export")
                   + " (default: the newest)")
    p.add_argument("--camera", action="append", default=None, help="only this camera (repeatable)")
    p.add_argument("--since", default=None, help="captured at or after (YYYY-MM-DD or ISO time)")
    p.add_argument("--until", default=None, help="captured at or before (a date includes that day)")


def cmd_reprocess(args: argparse.Namespace) -> int:
    from .reprocess import cmd_reprocess as run

    return run(args)


def cmd_export(args: argparse.Namespace) -> int:
    from .export import run_export

    report = run_export(args.tables, args.format, args.out, model=args.model, filters_hash=args.filters_hash,
                        cameras=args.camera, since=args.since, until=args.until, timezone=args.timezone,
                        store=args.store)
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        print(f"exported {report.images} image(s) ({report.failed} failed) and {report.detections} detection(s) "
              f"of {report.model} [filters {report.filters_hash}] as {report.format}:")
        for path in report.written:
            print(f"  {path}")
    return 0


def cmd_postprocess(args: argparse.Namespace) -> int:
    from .errors import BatchError
    from .postprocess import format_report, run_postprocess

    config = None
    if args.config is not None:
        try:
            config = json.loads(args.config)
        except json.JSONDecodeError as exc:
            raise BatchError(f"--config is not valid JSON ({exc}): {args.config!r}") from None
        if not isinstance(config, dict):
            raise BatchError(f"--config must be a JSON object, got {args.config!r}")
    report = run_postprocess(args.tables, args.filter_name, config, remove=args.remove, model=args.model,
                             source_filters=args.filters_hash, cameras=args.camera, since=args.since,
                             until=args.until, rows_per_file=args.rows_per_file, dry_run=args.dry_run,
                             store=args.store)
    print(json.dumps(dataclasses.asdict(report), indent=2) if args.json else format_report(report))
    return 0
