"""`trapline export` (and a job of kind export): one model version and filter set written in a registered format."""

from __future__ import annotations

from batch.export.base import ExportJob, ExportReport, export_slices
from batch.export.common_options import FormatOptions
from batch.export.options import ExportOptions
from batch.export.registry import EXPORTERS
from batch.option_variants import unwrap
from batch.postprocessing.events import set_occurrences
from model_store.tables.identities import individual_ids
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.table_set import resolve_table_set
from model_store.tables.writer import ROW_GROUP_ROWS

# Image rows per slice of an export: as many as a part's row group, a fifth of the other table tools' 50,000. Every
# format writes its rows as they come, so its peak is one slice's rows and what it writes of them: with slices of
# 50,000 the peak at 100,000 images was ~2x the peak at 10,000, that archive held in one slice; with 10,000 both
# hold one slice's worth (BENCHMARKS.md, "Exports in flat memory").
EXPORT_SLICE_IMAGES = ROW_GROUP_ROWS


def run_export(options: ExportOptions | FormatOptions, slice_images: int = EXPORT_SLICE_IMAGES) -> ExportReport:
    """Export `options.tables` as `options.format`; `options.out` is a file (megadetector, coco) or a directory
    (camtrap-dp: a Camtrap DP package, with the `deployments` and `package_meta` files; see
    batch/export/camtrap_package.py). The options were validated where they entered (format, timezone, ...).

    The rows are read a slice of whole cameras at a time, of at most `slice_images` image rows
    (model_store/tables/slices.py), and every format writes them as they come."""
    options = unwrap(options)  # the chosen format's own options
    exporter = EXPORTERS[options.format].exporter()
    inputs = exporter.check(options)  # the user's own files, before any table is read
    tables = Tables(open_location(options.tables))
    tset = resolve_table_set(tables, options.model, options.filters_hash, options.store)
    occurrences = set_occurrences(tables, tset, options.store)  # the tables opened above, not again
    subset = options.scope().expression()
    job = ExportJob(tables, tset, options.out, options,
                    lambda: export_slices(tables, tset, subset, occurrences, slice_images), inputs,
                    individual_ids(tables.storage, tset.model_name, tset.model_version, tset.filters_hash))
    written, notes = exporter.write(job)
    return ExportReport(options.format, f"{tset.model_name}:{tset.model_version}", tset.filters_hash, job.images,
                        job.failed, job.detections, written, notes)
