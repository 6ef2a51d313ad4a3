"""List an image archive in pages into one Arrow table (ENTRY_SCHEMA), and give the missing capture times.

An archive of a million images is listed without ever holding a million listing dicts or entry objects:
the files come a page at a time (a directory's entries locally, 1,000 keys per S3 request), each page
becomes a record batch of the columns the plan needs, and the batches form one table (~200 bytes a file).
`Entries` shows that table as a sequence of `ArchiveEntry` for code that wants one file at a time; the
planner works on the columns.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from fsspec.asyn import sync

from ground.errors import ArchiveError
from ground.storage import Storage
from model_store.core.video import is_clip
from model_store.tables.archive import (
    DEFAULT_EXTENSIONS,
    HEAD_BYTES,
    ArchiveEntry,
    PathPattern,
    content_id_of,
    exif_capture,
    from_us,
    ignored_kind,
    mtime_of,
    uri_of,
)
from model_store.tables.cameras import DEFAULT_CAMERA_ID
from model_store.tables.schema import ENTRY_SCHEMA

PAGE_FILES = 10_000  # files per record batch of the listing
S3_PAGE_KEYS = 1000  # keys per ListObjectsV2 request (S3's own most)


class Entries(Sequence):
    """The listing table seen as a sequence of ArchiveEntry (built one at a time, on demand)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return Entries(self.table.slice(start, max(0, stop - start)))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return _entry(self.table.slice(index, 1).to_pylist()[0])

    def __iter__(self) -> Iterator[ArchiveEntry]:
        for batch in self.table.to_batches(max_chunksize=PAGE_FILES):
            yield from (_entry(row) for row in batch.to_pylist())

    def __eq__(self, other) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return f"Entries({len(self)} files)"


def _entry(row: Mapping) -> ArchiveEntry:
    return ArchiveEntry(uri=row["uri"], rel_path=row["rel_path"], size_bytes=row["size_bytes"],
                        content_id=row["content_id"], mtime=from_us(row["mtime_us"]) or dt.datetime(1970, 1, 1),
                        camera_id=row["camera_id"], capture_time=from_us(row["capture_time_us"]),
                        capture_time_source=row["capture_time_source"])


@dataclass(frozen=True)
class Listing:
    entries: Entries
    unmatched: int  # files the --path-pattern did not match (they fall back to the defaults)
    ignored_kinds: dict[str, int]  # files left out, by why: hidden or system, or their extension (".txt": 3)
    clips: int = 0  # of the entries, video clips (model_store.core.video.VIDEO_EXTENSIONS)

    @property
    def ignored(self) -> int:
        return sum(self.ignored_kinds.values())


def to_us(value: dt.datetime | None) -> int:
    if value is None:
        return -1
    return round(value.replace(tzinfo=dt.timezone.utc).timestamp() * 1e6)


def as_table(entries: Iterable[ArchiveEntry] | Entries | pa.Table) -> pa.Table:
    """The listing as an Arrow table with ENTRY_SCHEMA (the pipeline's input)."""
    if isinstance(entries, pa.Table):
        return entries
    if isinstance(entries, Entries):
        return entries.table
    entries = list(entries)
    return pa.table({
        "uri": [e.uri for e in entries],
        "rel_path": [e.rel_path for e in entries],
        "content_id": [e.content_id for e in entries],
        "size_bytes": [e.size_bytes for e in entries],
        "mtime_us": [to_us(e.mtime) for e in entries],
        "camera_id": [e.camera_id for e in entries],
        "capture_time_us": [to_us(e.capture_time) for e in entries],
        "capture_time_source": [e.capture_time_source for e in entries],
    }, schema=ENTRY_SCHEMA)


entries_table = as_table  # the name the pipeline's callers know it by


