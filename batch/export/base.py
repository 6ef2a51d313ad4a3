"""What every exporter shares: the rows it exports (the current row of each image of one model version and
result set, its kept detections, their classifications), the atomic file write, and the `Exporter` a format
implements. Formats register in batch/export/registry.py (docs/extending.md)."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pandas as pd
import pyarrow.dataset as ds

from batch.export.common_options import FormatOptions
from model_store.tables.archive import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import CLASSIFICATIONS
from model_store.tables.scope import Scope
from model_store.tables.slices import DEFAULT_SLICE_IMAGES, iter_camera_slices, uri_span
from model_store.tables.table_set import TableSet


@dataclass
class ExportReport:
    format: str
    model: str
    filters_hash: str
    images: int
    failed: int
    detections: int
    written: list[str]
    notes: list[str] = field(default_factory=list)  # what the user should know about the output (camtrap-dp)


@dataclass
class ExportRows:
    """Rows to export: the current row of each image, their kept detections (with `classifications` where the set
    has classifiers) and, for a tracked set, the occurrences of those images' cameras, determined now."""

    images: pd.DataFrame
    dets: pd.DataFrame
    occurrences: pd.DataFrame | None = None


# A format's options model: `FormatOptions`, or the format's own deriving from it (batch/export/camtrap_options.py)
Opts = TypeVar("Opts", bound=FormatOptions)


@dataclass
class ExportJob(Generic[Opts]):
    """One export: where it goes, the options that shape it (the chosen format's options model), and its rows,
    read a slice of whole cameras at a time (`rows()`: a million images never in memory at once; every format
    writes them as they come, a JSON document too). The job counts what it read."""

    tables: Tables  # opened at the door (batch/export/run.py), read through by every part of the export
    tset: TableSet
    out: str
    options: Opts  # validated by the format's own model (batch/export/options.py): no option of another format
    slices: Callable[[], Iterator[ExportRows]]
    inputs: Any = None  # what the exporter's `check` read before the tables (e.g. the user's deployments file)
    # (uri, content_id, detection_index) -> individual id, people's decisions applied (empty: none identified)
    individuals: dict[tuple[str, str, int], str] = field(default_factory=dict)
    images: int = 0  # counted as the rows are read
    failed: int = 0
    detections: int = 0

    def rows(self) -> Iterator[ExportRows]:
        for part in self.slices():
            self.images += len(part.images)
            self.failed += int((part.images["status"] == "failed").sum()) if not part.images.empty else 0
            self.detections += len(part.dets)
            yield part


class Exporter(Generic[Opts]):
    """One export format, registered with its name, description and options model in batch/export/registry.py
    (`Exporter[ItsOptions]` types `job.options`). `check` runs before any table is read (the user's own files, the
    options this format needs: refuse early, with one line); `write` writes the files and returns (written URLs,
    notes for the user)."""

    def check(self, options: Opts) -> Any:
        """`options`: the format's validated options; what it returns is the job's `inputs`."""
        return None

    def write(self, job: ExportJob[Opts]) -> tuple[list[str], list[str]]:  # pragma: no cover - interface
        raise NotImplementedError


def subset_filter(cameras: list[str] | None = None, since: Any = None, until: Any = None) -> ds.Expression | None:
    """An expression on the images table for --camera / --since / --until (they intersect: tables/scope.py)."""
    return Scope.of(cameras, since, until).expression()


def load(tables: Tables, tset: TableSet, expr: ds.Expression | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(current image rows, their kept detections) for one table set; with classifiers, each detection row
    has `classifications`: its classifications table rows (a list of dicts, pipeline order)."""
    images = tables.current_images(tset.model_name, tset.model_version, tset.filters_hash, expr)
    span = uri_span(images)  # the detections of these images' cameras: other row groups skipped by statistics
    dets = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                       kept_only=True, filter=span)
    if tset.classifiers and not dets.empty:
        cls = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                          table=CLASSIFICATIONS, filter=span)
        by_det: dict[tuple[str, int], list[dict]] = {}
        for row in cls.to_dict("records"):
            by_det.setdefault((row["uri"], int(row["detection_index"])), []).append(row)
        dets = dets.assign(classifications=[by_det.get((u, int(i)), []) for u, i in
                                            zip(dets["uri"], dets["detection_index"], strict=True)])
    return images, dets


def export_slices(tables: Tables, tset: TableSet, subset: ds.Expression | None,
                  occurrences: pd.DataFrame | None = None, max_images: int = DEFAULT_SLICE_IMAGES
                  ) -> Iterator[ExportRows]:
    """The set's rows a slice of whole cameras at a time (model_store/tables/slices.py), each with its cameras'
    occurrences."""
    for part in iter_camera_slices(tables, tset.model_name, tset.model_version, tset.filters_hash, subset,
                                   max_images):
        images, dets = load(tables, tset, part.expression(subset))
        mine = None if occurrences is None else occurrences[part.holds(occurrences["camera_id"])]
        yield ExportRows(images, dets, mine)


def _split(url: str) -> tuple[str, str]:
    """(the directory, the file name) of an output file's URL (local paths made absolute)."""
    if "://" in url:
        parent, _, name = url.rstrip("/").rpartition("/")
        return parent, name
    url = os.path.abspath(url)
    return os.path.dirname(url), os.path.basename(url)


def write_file(url: str, data: bytes) -> str:
    """Write one output file atomically (local or s3://)."""
    parent, name = _split(url)
    storage = open_location(parent)
    storage.makedirs()
    storage.write_atomic(data, name)
    return storage.url(name)


@contextlib.contextmanager
def open_output(url: str) -> Iterator[tuple[io.TextIOWrapper, str]]:
    """(a text file, its URL) to write one large output file into a piece at a time (local or s3://); it is put in
    place whole when the block ends, and not at all if the block raises (ground/storage.py's `open_atomic`)."""
    parent, name = _split(url)
    storage = open_location(parent)
    made = storage.is_local and not os.path.isdir(parent)
    storage.makedirs()
    try:
        with storage.open_atomic(name) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            try:
                yield text, storage.url(name)
            finally:
                text.detach()  # flushed into the file, which the storage closes (or discards) itself
    except BaseException:
        if made:  # a refused export leaves no empty directory behind either
            with contextlib.suppress(OSError):
                os.rmdir(parent)
        raise
