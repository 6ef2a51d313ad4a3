"""Write one part of the tables so that every file appears whole, and a part is committed by its images file.

Why this order: a batch's detections file is written first and its images file last. Readers
and the skip-set treat the `images` table as the record of what is done, so a crash between
the two writes leaves detections whose image is not done: the image is processed again on the
next run, and the stray detections file (same part name, no images file) is either removed by
the next run's clean-up (`Tables.remove_orphans`) or ignored by readers, which join detections
to their image row on (uri, content_id, filters_hash, run_id). Part names are derived from the
run id and the batch's keys, so a Ray task retry rewrites the same files instead of adding copies.

Each file is atomic: locally a hidden temp file in the same directory, fsync'ed, then
`os.replace`; on S3 one PUT (`Storage.write_atomic`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ground.storage import Storage
from model_store.tables.schema import DETECTIONS, IMAGES, SCHEMA_VERSION

METADATA_KEY = b"trapline"


def part_name(run_id: str, keys: Sequence[tuple[str, str]]) -> str:
    """A deterministic file name for a batch of (uri, content_id) keys written by `run_id`."""
    digest = hashlib.sha1()
    for uri, content_id in keys:
        digest.update(f"{uri}\0{content_id}\n".encode())
    return f"part-{run_id}-{digest.hexdigest()[:16]}.parquet"


def partition_parts(model_name: str, model_version: str) -> tuple[str, str]:
    """The hive partition directories for one model version."""
    return f"model_name={model_name}", f"model_version={model_version}"


# Row groups of at most this many rows: a filtered read (a slice of cameras, a uri span, one camera's pictures)
# decodes only the row groups whose statistics may match, so a compacted part of 100,000 rows in one row group
# (pyarrow's default holds up to a million) was decoded whole, every column, by every slice that touched it.
ROW_GROUP_ROWS = 10_000


def parquet_bytes(table: pa.Table, metadata: Mapping[str, Any] | None = None) -> bytes:
    """Serialise a table as one zstd Parquet file (row groups of `ROW_GROUP_ROWS`), with the trapline JSON metadata
    attached."""
    if metadata is not None:
        existing = dict(table.schema.metadata or {})
        existing[METADATA_KEY] = json.dumps({"schema_version": SCHEMA_VERSION, **metadata}).encode()
        table = table.replace_schema_metadata(existing)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    return sink.getvalue().to_pybytes()


def write_part(storage: Storage, model_name: str, model_version: str, name: str, images: pa.Table,
               detections: pa.Table, metadata: Mapping[str, Any] | None = None,
               fence: Callable[[], None] | None = None) -> None:
    """Write a part: detections first (if any), then the images file that commits it.

    `fence` (the run lease's check) runs right before the images file: the commit itself is fenced,
    not only the start of the part, so a writer that lost its lease while the detections file was
    uploading commits nothing (what it left is an uncommitted file the next clean-up removes).

    Eight parameters: where the part goes (storage, model name and version, file name), its two tables (images,
    detections), the metadata written into both, and the lease's fence run before the commit; its writers (the job's
    commit, postprocess, the fixtures and a benchmark) each build these differently, and nothing else travels with
    them."""
    parts = partition_parts(model_name, model_version)
    images_bytes = parquet_bytes(images, metadata)
    if detections.num_rows:
        write_file(storage, parquet_bytes(detections, metadata), DETECTIONS, *parts, name)
    if fence is not None:
        fence()
    write_file(storage, images_bytes, IMAGES, *parts, name)


def write_file(storage: Storage, data: bytes, *parts: str) -> None:
    """`Storage.write_atomic`, except that an interrupted S3 write also stops its upload.

    When a job fails, Ray cancels its running tasks by interrupting their main thread. fsspec
    runs the PUT (and botocore/s3fs retries of it, which last tens of seconds against a failing
    store) on its own I/O thread and would carry on after the interrupt: the part would land after
    the run was declared failed, possibly after a rerun had already written the same images. Here
    the upload is cancelled with the task.
    """
    fs = storage.fs
    if storage.is_local or not getattr(fs, "async_impl", False) or not hasattr(fs, "_pipe_file"):
        storage.write_atomic(data, *parts)
        return
    future = asyncio.run_coroutine_threadsafe(fs._pipe_file(storage.path(*parts), data), fs.loop)
    try:
        while True:
            try:
                future.result(timeout=0.5)  # short waits, so an interrupt is handled between them
                return
            except concurrent.futures.TimeoutError:
                continue
    except BaseException:
        future.cancel()
        raise


def read_metadata(storage: Storage, *parts: str) -> dict[str, Any]:
    """The trapline metadata of one Parquet file ({} if it has none)."""
    with storage.fs.open(storage.path(*parts), "rb") as f:
        meta = pq.read_schema(f).metadata or {}
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else {}
