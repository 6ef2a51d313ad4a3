"""`trapline reprocess | export | postprocess | events | report | crops`: the archive door's commands."""

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
    p.add_argument("--timezone", default="Z",
                   help="Camtrap DP: UTC offset of the cameras' clocks (path / EXIF times; mtimes stay UTC; default Z)")
    p.add_argument("--observation-level", choices=["media", "event", "both"], default="media",
                   help="Camtrap DP observations per image box (media), per event and label (event), or both")
    p.add_argument("--deployments", default=None, metavar="FILE.csv|FILE.json",
                   help="Camtrap DP: per camera id its latitude, longitude, deploymentStart, deploymentEnd "
                        "(and optional Camtrap DP setup fields)")
    p.add_argument("--allow-missing-deployments", action="store_true",
                   help="Camtrap DP: write cameras missing from --deployments without coordinates instead of refusing")
    p.add_argument("--package-meta", default=None, metavar="META.yaml",
                   help="Camtrap DP: datapackage.json metadata (title, contributors, project, licenses, ...)")
    _add_gap_argument(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("postprocess", help="re-apply a post-processing filter to stored detections (no model)",
                       description="Apply a filter to the stored raw detections of one model version and write "
                                   "the result as a new filter set.")
    p.add_argument("--tables", required=True, metavar="DST", help="the reprocess --out location")
    p.add_argument("--filter", required=True, dest="filter_name",
                   help="filter name: min_size, class_mask, score, repeat (table-level: boxes recurring on a "
                        "camera); on classifier scores: classifier_mask, rank_rollup")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", help='the filter\'s config as JSON, e.g. \'{"min_area_fraction": 0.001}\'')
    group.add_argument("--remove", action="store_true", help="take the filter out of the set")
    _add_set_arguments(p, source=True)
    p.add_argument("--image", default=None, metavar="URI",
                   help="only this image (its URI or archive-relative path); one scope kind per run: "
                        "--camera, --since/--until or --image")
    p.add_argument("--rows-per-file", type=int, default=5000, help="images per Parquet part (default 5000)")
    p.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
    p.add_argument("--progress-interval", type=float, default=5.0, help="seconds between progress lines")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_postprocess)

    p = sub.add_parser("events", help="group each camera's images into events (visits) by capture-time gap",
                       description="Group each camera's images into events by capture-time gap and write the "
                                   "`events` table next to images/detections (rerunning replaces it).")
    p.add_argument("--tables", required=True, metavar="DST", help="the reprocess --out location")
    _add_gap_argument(p)
    p.add_argument("--model", default=None, help="NAME, NAME:VERSION or NAME@ALIAS (needed when several are stored)")
    p.add_argument("--store", default=None, help="model store root, to resolve NAME@ALIAS")
    p.add_argument("--filters-hash", dest="filters_hash", default=None, help="the filter set (default: the newest)")
    p.add_argument("--dry-run", action="store_true", help="count the events; write nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("report", help="a static HTML page to review a run: counts, scores, galleries, failures",
                       description="Write a static HTML review report (index.html with plots/ and thumbs/ beside "
                                   "it; opens from disk): counts per camera, day and label, score histograms, a "
                                   "gallery per label and score band, sampled blanks, filtered-out boxes and "
                                   "failed files; --compare adds what another model version found differently.")
    p.add_argument("--tables", required=True, metavar="DST", help="the reprocess --out location")
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write the report into")
    _add_set_arguments(p)
    p.add_argument("--compare", default=None, metavar="OTHER_MODEL_REF",
                   help="another model version in the same tables (NAME:VERSION or NAME@ALIAS) to compare with")
    p.add_argument("--compare-filters-hash", default=None, help="the other version's filter set (default: newest)")
    p.add_argument("--min-iou", type=float, default=0.5, help="IoU for two versions' boxes to match (default 0.5)")
    p.add_argument("--bands", default="0.2,0.4,0.6,0.8", help="score-band edges (default 0.2,0.4,0.6,0.8)")
    p.add_argument("--per-band", type=int, default=12, help="images shown per label and band (default 12)")
    p.add_argument("--thumb-size", type=int, default=360, help="longest thumbnail side in pixels (default 360)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_report)

    _register_crops(sub)


def _register_crops(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("crops", help="JPEG snips of stored kept detections, from the tables (no model)",
                       description="Cut a JPEG snip of every kept detection of one model version and result set "
                                   "from its source image, with the names and snips rows reprocess --crops would "
                                   "write. Reruns write nothing new; unreadable images are listed, not fatal.")
    p.add_argument("--tables", required=True, metavar="DST", help="the reprocess --out location")
    _add_set_arguments(p)
    p.add_argument("--image", default=None, metavar="URI", help="only this image (its URI or archive-relative path)")
    p.add_argument("--crop-padding", type=float, default=0.0, help="grow each box by this fraction per side")
    p.add_argument("--crop-square", action="store_true", help="make the snips square")
    p.add_argument("--crop-min-size", type=int, default=0, help="none for boxes whose shorter side is under this (px)")
    p.add_argument("--progress-interval", type=float, default=5.0, help="seconds between progress lines")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_crops)


def cmd_crops(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from model_store import CropOptions

    from .crops import format_report, run_crops
    from .errors import BatchError

    try:
        options = CropOptions(padding=args.crop_padding, square=args.crop_square, min_size=args.crop_min_size)
    except ValidationError as exc:
        raise BatchError(f"crop options: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    report = run_crops(args.tables, options, model=args.model, filters_hash=args.filters_hash, store=args.store,
                       cameras=args.camera, since=args.since, until=args.until, image=args.image,
                       progress=_progress, progress_interval=args.progress_interval)
    print(json.dumps(dataclasses.asdict(report), indent=2) if args.json else format_report(report))
    return 0


def _add_gap_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gap-s", type=float, default=60.0,
                   help="a gap longer than this many seconds between a camera's images starts a new event (default 60)")


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
                        store=args.store, observation_level=args.observation_level, gap_s=args.gap_s,
                        deployments=args.deployments, allow_missing_deployments=args.allow_missing_deployments,
                        package_meta=args.package_meta)
    if args.json:
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
                             until=args.until, image=args.image, rows_per_file=args.rows_per_file,
                             dry_run=args.dry_run, store=args.store, progress=_progress,
                             progress_interval=args.progress_interval)
    print(json.dumps(dataclasses.asdict(report), indent=2) if args.json else format_report(report))
    return 0