@dataclass
class _Page:
    """One page of the listing as columns, filled a file at a time."""

    storage: Storage
    pattern: PathPattern | None
    columns: dict[str, list] = field(default_factory=lambda: {f.name: [] for f in ENTRY_SCHEMA})
    unmatched: int = 0

    def add(self, path: str, info: Mapping) -> None:
        rel = path[len(self.storage.root):].lstrip("/")
        parts = rel.split("/")
        camera = parts[0] if len(parts) > 1 else DEFAULT_CAMERA_ID
        when = None
        if self.pattern is not None:
            matched, pcam, when = self.pattern.match(rel)
            self.unmatched += not matched
            camera = pcam or camera
        c = self.columns
        c["uri"].append(uri_of(self.storage, path))
        c["rel_path"].append(rel)
        c["content_id"].append(content_id_of(info))
        c["size_bytes"].append(int(info.get("size") or info.get("Size") or 0))
        c["mtime_us"].append(to_us(mtime_of(info)))
        c["camera_id"].append(camera)
        c["capture_time_us"].append(to_us(when))
        c["capture_time_source"].append("path" if when else None)

    def __len__(self) -> int:
        return len(self.columns["uri"])

    def batch(self) -> pa.RecordBatch:
        out = pa.RecordBatch.from_pydict(self.columns, schema=ENTRY_SCHEMA)
        for values in self.columns.values():
            values.clear()
        return out


def _local_files(root: str) -> Iterator[tuple[str, Mapping]]:
    """(path, {size, mtime}) of every regular file under `root`, a directory at a time, in path order (names
    sorted within each directory, depth first; symlinks are neither followed nor listed, as fsspec's local
    find treats them)."""
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue  # removed while listed, or not ours to read: as if absent
        subdirs = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    yield entry.path, {"size": st.st_size, "mtime": st.st_mtime}
            except FileNotFoundError:
                continue
        stack.extend(reversed(subdirs))


def _s3_files(storage: Storage) -> Iterator[tuple[str, Mapping]]:
    """(bucket/key, the key's listing record) under the root, one ListObjectsV2 page (1,000 keys) at a time."""
    fs = storage.fs
    bucket, _, prefix = storage.root.partition("/")
    kwargs = {"Bucket": bucket, "Prefix": f"{prefix}/" if prefix else "", "MaxKeys": S3_PAGE_KEYS}
    while True:
        # one request per page through s3fs's own call (its retries, its credentials); its `_iterdir` is an
        # async generator this synchronous caller cannot step through
        page = sync(fs.loop, fs._call_s3, "list_objects_v2", **kwargs)
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):  # a "directory marker" some tools write
                yield f"{bucket}/{obj['Key']}", obj
        if not page.get("IsTruncated"):
            return
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def _files(storage: Storage) -> Iterator[tuple[str, Mapping]]:
    if storage.is_local:
        return _local_files(storage.root)
    if "s3" in (storage.fs.protocol if isinstance(storage.fs.protocol, tuple) else (storage.fs.protocol,)):
        return _s3_files(storage)
    found = storage.fs.find(storage.root, detail=True, withdirs=False)  # other filesystems (memory://): small
    return ((p, i) for p, i in found.items() if i.get("type", "file") == "file")


def list_archive(storage: Storage, extensions: Iterable[str] = DEFAULT_EXTENSIONS,
                 pattern: PathPattern | None = None) -> Listing:
    """Every image and clip file under the archive root (recursive), sorted by path, listed in pages."""
    exts = frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    root = storage.root
    if storage.is_local and not os.path.isdir(root):
        raise ArchiveError(f"archive {storage.url()} is not a directory")
    page, batches, ignored, clips = _Page(storage, pattern), [], collections.Counter(), 0
    try:
        for path, info in _files(storage):
            if kind := ignored_kind(path[len(root):].lstrip("/"), exts):
                ignored[kind] += 1
                continue
            page.add(path, info)
            clips += is_clip(path)
            if len(page) >= PAGE_FILES:
                batches.append(page.batch())
    except FileNotFoundError:
        raise ArchiveError(f"archive {storage.url()} does not exist") from None
    batches.append(page.batch())
    table = pa.Table.from_batches(batches, schema=ENTRY_SCHEMA)
    del batches
    return Listing(Entries(_in_path_order(table)), page.unmatched, dict(ignored.most_common()), clips)


