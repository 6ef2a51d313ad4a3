"""What every exporter shares: the rows it exports (the current row of each image of one model version and
result set, its kept detections, their classifications), the atomic file write, and the `Exporter` a format
implements. Formats register in batch/export/registry.py (docs/extending.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
import pyarrow.dataset as ds

from model_store.tables.archive import open_location
from model_store.tables.reader import Tables, TableSet
from model_store.tables.schema import CLASSIFICATIONS
from model_store.tables.scope import Scope


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
class ExportJob:
    """One export: its rows, where it goes, and the options that shape it (the `ExportOptions` fields)."""

    images: pd.DataFrame
    dets: pd.DataFrame
    tset: TableSet
    out: str
    options: dict[str, Any]
    inputs: Any = None  # what the exporter's `check` read before the tables (e.g. the user's deployments file)
    occurrences: pd.DataFrame | None = None  # a tracked set's occurrences, determined now (None: not tracked)
    # (uri, content_id, detection_index) -> individual id, people's decisions applied (empty: none identified)
    individuals: dict[tuple[str, str, int], str] = field(default_factory=dict)


class Exporter:
    """One export format. `check` runs before any table is read (the user's own files, the options this format
    needs: refuse early, with one line); `write` writes the files and returns (written URLs, notes for the
    user)."""

    name: ClassVar[str]
    description: ClassVar[str]

    def check(self, options: dict[str, Any]) -> Any:
        return None

    def write(self, job: ExportJob) -> tuple[list[str], list[str]]:  # pragma: no cover - interface
        raise NotImplementedError


def subset_filter(cameras: list[str] | None = None, since: Any = None, until: Any = None) -> ds.Expression | None:
    """An expression on the images table for --camera / --since / --until (they intersect: tables/scope.py)."""
    return Scope.of(cameras, since, until).expression()


def load(tables: Tables, tset: TableSet, expr: ds.Expression | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(current image rows, their kept detections) for one table set; with classifiers, each detection row
    has `classifications`: its classifications table rows (a list of dicts, pipeline order)."""
    images = tables.current_images(tset.model_name, tset.model_version, tset.filters_hash, expr)
    dets = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                       kept_only=True)
    if tset.classifiers and not dets.empty:
        cls = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                          table=CLASSIFICATIONS)
        by_det: dict[tuple[str, int], list[dict]] = {}
        for row in cls.to_dict("records"):
            by_det.setdefault((row["uri"], int(row["detection_index"])), []).append(row)
        dets = dets.assign(classifications=[by_det.get((u, int(i)), []) for u, i in
                                            zip(dets["uri"], dets["detection_index"], strict=True)])
    return images, dets


def write_file(url: str, data: bytes) -> str:
    """Write one output file atomically (local or s3://)."""
    if "://" in url:
        parent, _, name = url.rstrip("/").rpartition("/")
    else:
        url = os.path.abspath(url)
        parent, name = os.path.dirname(url), os.path.basename(url)
    storage = open_location(parent)
    storage.makedirs()
    storage.write_atomic(data, name)
    return storage.url(name)
