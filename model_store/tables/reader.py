"""Read the `images` and `detections` tables back: skip-sets, committed views, clean-up of crashed runs.

Readers here always pass the partition keys as strings (pyarrow and DuckDB would otherwise read
a version "1" as an integer) and treat the images table as the source of truth: a detection
counts only if its image row (same uri, content_id, filters_hash, run_id) exists.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ground.storage import Storage
from model_store.tables.cameras import fill_camera_ids
from model_store.tables.clock import TimeBook, apply_clock
from model_store.tables.done import CLIP_DONE_COLUMNS, DONE_COLUMNS, DoneUnder, counts_as_done, done_under
from model_store.tables.locations import opened
from model_store.tables.manifest import RunManifest, is_live, read_manifests
from model_store.tables.schema import (
    CLASSIFICATIONS,
    CLASSIFICATIONS_SCHEMA,
    DETECTIONS,
    DETECTIONS_SCHEMA,
    IMAGES,
    IMAGES_SCHEMA,
    OCCURRENCES,
    OCCURRENCES_SCHEMA,
    PARTITION_KEYS,
    PARTITION_SCHEMA,
    SNIPS,
    SNIPS_SCHEMA,
    TIME_SOURCES,
)
from model_store.tables.set_records import hidden_sets
from model_store.tables.writer import partition_parts, read_metadata

PART_RE = re.compile(r"^part-(?P<run_id>\d{8}T\d{6}Z-[0-9a-f]{6})-(?P<digest>[0-9a-f]+)\.parquet$")
TMP_MAX_AGE_S = 3600
# Asked for as a column, the path of the part file each row was read from (pyarrow's dataset field): a part's files
# in every table share one name, so a page of image rows names the few parts its detections are in.
PART_COLUMN = "__filename"
SCHEMAS = {IMAGES: IMAGES_SCHEMA, DETECTIONS: DETECTIONS_SCHEMA, CLASSIFICATIONS: CLASSIFICATIONS_SCHEMA,
           SNIPS: SNIPS_SCHEMA, OCCURRENCES: OCCURRENCES_SCHEMA}
# Written before a part's images file, which commits them.
PART_TABLES = (DETECTIONS, CLASSIFICATIONS, SNIPS, OCCURRENCES)
# What identifies a row (within a model version): the image, its result set, the run that wrote it, and the entry.
ROW_KEYS = {IMAGES: ("uri", "content_id", "filters_hash", "run_id"),
            DETECTIONS: ("uri", "content_id", "filters_hash", "run_id", "detection_index"),
            CLASSIFICATIONS: ("uri", "content_id", "filters_hash", "run_id", "detection_index", "classifier_name"),
            SNIPS: ("uri", "content_id", "filters_hash", "run_id", "detection_index"),
            OCCURRENCES: ("uri", "content_id", "filters_hash", "run_id", "occurrence_id")}


class Tables:
    """The tables under one destination `DST` (a directory or s3://bucket/prefix).

    Lifecycle: cheap to construct (no I/O); every method reads the destination afresh, so it
    sees parts that a running job committed a moment ago.
    """

    def __init__(self, storage: Storage) -> None:
        """The one constructor: the location the door opened (`open_location(url)`), used as it is."""
        self.storage = opened(storage, "Tables")
        self.url = self.storage.url()

    # -- layout --------------------------------------------------------------------------
    def partitions(self, table: str = IMAGES, empty: bool = False) -> list[tuple[str, str]]:
        """(model_name, model_version) pairs that have part files in `table`: a partition directory left empty (by a
        purge of an older trapline, which kept them) is none, unless `empty` (the clean-up of a crashed run's temp
        files)."""
        out = []
        for name_dir in self.storage.listdir(table):
            if not name_dir.startswith("model_name="):
                continue
            for version_dir in self.storage.listdir(table, name_dir):
                if version_dir.startswith("model_version="):
                    key = (name_dir.split("=", 1)[1], version_dir.split("=", 1)[1])
                    if empty or self.parts(table, *key):
                        out.append(key)
        return sorted(out)

    def versions(self) -> list[tuple[str, str]]:
        """The model versions the tables hold for readers: those with committed image rows in a result set no record
        hides (model_store/tables/set_records.py). A version whose every set is retired, purged or a redo not yet
        whole is left out, so that a command with no --model, the console's pickers and the job forms take the one
        version left. Only a version with hidden sets has its `filters_hash` column counted (row-group statistics
        skip most of it)."""
        out = []
        for name, version in self.partitions(IMAGES):
            hidden = hidden_sets(self.storage, name, version)
            if not hidden or self._visible_rows(name, version, ~ds.field("filters_hash").isin(sorted(hidden))):
                out.append((name, version))
        return out

    def _visible_rows(self, name: str, version: str, visible: ds.Expression) -> int:
        try:
            return self._dataset(IMAGES, name, version).count_rows(filter=visible)
        except FileNotFoundError:  # purged meanwhile
            return 0

    def parts(self, table: str, model_name: str, model_version: str) -> list[str]:
        """Committed-looking part file names in one partition (hidden temp files excluded)."""
        names = self.storage.listdir(table, *partition_parts(model_name, model_version))
        return sorted(n for n in names if n.endswith(".parquet") and not n.startswith((".", "_")))

    def metadata(self, model_name: str, model_version: str) -> dict:
        """The trapline metadata (labels, filters, model) of the newest images part of a partition."""
        parts = self.parts(IMAGES, model_name, model_version)
        if not parts:
            return {}
        return read_metadata(self.storage, IMAGES, *partition_parts(model_name, model_version), parts[-1])

    def filter_set_metadata(self, model_name: str, model_version: str, filters_hash: str) -> dict:
        """Metadata (labels, filter specs) of the newest images part written with `filters_hash`."""
        prefix = partition_parts(model_name, model_version)
        for name in reversed(self.parts(IMAGES, model_name, model_version)):
            meta = read_metadata(self.storage, IMAGES, *prefix, name)
            if meta.get("filters", {}).get("hash") == filters_hash:
                return meta
        return {}

    # -- reading -------------------------------------------------------------------------
    def read(self, table: str, model_name: str | None = None, model_version: str | None = None,
             columns: list[str] | None = None, filter: ds.Expression | None = None,
             parts: Iterable[str] | None = None, dedupe: bool = True) -> pa.Table:
        """Rows of `table` (optionally one partition or some of its parts) as Arrow, partition keys included.
        Seven parameters: the one read every table goes through, each a narrowing pyarrow applies (no command's
        options reach this far down).

        `dedupe`: a row stored twice (the same row key in two files: a `trapline tables compact` between
        writing its merged part and removing the parts it merged, or one interrupted there) is read once,
        whenever the columns read include the row key. `trapline tables check` reads with dedupe off."""
        out = self._read(table, model_name, model_version, columns, filter, parts)
        return unique_rows(out, ROW_KEYS[table]) if dedupe else out

    def _read(self, table: str, model_name: str | None, model_version: str | None, columns: list[str] | None,
              filter: ds.Expression | None, parts: Iterable[str] | None) -> pa.Table:
        schema = SCHEMAS[table]
        if model_name is not None and model_version is not None:
            try:
                dataset = self._dataset(table, model_name, model_version, parts)
            except FileNotFoundError:
                return _empty(schema, columns)
            wanted = columns or schema.names
            file_cols = [c for c in wanted if c in schema.names or c == PART_COLUMN]
            out = dataset.to_table(columns=file_cols, filter=filter)
            n = out.num_rows
            if "model_name" in wanted:
                out = out.append_column("model_name", pa.array([model_name] * n, pa.string()))
            if "model_version" in wanted:
                out = out.append_column("model_version", pa.array([model_version] * n, pa.string()))
            return out.select(wanted)
        dataset = self.dataset(table)
        if dataset is None:
            return _empty(pa.schema(list(schema) + list(PARTITION_SCHEMA)), columns)
        if model_name is not None:
            name_filter = ds.field("model_name") == model_name
            filter = name_filter if filter is None else filter & name_filter
        return dataset.to_table(columns=columns, filter=filter)

    def _dataset(self, table: str, model_name: str, model_version: str, parts: Iterable[str] | None = None
                 ) -> ds.Dataset:
        """One partition of `table` (or some of its parts) as a dataset; FileNotFoundError when it has none."""
        base = self.storage.path(table, *partition_parts(model_name, model_version))
        paths = [f"{base}/{p}" for p in parts] if parts is not None else base
        return ds.dataset(paths, filesystem=self.storage.fs, format="parquet", schema=SCHEMAS[table])

    def dataset(self, table: str) -> ds.Dataset | None:
        """Every partition of `table` as one dataset, the partition keys as string columns; None without files."""
        try:
            return ds.dataset(self.storage.path(table), filesystem=self.storage.fs, format="parquet",
                              schema=pa.schema(list(SCHEMAS[table]) + list(PARTITION_SCHEMA)),
                              partitioning=ds.partitioning(PARTITION_SCHEMA, flavor="hive"))
        except FileNotFoundError:
            return None

    def done_table(self, model_name: str, model_version: str, filters_hash: str,
                   retry_failed: bool = False) -> pa.Table:
        """(uri, content_id) of images already processed by this model version with these filters, as a table:
        only the partition's key and status columns are read.

        Failed rows count as done (the file would fail again) except read errors, which are
        usually transient (a network blip) and are retried; `retry_failed` retries all failures.
        """
        t = self.read(IMAGES, model_name, model_version, ["uri", "content_id", "status", "error_reason"],
                      filter=ds.field("filters_hash") == filters_hash, dedupe=False)  # a join needs no dedupe
        return t.filter(counts_as_done(t, retry_failed)).select(["uri", "content_id"]) if t.num_rows else \
            t.select(["uri", "content_id"])

    def stream_images(self, model_name: str, model_version: str, columns: list[str], filter: ds.Expression
                      ) -> Iterator[pa.RecordBatch]:
        """One partition's image rows, `columns` only, a non-empty record batch at a time (nothing if it has none)."""
        return self.stream(IMAGES, model_name, model_version, columns, filter)

    def stream(self, table: str, model_name: str, model_version: str, columns: list[str],
               filter: ds.Expression | None = None, parts: Iterable[str] | None = None) -> Iterator[pa.RecordBatch]:
        """One partition's rows of `table` (or of some of its parts), `columns` only, a non-empty record batch at a
        time, rows stored twice included: one file and two batches in flight, where the default readahead
        (4 files, 16 batches) held ~200 MB more."""
        parts = None if parts is None else list(parts)
        if parts is not None and not parts:
            return
        try:
            dataset = self._dataset(table, model_name, model_version, parts)
        except FileNotFoundError:
            return
        for batch in dataset.to_batches(columns=columns, filter=filter, batch_readahead=2, fragment_readahead=1):
            if batch.num_rows:
                yield batch

    def done_under(self, model_name: str, model_version: str, filters_hash: str, prefix: str | Sequence[str],
                   retry_failed: bool = False, clip_settings: str | None = None) -> DoneUnder:
        """What a rerun over the archive under `prefix` skips, and the clips it redoes for other settings than
        `clip_settings` (None: a clip is judged as a still), as `done.done_under`."""
        rows = ds.field("filters_hash") == filters_hash
        clips = None if clip_settings is None else self.read(
            IMAGES, model_name, model_version, CLIP_DONE_COLUMNS, rows & (ds.field("kind") == "video"), dedupe=False)
        return done_under(self.stream_images(model_name, model_version, DONE_COLUMNS, rows), prefix, retry_failed,
                          clips, clip_settings)

    def done_keys(self, model_name: str, model_version: str, filters_hash: str,
                  retry_failed: bool = False) -> set[tuple[str, str]]:
        """`done_table` as a set of (uri, content_id), for callers that look keys up one at a time."""
        t = self.done_table(model_name, model_version, filters_hash, retry_failed)
        return set(zip(t["uri"].to_pylist(), t["content_id"].to_pylist(), strict=True))

    def known_capture_times(self, sources: Sequence[str] | None = None
                            ) -> dict[tuple[str, str], tuple[dt.datetime, str]]:
        """(uri, content_id) -> (capture time, source) found by earlier runs of any model (or the online door),
        of the given sources (default: all but `path`, which the path pattern gives again)."""
        sources = list(sources or [s for s in TIME_SOURCES if s != "path"])
        t = self.read(IMAGES, columns=["uri", "content_id", "capture_time", "capture_time_source"],
                      filter=ds.field("capture_time_source").isin(sources))
        out = {}
        for uri, cid, when, src in zip(*(t[c].to_pylist() for c in t.column_names), strict=True):
            if when is not None:
                out[(uri, cid)] = (when, src)
        return out

    def current_images(self, model_name: str, model_version: str, filters_hash: str,
                       filter: ds.Expression | None = None) -> pd.DataFrame:
        """One row per uri (its newest processing) for one model version and filter set."""
        expr = ds.field("filters_hash") == filters_hash
        t = self.read(IMAGES, model_name, model_version, filter=expr if filter is None else expr & filter)
        df = t.to_pandas()
        if df.empty:
            return df
        df = df.sort_values(["processed_at", "run_id"], ascending=False, kind="stable")
        df = fill_camera_ids(df)  # tables written before model_store/tables/cameras.py hold nulls
        df = df.drop_duplicates("uri", keep="first").sort_values("uri").reset_index(drop=True)
        return apply_clock(df, TimeBook.load(self.storage))  # deployments and clock decisions, on every read

    def committed_detections(self, images: pd.DataFrame, model_name: str, model_version: str,
                             filters_hash: str, kept_only: bool = False, table: str = DETECTIONS,
                             filter: ds.Expression | None = None, columns: Sequence[str] | None = None
                             ) -> pd.DataFrame:
        """Rows of `table` (detections, classifications, snips, occurrences) that belong to the given image rows
        (join on uri, content_id, run_id); `filter` narrows the read (e.g. to a few uris); `columns` reads only
        those besides the row key (a detection's box, classifications and snips cost memory a count never uses).

        Eight parameters: the image rows and the result set they belong to (the model name and version, as the
        reader's other methods take them, and the filters hash), then four keyword defaults that narrow the read
        (kept_only, table, filter, columns); its 32 calls (product, tests, benchmarks) each set the few they need,
        so it keeps the reader's shape rather than a grouping every call would build to be taken apart here."""
        expr = ds.field("filters_hash") == filters_hash
        if filter is not None:
            expr = expr & filter
        if kept_only:
            expr = expr & (ds.field("kept") == True)  # noqa: E712 - a pyarrow expression, not a bool
        wanted = None if columns is None else list(dict.fromkeys([*ROW_KEYS[table], *columns]))
        det = self.read(table, model_name, model_version, columns=wanted, filter=expr).to_pandas()
        if det.empty or images.empty:
            return det.iloc[0:0]
        keys = images[["uri", "content_id", "run_id"]]
        det = det.merge(keys, on=["uri", "content_id", "run_id"], how="inner")
        order = ["uri", "detection_index"] if "detection_index" in det.columns else ["uri"]  # occurrences: none
        return det.sort_values(order).reset_index(drop=True)

    # -- repair --------------------------------------------------------------------------
    def remove_orphans(self, live: Callable[[str], bool] | None = None) -> list[str]:
        """Delete detections parts whose images part never appeared, from runs that are not alive.

        Such a file is what a run killed between its two writes leaves behind. Parts of a run
        that may still be writing (see `manifest.is_live`) are left alone; the caller's own run is not
        live to it (`is_live` on this process's pid), so a run that shut its plan down sweeps its own.
        """
        if live is None:
            manifests = {m.run_id: m for m in read_manifests(self.storage)}

            def live(run_id: str) -> bool:
                return is_live(manifests.get(run_id))

        removed = []
        for table in PART_TABLES:
            for model_name, model_version in self.partitions(table, empty=True):
                committed = set(self.parts(IMAGES, model_name, model_version))
                for name in self.parts(table, model_name, model_version):
                    m = PART_RE.match(name)
                    if name in committed or not m or live(m.group("run_id")):
                        continue
                    path = self.storage.path(table, *partition_parts(model_name, model_version), name)
                    self.storage.fs.rm(path)
                    removed.append(path)
                if self.storage.is_local and table == DETECTIONS:
                    removed += self._remove_stale_temp(model_name, model_version)
        return removed

    def _remove_stale_temp(self, model_name: str, model_version: str) -> list[str]:
        import os
        import time

        removed = []
        for table in (IMAGES, *PART_TABLES):
            base = self.storage.path(table, *partition_parts(model_name, model_version))
            if not os.path.isdir(base):
                continue
            for name in os.listdir(base):
                path = os.path.join(base, name)
                if name.startswith(".tmp-") and time.time() - os.path.getmtime(path) > TMP_MAX_AGE_S:
                    os.remove(path)
                    removed.append(path)
        return removed

    def manifests(self) -> list[RunManifest]:
        return read_manifests(self.storage)


def unique_rows(table: pa.Table, key: Sequence[str]) -> pa.Table:
    """`table` with the first row of each `key` (those columns plus the partition keys, when read) kept; as
    is when a key column was not read."""
    cols = [c for c in (*key, *PARTITION_KEYS) if c in table.column_names]
    if table.num_rows < 2 or not set(key) <= set(cols):
        return table
    indexed = table.select(cols).append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    first = indexed.group_by(cols, use_threads=False).aggregate([("__row", "min")])["__row_min"]
    if len(first) == table.num_rows:
        return table
    return table.take(pc.take(first, pc.sort_indices(first)))  # the first of each key, in the order read


def _empty(schema: pa.Schema, columns: list[str] | None) -> pa.Table:
    t = schema.empty_table()
    return t.select(columns) if columns else t