def _in_path_order(table: pa.Table) -> pa.Table:
    """The table sorted by path. S3 lists keys in that order, and the local walk nearly does (it orders by
    path components: "a/b/c" before "a/b.jpg", which a string sort puts after), so the sort, a copy of the
    whole listing, is only paid when some row is out of order."""
    paths = table["uri"]  # the path, with the protocol in front on S3: the same order
    if table.num_rows < 2 or pc.all(pc.less_equal(paths.slice(0, len(paths) - 1), paths.slice(1))).as_py():
        return table
    return table.take(pc.sort_indices(table, [("uri", "ascending")]))


def apply_known_times(entries, known: Mapping[tuple[str, str], tuple[dt.datetime, str]]) -> Entries:
    """Entries without a time from the path take the time an earlier run or the online door recorded for the
    same bytes (an upload's `captured_at` or time of receipt, which nothing in the file says)."""
    if not known:  # the usual case (no uploads recorded): nothing to look up, row by row
        return Entries(as_table(entries))
    return _fill_times(as_table(entries), lambda uri, cid, mtime_us: _known(known.get((uri, cid))))


def _known(cached: tuple[dt.datetime, str] | None) -> tuple[int, str] | None:
    return (to_us(cached[0]), cached[1]) if cached is not None else None


def resolve_capture_times(storage: Storage, entries,
                          known: Mapping[tuple[str, str], tuple[dt.datetime, str]] | None = None,
                          threads: int = 16) -> Entries:
    """Fill in capture times the path did not give: EXIF DateTimeOriginal, else mtime.

    Only needed to choose by time (--since, --until, --latest-per-camera); otherwise the read tasks read
    EXIF themselves. `known` maps (uri, content_id) to a time already found by an earlier run, so reruns
    read no image headers again. Header reads are ranged (first 256 KiB) and run on a thread pool.
    """
    known = known or {}
    table = as_table(entries)

    def cached(uri: str, cid: str, mtime_us: int) -> tuple[int, str] | None:
        hit = known.get((uri, cid))
        if hit is None:
            return None
        # an earlier run found no EXIF time in these very bytes: the mtime, as then
        return _known(hit) if hit[1] != "mtime" else (mtime_us, "mtime")

    if known:
        table = _fill_times(table, cached).table

    def probe(row: tuple[str, int]) -> tuple[int, str]:
        path, mtime_us = row
        try:
            found = exif_capture(storage.fs.cat_file(path, start=0, end=HEAD_BYTES))
        except OSError:
            found = None  # unreadable now: the pipeline will record the read error
        return (to_us(found[0]), found[1]) if found else (mtime_us, "mtime")

    missing = pc.indices_nonzero(pc.less(table["capture_time_us"], 0)).to_pylist()
    if not missing:
        return Entries(table)
    rows = table.take(missing).select(["uri", "mtime_us"])
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        found = dict(zip(missing, pool.map(probe, zip(rows["uri"].to_pylist(), rows["mtime_us"].to_pylist(),
                                                      strict=True)), strict=True))
    return _set_times(table, found)


def _fill_times(table: pa.Table, lookup) -> Entries:
    """Rows without a time get `lookup(uri, content_id, mtime_us)` -> (time_us, source) or None."""
    missing = pc.indices_nonzero(pc.less(table["capture_time_us"], 0)).to_pylist()
    if not missing:
        return Entries(table)
    rows = table.take(missing).select(["uri", "content_id", "mtime_us"])
    found = {}
    for i, uri, cid, mtime_us in zip(missing, *(rows[c].to_pylist() for c in rows.column_names), strict=True):
        hit = lookup(uri, cid, mtime_us)
        if hit is not None:
            found[i] = hit
    return _set_times(table, found)


def _set_times(table: pa.Table, found: Mapping[int, tuple[int, str]]) -> Entries:
    if not found:
        return Entries(table)
    times = table["capture_time_us"].to_pylist()
    sources = table["capture_time_source"].to_pylist()
    for i, (when, source) in found.items():
        times[i], sources[i] = when, source
    table = table.set_column(table.schema.get_field_index("capture_time_us"), "capture_time_us",
                             pa.array(times, pa.int64()))
    table = table.set_column(table.schema.get_field_index("capture_time_source"), "capture_time_source",
                             pa.array(sources, pa.string()))
    return Entries(table)
