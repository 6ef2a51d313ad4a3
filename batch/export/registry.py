"""The export formats, one registry: `trapline export --format NAME` (and a job's `format`) accepts exactly the
names here. A new format is a class deriving from `Exporter` (batch/export/base.py) and one line below."""

from __future__ import annotations

import re
from typing import Any

from batch.export.base import Exporter, ExportJob, ExportReport, export_slices, subset_filter
from batch.export.camtrap import CamtrapDPExporter
from batch.export.formats import CocoExporter, MegaDetectorExporter
from batch.refilter.events import DEFAULT_GAP_S, set_occurrences
from model_store.tables.identities import individual_ids
from model_store.tables.reader import Tables, resolve_table_set
from model_store.tables.slices import DEFAULT_SLICE_IMAGES
from trapline.errors import BatchError

EXPORTERS: dict[str, Exporter] = {e.name: e for e in (MegaDetectorExporter(), CocoExporter(), CamtrapDPExporter())}
FORMATS = tuple(EXPORTERS)


def run_export(tables_url: str, fmt: str, out: str, model: str | None = None, filters_hash: str | None = None,
               cameras: list[str] | None = None, since: Any = None, until: Any = None, timezone: str = "Z",
               store: str | None = None, observation_level: str = "media", gap_s: float = DEFAULT_GAP_S,
               deployments: str | None = None, allow_missing_deployments: bool = False,
               package_meta: str | None = None, slice_images: int = DEFAULT_SLICE_IMAGES) -> ExportReport:
    """Export one model version and filter set; `out` is a file (megadetector, coco) or a directory (camtrap-dp:
    a Camtrap DP package, with `deployments` and `package_meta` files; see batch/export/camtrap_package.py).

    The rows are read a slice of whole cameras at a time, of at most `slice_images` image rows
    (model_store/tables/slices.py): a Camtrap DP package is written as they come; the JSON formats gather them."""
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise BatchError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not re.fullmatch(r"Z|[+-]\d{2}:\d{2}", timezone):
        raise BatchError(f"--timezone must be Z or +HH:MM / -HH:MM, got {timezone!r}")
    options = {"store": store, "timezone": timezone, "observation_level": observation_level, "gap_s": gap_s,
               "deployments": deployments, "allow_missing_deployments": allow_missing_deployments,
               "package_meta": package_meta, "tables_url": tables_url}
    inputs = exporter.check(options)  # the user's own files, before any table is read
    tables = Tables(tables_url)
    tset = resolve_table_set(tables, model, filters_hash, store)
    occurrences = set_occurrences(tables_url, tset, store)
    subset = subset_filter(cameras, since, until)
    job = ExportJob(tset, out, options, lambda: export_slices(tables, tset, subset, occurrences, slice_images), inputs,
                    individual_ids(tables_url, tset.model_name, tset.model_version, tset.filters_hash))
    written, notes = exporter.write(job)
    return ExportReport(fmt, f"{tset.model_name}:{tset.model_version}", tset.filters_hash, job.images, job.failed,
                        job.detections, written, notes)
