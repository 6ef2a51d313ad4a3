"""Re-apply post-processing filters to stored detections, on CPU, without the model.

The detections table keeps every raw detection (kept and dropped), so a new filter set is
just `FilterSet.apply` (the detector core's own filter code) over stored boxes and scores.
The result is written as a new filter set of the same model version: new image and detection
rows with the new `filters_hash`, next to the old ones, which stay untouched.

Work is streamed part by part (each images part with its detections part), newest first, so
memory is bounded by one part however large the tables are.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from batch.postprocessing.effects import determinations_changed
from batch.postprocessing.options import PostprocessOptions
from batch.postprocessing.reclassify import ExtraTables, classifiers_of, new_result_hash
from batch.postprocessing.run_report import PostprocessReport, Ticker, report_counts
from batch.postprocessing.species_smoothing import smoothed_labels
from batch.postprocessing.table_filters import Fired, table_level_fired
from batch.postprocessing.tracks import TRACK, Linked, link_occurrences
from ground.errors import BatchError, RunStoppedError, invalid_parameter
from model_store import FilterSet, ModelStore
from model_store.core.filters import DetectionArrays
from model_store.tables.locations import open_location
from model_store.tables.manifest import RunManifest, new_run_id, submission_id, write_manifest
from model_store.tables.reader import Tables
from model_store.tables.schema import (
    DETECTIONS,
    DETECTIONS_SCHEMA,
    IMAGES,
    IMAGES_SCHEMA,
    OCCURRENCES,
    OCCURRENCES_SCHEMA,
)
from model_store.tables.scope import Scope, ScopeError
from model_store.tables.stop import stop_requested
from model_store.tables.table_set import resolve_table_set
from model_store.tables.writer import parquet_bytes, part_name, partition_parts, write_file, write_part


def preview_change(det: Mapping[str, Any], kept_before: bool, kept_after: bool, flags: list[str],
                   relabelled: list[dict[str, Any]], occurrence_id: str | None = None) -> dict[str, Any]:
    """One detection's fate in a single-image preview: dropped, restored, relabelled (kept, and a classifier filter
    changes its species), kept or still_dropped."""
    change = ("dropped" if kept_before and not kept_after else "restored" if kept_after and not kept_before
              else ("relabelled" if relabelled else "kept") if kept_after else "still_dropped")
    return {"detection_index": det["detection_index"], "label": det["label"], "score": det["score"],
            "kept_before": bool(kept_before), "kept_after": bool(kept_after), "change": change,
            "flags": list(flags), "relabelled": relabelled, "occurrence_id": occurrence_id}


def new_filter_set(source_specs: list[dict], name: str, config: Mapping[str, Any] | None, remove: bool,
                   labels: list[str]) -> FilterSet:
    """The source set with one filter added, changed (config merged into the old one) or removed; validated."""
    if not remove and config is None:
        raise BatchError("give --config JSON for the filter (or --remove to take it out)")
    fs = FilterSet.from_specs(source_specs).with_overrides({name: None if remove else dict(config or {})})
    if labels:
        fs.check_labels(labels)
    return fs


def refilter_image(image: Mapping[str, Any], dets: pa.Table, fs: FilterSet, labels: list[str],
                   table_fired: Mapping[str, Fired] | None = None) -> tuple[np.ndarray, list[list[str]]]:
    """(kept mask, flags) for one image's stored raw detections under the filter set `fs`.

    `table_fired` holds what the set's table-level filters decided (see batch/postprocessing/table_filters.py).
    """
    w, h = float(image["width"]), float(image["height"])
    bx, by = dets["bbox_x"].to_numpy(), dets["bbox_y"].to_numpy()
    bw, bh = dets["bbox_w"].to_numpy(), dets["bbox_h"].to_numpy()
    boxes = np.stack([bx * w, by * h, (bx + bw) * w, (by + bh) * h], axis=1).astype(np.float64)
    arrays = DetectionArrays(boxes, dets["score"].to_numpy().astype(np.float64),
                             dets["class_id"].to_numpy().astype(np.int64), labels, int(w), int(h),
                             image.get("camera_id"))
    key = (image["uri"], image["content_id"], image["run_id"])
    indices = dets["detection_index"].to_pylist()
    precomputed = {name: np.array([i in fired.get(key, ()) for i in indices], dtype=bool)
                   for name, fired in (table_fired or {}).items()}
    return fs.apply(arrays, precomputed)


def _labels(meta_labels: list[str], dets: pa.Table) -> list[str]:
    if meta_labels:
        return meta_labels
    seen = dict(zip(dets["class_id"].to_pylist(), dets["label"].to_pylist(), strict=True))
    return [seen.get(i, f"class_{i}") for i in range(max(seen, default=-1) + 1)]


def filter_config(opts: PostprocessOptions) -> Mapping[str, Any] | None:
    """The filter's config: --config, or the one the --config-from version's config.json carries."""
    if opts.config_from is None:
        return opts.config
    mv = ModelStore(opts.store).get(opts.config_from)
    own = {f["name"]: f.get("config", {}) for f in getattr(mv.config, "filters", [])}
    if opts.filter not in own:
        raise BatchError(f"{mv.ref} has no {opts.filter} filter in its config (its filters: {sorted(own) or 'none'})")
    return own[opts.filter]


def check_options(opts: PostprocessOptions) -> None:
    """The filter change against the source set's labels, reading only: what `jobs submit postprocess` checks before
    it submits (the run checks the same before its manifest, with its scope and table-level filters)."""
    with invalid_parameter("tables", "tables"):  # nothing there to post-process
        tset = resolve_table_set(Tables(open_location(opts.tables)), opts.model, opts.filters_hash, opts.store)
    new_filter_set(tset.filter_specs, opts.filter, filter_config(opts), opts.remove, tset.labels)


def run_postprocess(opts: PostprocessOptions, progress: Callable[[str], None] | None = None) -> PostprocessReport:
    """Re-filter one model version's stored detections and write the result as a new filter set (`opts`:
    `trapline postprocess`' options).

    The scope (cameras, a since/until window, one image, the images of some occurrences; given together they
    intersect) limits the rows rewritten; `progress` receives a short line at each step and every
    `opts.progress_interval` seconds.
    """
    t0 = time.perf_counter()
    log = progress or (lambda line: None)
    scope = opts.scope()
    tables = Tables(open_location(opts.tables))
    tset = resolve_table_set(tables, opts.model, opts.filters_hash, opts.store)
    if not tset.metadata:
        raise BatchError(f"cannot find the filter specs of set {tset.filters_hash} in {tables.url}")
    scope = occurrence_images(tables, tset, scope)
    config = filter_config(opts)
    fs = new_filter_set(tset.filter_specs, opts.filter, config, opts.remove, tset.labels)
    set_hash = new_result_hash(fs, tset.metadata)  # covers the source's classifiers, if it has any
    run_id = None if opts.dry_run else new_run_id()
    report = PostprocessReport(run_id, f"{tset.model_name}:{tset.model_version}", tset.filters_hash, set_hash,
                               fs.as_specs(), dry_run=opts.dry_run, scope=scope.as_dict())
    if set_hash == tset.filters_hash:
        report.notes.append("the new filter set equals the source set; nothing to do")
        return report
    name, version = tset.model_name, tset.model_version
    done = set() if opts.dry_run else tables.done_keys(name, version, set_hash, retry_failed=False)
    expr = ds.field("filters_hash") == tset.filters_hash
    if scope.expression() is not None:
        expr = expr & scope.expression()
    report.in_scope = len(set(tables.read(IMAGES, name, version, ["uri"], filter=expr)["uri"].to_pylist()))
    if scope.image and not report.in_scope:
        where = f" within {scope.describe()}" if scope.kind == "combined" else ""
        raise ScopeError(f"no image {scope.image!r}{where} in {report.model} [filters {tset.filters_hash}] "
                         f"(give its URI or its path relative to the archive)")
    log(f"scope: {scope.describe()}: {report.in_scope} image(s) of {report.model} [filters {tset.filters_hash}]")
    table_fired = table_level_fired(tables, tset, fs, scope, log) if fs.table_level else {}
    extra = ExtraTables(tables, tset, fs, opts.store)
    ensemble = dict(fs.filters).get("species_ensemble")
    if ensemble is not None and ensemble.smoothing != "off":
        log(f"smoothing the species determinations per {ensemble.smoothing}")
        extra.smoothed = smoothed_labels(extra, expr, ensemble)
    linked = link_occurrences(extra, scope, table_fired, log) \
        if TRACK in fs.names else Linked()
    report.detections_linked, report.occurrences = linked.detections_linked, linked.occurrences
    report.frames_per_occurrence, report.disagreements = linked.frames_per_occurrence, linked.disagreements
    if linked.unreadable:
        report.notes.append(f"{linked.unreadable} image(s) could not be read for the appearance descriptor; "
                            "their boxes were linked by geometry only")
    meta = {"model": {**tset.metadata.get("model", {})},
            "filters": {**tset.metadata.get("filters", {}), "hash": set_hash, "specs": fs.as_specs(),
                        "source_hash": tset.filters_hash}}
    if classifiers_of(tset.metadata):
        meta["filters"]["filters_hash"] = fs.hash
    manifest = None
    if not opts.dry_run:
        arguments = {"filter": opts.filter, "config": dict(config or {}), "config_from": opts.config_from,
                     "remove": opts.remove,
                     "model": opts.model, "source_filters": tset.filters_hash, "scope": scope.as_dict()}
        manifest = RunManifest.start(run_id, "postprocess", out=tables.url, model=meta["model"],
                                     filters=meta["filters"], arguments=arguments)
        write_manifest(tables.storage, manifest)
    out_images: list[dict] = []
    out_dets: list[dict] = []
    out_occurrences: list[dict] = []
    seen: set[str] = set()
    ticker = Ticker(report, manifest, tables, log, opts.progress_interval)

    def flush() -> None:
        if not out_images:
            return
        keys = [(r["uri"], r["content_id"]) for r in out_images]
        written = extra.flush(tables.storage, part_name(run_id, keys), meta)  # before write_part's commit
        if out_occurrences:  # likewise: committed by the images file of its first detection
            write_file(tables.storage, parquet_bytes(pa.Table.from_pylist(out_occurrences, schema=OCCURRENCES_SCHEMA),
                                                     meta), OCCURRENCES, *partition_parts(name, version),
                       part_name(run_id, keys))
            out_occurrences.clear()
            written.append(OCCURRENCES)
        write_part(tables.storage, name, version, part_name(run_id, keys),
                   pa.Table.from_pylist(out_images, schema=IMAGES_SCHEMA),
                   pa.Table.from_pylist(out_dets, schema=DETECTIONS_SCHEMA), meta)
        report.tables += [t for t in (IMAGES, DETECTIONS, *written) if t not in report.tables]
        out_images.clear()
        out_dets.clear()
        ticker.parts += 1
        if stop_requested(tables.storage, job_id):  # a job asked to stop ends here, after a whole part
            raise RunStoppedError(f"run {run_id} stopped on request (job {job_id}) after {ticker.parts} part(s); "
                                  f"a rerun with --filters-hash {tset.filters_hash} does the rest")

    now = dt.datetime.now(dt.timezone.utc)
    job_id = submission_id()
    try:
        det_parts = set(tables.parts(DETECTIONS, name, version))
        for part in reversed(tables.parts(IMAGES, name, version)):  # newest first: the newest row per uri wins
            images = tables.read(IMAGES, name, version, filter=expr, parts=[part])
            images = images.filter(pa.array([u not in seen for u in images["uri"].to_pylist()], pa.bool_()))
            if not images.num_rows:
                continue
            dets = (tables.read(DETECTIONS, name, version, filter=ds.field("filters_hash") == tset.filters_hash,
                                parts=[part]) if part in det_parts else DETECTIONS_SCHEMA.empty_table())
            groups = _group(dets)
            extra.load_part(part)
            locations = extra.locations_of(images)  # the species ensemble's: where each camera stood
            labels = _labels(tset.labels, dets)
            for row in images.to_pylist():
                if row["uri"] in seen:
                    continue  # an older part's row for a uri handled already (newest wins)
                seen.add(row["uri"])
                ticker.tick()
                if (row["uri"], row["content_id"]) in done:
                    report.skipped += 1
                    continue
                report.images += 1
                new_row = {**row, "filters_hash": set_hash, "run_id": run_id, "processed_at": now}
                src = (row["uri"], row["content_id"], row["run_id"])
                mine = groups.get(src)
                out_occurrences.extend({**occ, "filters_hash": set_hash, "run_id": run_id}
                                       for occ in linked.rows.get(src, ()))
                boxes = None if mine is None else dict(zip(mine["detection_index"].to_pylist(), zip(
                    mine["label"].to_pylist(), mine["score"].to_pylist(), strict=True), strict=True))
                relabelled = extra.carry((row["uri"], row["content_id"], row["run_id"]), set_hash, run_id, boxes,
                                         locations.get(row["uri"]))
                if row["status"] == "failed" or mine is None or mine.num_rows == 0:
                    out_images.append(new_row)
                    continue
                mine = mine.sort_by("detection_index")
                kept, flags = refilter_image(row, mine, fs, labels, table_fired)
                old_kept = np.asarray(mine["kept"].to_pylist(), dtype=bool)
                n_kept = int(kept.sum())
                report.detections_checked += len(kept)
                report.flagged += sum(opts.filter in f for f in flags)
                report.kept_before += int(old_kept.sum())
                report.kept_after += n_kept
                if not np.array_equal(kept, old_kept):
                    report.images_changed += 1
                    report.became_empty += bool(old_kept.any() and not kept.any())
                    report.became_nonempty += bool(kept.any() and not old_kept.any())
                occurrence = [linked.occurrence_of.get((*src, i)) if k else None
                              for i, k in zip(mine["detection_index"].to_pylist(), kept, strict=True)]
                if opts.dry_run and scope.image:
                    report.changes += [preview_change(d, o, k, f, relabelled.get(d["detection_index"], []), oc)
                                       for d, o, k, f, oc in zip(mine.to_pylist(), old_kept, kept, flags, occurrence,
                                                                 strict=True)]
                scores = mine["score"].to_pylist()
                new_row.update(status="ok" if n_kept else "empty", detection_count=n_kept,
                               max_score=max((s for s, k in zip(scores, kept, strict=True) if k), default=None))
                out_images.append(new_row)
                for d, k, f, oc in zip(mine.to_pylist(), kept, flags, occurrence, strict=True):
                    out_dets.append({**d, "kept": bool(k), "flags": f, "filters_hash": set_hash, "run_id": run_id,
                                     "occurrence_id": oc})
                if len(out_images) >= opts.rows_per_file and not opts.dry_run:
                    flush()
        if not opts.dry_run:
            flush()
        if TRACK in fs.names or TRACK in [f.get("name") for f in tset.filter_specs]:
            after = {r["occurrence_id"]: r for rows in linked.rows.values() for r in rows}.values()
            report.determinations_changed = determinations_changed(_occurrences_before(tables, tset), after,
                                                                   seen)
        if classifiers_of(tset.metadata):
            report.relabelled = extra.changed
            report.notes.append(f"{extra.changed} classification(s) changed their label")
    except BaseException as exc:
        if manifest is not None:
            stopped = isinstance(exc, KeyboardInterrupt | RunStoppedError)
            manifest.finish("interrupted" if stopped else "failed", str(exc))
            write_manifest(tables.storage, manifest)
        raise
    report.wall_s = round(time.perf_counter() - t0, 3)
    if manifest is not None:
        manifest.counts = report_counts(report)
        manifest.wall_s = report.wall_s
        manifest.finish("succeeded")
        write_manifest(tables.storage, manifest)
        report.manifest = tables.storage.url("_runs", f"{run_id}.json")
    return report


def occurrence_images(tables: Tables, tset: Any, scope: Scope) -> Scope:
    """The scope with its `--occurrence` ids resolved to their images in the set the run reads (an id the set does not
    hold is an error naming it, never an empty run)."""
    if not scope.occurrences:
        return scope
    rows = tables.read(DETECTIONS, tset.model_name, tset.model_version, ["uri", "occurrence_id"],
                       filter=(ds.field("filters_hash") == tset.filters_hash)
                       & ds.field("occurrence_id").isin(list(scope.occurrences)))
    found = set(rows["occurrence_id"].to_pylist())
    missing = [o for o in scope.occurrences if o not in found]
    if missing:
        raise ScopeError(f"no occurrence {', '.join(missing)} in {tset.model_name}:{tset.model_version} "
                         f"[filters {tset.filters_hash}] (an occurrence id from `trapline occurrences list` of that "
                         "set, or give its --filters-hash)")
    return scope.with_occurrence_uris(rows["uri"].to_pylist())


def _occurrences_before(tables: Tables, tset: Any) -> list[dict[str, Any]]:
    """The source set's occurrences with today's decisions applied (none: the set was never tracked), read through
    the run's opened tables."""
    from batch.postprocessing.occurrences import load  # late: it reads through pandas, only a tracked set needs it

    rows = load(tables, f"{tset.model_name}:{tset.model_version}", tset.filters_hash).rows
    return [] if rows.empty else rows[["occurrence_id", "label", "detections"]].to_dict("records")


def _group(dets: pa.Table) -> dict[tuple[str, str, str], pa.Table]:
    if not dets.num_rows:
        return {}
    df_keys = list(zip(dets["uri"].to_pylist(), dets["content_id"].to_pylist(), dets["run_id"].to_pylist(),
                       strict=True))
    index: dict[tuple[str, str, str], list[int]] = {}
    for i, k in enumerate(df_keys):
        index.setdefault(k, []).append(i)
    return {k: dets.take(pa.array(v)) for k, v in index.items()}
