"""`trapline tables compact | check`: upkeep of the tables that runs and the online recorder write.

Online recording commits a part per flush: many small files. `compact` merges the committed parts of each
model version, per result set and part metadata, into parts of up to `target_rows` images, under that
version's run lease (no reprocess of it runs meanwhile; the online recorders write parts of their own and
are not blocked). A merged part is written whole (its extra files first, its images file last, which
commits it), then the parts it merged are removed, images file first. Between the two, a row is in two
files: trapline's readers read it once (`Tables.read` drops a repeated row key), so they see the same rows
before, during and after; a compaction interrupted there leaves exact copies that the next `compact` merges
away. Running it again when nothing is small does nothing.

`check` reads every partition with that de-duplication off and reports what should not be there: rows
stored twice (exact copies, or one image processed twice in one result set by two runs), rows whose part
never committed (files without their images file), and uploads the online door answered whose recorder died
before committing them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from ground.errors import LeaseHeldError
from model_store.tables import journal
from model_store.tables.archive import open_location
from model_store.tables.clock_check import ClockFinding, check_clock
from model_store.tables.lease import RunLease
from model_store.tables.manifest import RunManifest, new_run_id, write_manifest
from model_store.tables.reader import PART_TABLES, Tables
from model_store.tables.schema import IMAGES
from model_store.tables.writer import parquet_bytes, part_name, partition_parts, read_metadata, write_file

TARGET_ROWS = 100_000  # images rows per merged part (its detections are ~1-10x that)


@dataclass
class CompactReport:
    tables: str
    partitions: int = 0
    parts_before: int = 0
    parts_after: int = 0
    images_rows: int = 0
    busy: list[str] = field(default_factory=list)  # versions a running reprocess held: left alone

    def line(self) -> str:
        busy = f"; left alone while a run holds them: {', '.join(self.busy)}" if self.busy else ""
        return (f"compacted {self.tables}: {self.parts_before} -> {self.parts_after} parts in {self.partitions} "
                f"model version(s), {self.images_rows} image rows, the same rows as before{busy}")


def compact(url: str, *, target_rows: int = TARGET_ROWS, wait_s: float = 0.0,
            log: Callable[[str], None] = lambda _: None) -> CompactReport:
    """Merge each model version's committed parts into parts of up to `target_rows` images (see the module
    docstring). Idempotent; a version whose lease a run holds is skipped (or waited for up to `wait_s`)."""
    storage = open_location(url)
    tables = Tables(storage)
    run_id = new_run_id()
    report = CompactReport(tables.url)
    manifest = RunManifest.start(run_id, "compact", out=tables.url)
    write_manifest(storage, manifest)  # live while it writes: a concurrent clean-up leaves its files alone
    try:
        for name, version in tables.partitions(IMAGES):
            try:
                lease = RunLease(storage, name, version, run_id).acquire(wait_s)
            except LeaseHeldError:
                report.busy.append(f"{name}:{version}")
                continue
            try:
                before, after, rows = _compact_version(tables, name, version, run_id, target_rows)
            finally:
                lease.release()
            report.partitions += 1
            report.parts_before += before
            report.parts_after += after
            report.images_rows += rows
            log(f"{name}:{version}: {before} -> {after} parts ({rows} image rows)")
        manifest.counts = {"parts_before": report.parts_before, "parts_after": report.parts_after}
        manifest.finish("succeeded")
    except BaseException as exc:
        manifest.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        write_manifest(storage, manifest)
    return report


def _compact_version(tables: Tables, name: str, version: str, run_id: str, target_rows: int
                     ) -> tuple[int, int, int]:
    storage, where = tables.storage, partition_parts(name, version)
    parts = tables.parts(IMAGES, name, version)
    groups: dict[str, list[tuple[str, int]]] = {}  # part metadata (the result set) -> [(part, rows)]
    total = 0
    for part in parts:
        meta = read_metadata(storage, IMAGES, *where, part)
        rows = tables.read(IMAGES, name, version, columns=["uri"], parts=[part], dedupe=False).num_rows
        groups.setdefault(json.dumps(meta, sort_keys=True), []).append((part, rows))
        total += rows
    after = 0
    for meta_json, members in groups.items():
        batches, batch, size = [], [], 0
        for part, rows in members:
            if batch and size + rows > target_rows:
                batches.append(batch)
                batch, size = [], 0
            batch.append(part)
            size += rows
        batches.append(batch)
        for batch in batches:
            after += 1
            if len(batch) > 1:
                _merge(tables, name, version, batch, run_id, json.loads(meta_json))
    return len(parts), after, total


def _merge(tables: Tables, name: str, version: str, batch: list[str], run_id: str, metadata: dict) -> None:
    storage, where = tables.storage, partition_parts(name, version)
    # in uri order, so each row group's statistics span a few cameras and filtered reads skip the rest
    images = tables.read(IMAGES, name, version, parts=batch).sort_by([("uri", "ascending")])
    keys = list(zip(images["uri"].to_pylist(), images["content_id"].to_pylist(), strict=True))
    merged = part_name(run_id, keys)
    present = {table: [p for p in batch if storage.exists(table, *where, p)] for table in PART_TABLES}
    for table, found in present.items():
        if found:
            rows = tables.read(table, name, version, parts=found)
            rows = rows.sort_by([(c, "ascending") for c in ("uri", "detection_index") if c in rows.column_names])
            write_file(storage, parquet_bytes(rows, metadata), table, *where, merged)
    write_file(storage, parquet_bytes(images, metadata), IMAGES, *where, merged)  # commits the merged part
    for part in batch:  # the images file first: a part is uncommitted before any of its rows go
        if part != merged:
            storage.delete(IMAGES, *where, part)
            for table, found in present.items():
                if part in found:
                    storage.delete(table, *where, part)


@dataclass
class CheckReport:
    tables: str
    exact_copies: int = 0  # rows stored twice (same row key): an interrupted compact
    processed_twice: int = 0  # images with rows from two runs in one result set of one version
    uncommitted_files: list[str] = field(default_factory=list)  # part files whose images file never came
    orphan_rows: int = 0  # committed detections/classifications/snips rows without their image row
    unsettled_uploads: int = 0  # answered uploads whose recorder is gone and that are not committed yet
    examples: list[str] = field(default_factory=list)
    clock: list[ClockFinding] = field(default_factory=list)  # model_store/tables/clock_check.py

    @property
    def clean(self) -> bool:
        return not (self.exact_copies or self.processed_twice or self.uncommitted_files or self.orphan_rows
                    or self.unsettled_uploads or any(not f.hint for f in self.clock))

    def lines(self) -> list[str]:
        out = [f"checked {self.tables}: " + ("no duplicate or orphaned rows" if self.clean else "problems found")]
        for label, value, fix in (
            ("rows stored twice", self.exact_copies, "`trapline tables compact` merges them away"),
            ("images processed twice in one result set", self.processed_twice,
             "readers keep the newest; `trapline tables compact` keeps both rows"),
            ("uncommitted part files", len(self.uncommitted_files), "the next reprocess removes them"),
            ("rows without their image row", self.orphan_rows, "ignored by readers"),
            ("answered uploads not yet committed (their recorder is gone)", self.unsettled_uploads,
             "the next reprocess or service start commits them"),
        ):
            if value:
                out.append(f"  {label}: {value} ({fix})")
        out += [f"  e.g. {e}" for e in self.examples[:10]]
        problems, hints = [f for f in self.clock if not f.hint], [f for f in self.clock if f.hint]
        if problems:
            out.append(f"  clock problems: {len(problems)} (`trapline deployments correct-clock` fixes a clock; "
                       "`trapline deployments import` records where and when each camera stood)")
            out += [f"    {f.line()}" for f in problems]
        if hints:
            out.append(f"  clock hints: {len(hints)} (a first or last picture minutes from the deployment's start or "
                       "end: the clock's offset, if it is a setup or pickup picture)")
            out += [f"    {f.line()}" for f in hints]
        return out


ROW_KEY = ["uri", "content_id", "filters_hash", "run_id"]  # an image's row and the rows that hang off it
# An image's result: its key without the run. A clip redone for other settings (images.clip_settings) is a new
# result, not the same one twice.
RESULT_KEY = ["uri", "content_id", "filters_hash", "clip_settings"]


def _key_hashes(batch: pa.RecordBatch, columns: list[str]) -> np.ndarray:
    """A 64-bit hash of each row's `columns`: 8 bytes a row where the strings take ~100 (a 64-bit collision in a
    million rows has odds of about 1 in 30 million, and could only hide one duplicate or one orphan)."""
    return pd.util.hash_pandas_object(batch.select(columns).to_pandas(), index=False).to_numpy()


def check(url: str) -> CheckReport:
    """Report duplicate and orphaned rows (see the module docstring); reads only, a record batch at a time, holding
    16 bytes per image row (its keys' hashes) rather than the keys."""
    storage = open_location(url)
    tables = Tables(storage)
    report = CheckReport(tables.url)
    for name, version in tables.partitions(IMAGES):
        rows, images = [], []  # each image row's key hash, and that of its key without the run
        for batch in tables.stream(IMAGES, name, version, [*ROW_KEY, "clip_settings"]):
            rows.append(_key_hashes(batch, ROW_KEY))
            images.append(_key_hashes(batch, RESULT_KEY))
        row_hashes = np.concatenate(rows) if rows else np.empty(0, np.uint64)
        image_hashes = np.concatenate(images) if images else np.empty(0, np.uint64)
        del rows, images
        unique_rows, first = np.unique(row_hashes, return_index=True)
        report.exact_copies += len(row_hashes) - len(unique_rows)
        runs_of = np.unique(image_hashes[first], return_counts=True)  # distinct runs per (uri, content, filters)
        twice = runs_of[0][runs_of[1] > 1]
        report.processed_twice += len(twice)
        if len(twice):
            report.examples += [f"{name}:{version} {u} processed by several runs"
                                for u in _uris_of(tables, name, version, twice[:3])]
        del row_hashes, image_hashes, first, runs_of
        committed = set(tables.parts(IMAGES, name, version))
        for table in PART_TABLES:
            files = tables.parts(table, name, version)
            report.uncommitted_files += [f"{table}/{name}:{version}/{p}" for p in files if p not in committed]
            for batch in tables.stream(table, name, version, ROW_KEY, parts=[p for p in files if p in committed]):
                report.orphan_rows += int((~np.isin(_key_hashes(batch, ROW_KEY), unique_rows)).sum())
    for writer in journal.writers(storage):
        found = journal.markers(storage, writer)
        if found and not RunLease(storage, *journal.lease_key(writer), "check").holder_alive():
            report.unsettled_uploads += len(found)
    report.clock = check_clock(tables)
    return report


def _uris_of(tables: Tables, name: str, version: str, image_hashes: np.ndarray) -> list[str]:
    """The uris of the images whose RESULT_KEY hashes are given: a second pass, for the examples only."""
    found: dict[int, str] = {}
    for batch in tables.stream(IMAGES, name, version, RESULT_KEY):
        hashes = _key_hashes(batch, RESULT_KEY)
        hit = np.isin(hashes, image_hashes)
        for h, u in zip(hashes[hit].tolist(), batch["uri"].filter(pa.array(hit)).to_pylist(), strict=True):
            found.setdefault(h, u)
        if len(found) == len(image_hashes):
            break
    return sorted(found.values())