def _progress(line: str) -> None:
    from trapline.ray_output import console

    print(line, file=console(), flush=True)


def cmd_events(args: argparse.Namespace) -> int:
    from .events import run_events

    r = run_events(args.tables, args.gap_s, model=args.model, filters_hash=args.filters_hash, store=args.store,
                   dry_run=args.dry_run)
    if args.json:
        print(json.dumps(dataclasses.asdict(r), indent=2))
        return 0
    print(f"{r.events} event(s) from {r.images} image(s) of {r.model} [filters {r.filters_hash}], gap {r.gap_s:g}s"
          + (f"; left out: {r.failed} failed" if r.failed else "")
          + (f", {r.without_time} without a capture time" if r.without_time else ""))
    print(f"  {r.written}" if r.written else "dry run: nothing was written")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .errors import BatchError
    from .review import ReportOptions, build_report
    from .review.build import result_json

    try:
        edges = [float(e) for e in args.bands.split(",") if e.strip()]
    except ValueError:
        raise BatchError(f"--bands takes comma-separated scores such as 0.2,0.5,0.8, got {args.bands!r}") from None
    opts = ReportOptions(args.tables, args.out, model=args.model, filters_hash=args.filters_hash,
                         compare=args.compare, compare_filters_hash=args.compare_filters_hash, store=args.store,
                         cameras=args.camera, since=args.since, until=args.until, edges=edges,
                         per_band=args.per_band, thumb_side=args.thumb_size, min_iou=args.min_iou)
    result = build_report(opts, log=_progress)
    if args.json:
        print(result_json(result))
        return 0
    print(f"report of {result.model} [filters {result.filters_hash}]: {result.images} image(s), "
          f"{result.thumbnails} thumbnail(s) in {result.wall_s:.1f}s")
    if result.compared_with:
        print(f"compared with {result.compared_with}: {result.only_a} box(es) only in {result.model}, "
              f"{result.only_b} only in {result.compared_with}")
    if result.unreadable:
        print(f"warning: {result.unreadable} image(s) could not be read (listed in the report)")
    print(f"  open {result.index}")
    return 0
