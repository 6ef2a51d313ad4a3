"""`trapline export` (and a job of kind export): one model version and filter set written in a registered format."""

from __future__ import annotations

from batch.export.base import ExportJob, ExportReport, export_slices
from batch.export.common_options import FormatOptions
from batch.export.options import ExportOptions
from batch.export.registry import EXPORTERS
from batch.option_variants import unwrap
from batch.postprocessing.events import set_occurrences
from model_store.tables.identities import individual_ids
from model_store.tables.reader import Tables, resolve_table_set
from model_store.tables.slices import DEFAULT_SLICE_IMAGES


def run_export(options: ExportOptions | FormatOptions, slice_images: int = DEFAULT_SLICE_IMAGES) -> ExportReport:
    """Export `options.tables` as `options.format`; `options.out` is a file (megadetector, coco) or a directory
    (camtrap-dp: a Camtrap DP package, with the `deployments` and `package_meta` files; see
    batch/export/camtrap_package.py). The options were validated where they entered (format, timezone, ...).

    The rows are read a slice of whole cameras at a time, of at most `slice_images` image rows
    (model_store/tables/slices.py): a Camtrap DP package is written as they come; the JSON formats gather them."""
    options = unwrap(options)  # the chosen format's own options
    exporter = EXPORTERS[options.format].exporter()
    inputs = exporter.check(options)  # the user's own files, before any table is read
    tables = Tables(options.tables)
    tset = resolve_table_set(tables, options.model, options.filters_hash, options.store)
    occurrences = set_occurrences(options.tables, tset, options.store)
    subset = options.scope().expression()
    job = ExportJob(tset, options.out, options,
                    lambda: export_slices(tables, tset, subset, occurrences, slice_images), inputs,
                    individual_ids(options.tables, tset.model_name, tset.model_version, tset.filters_hash))
    written, notes = exporter.write(job)
    return ExportReport(options.format, f"{tset.model_name}:{tset.model_version}", tset.filters_hash, job.images,
                        job.failed, job.detections, written, notes)
