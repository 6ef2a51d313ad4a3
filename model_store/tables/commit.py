"""Commit one batch of a run's results as one part of the tables: the sink of every reprocess plan.

A part is the images file plus the detections file (and, with a crop/classify stage, the
classifications and snips files) written under one deterministic name (`writer.part_name`). The
images file is written last and commits the part; with `fenced` nothing is written unless the run
still holds the table's lease.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from ground.storage import Storage
from model_store.tables.archive import open_location
from model_store.tables.lease import check_held
from model_store.tables.schema import (
    CLASSIFICATIONS,
    CLASSIFICATIONS_SCHEMA,
    DETECTIONS_SCHEMA,
    EXTRA_COLUMNS,
    IMAGES_SCHEMA,
    RESULT_SCHEMA,
    SNIPS,
    SNIPS_SCHEMA,
)
from model_store.tables.writer import parquet_bytes, part_name, partition_parts, write_file, write_part


def flatten_nested(batch: pa.Table, column: str, schema: pa.Schema, filters_hash: str, run_id: str) -> pa.Table:
    """One `schema` row per nested entry of `column` (detections, classifications or snips) of a results
    batch, keyed by its image (uri, content_id) and the run's result set."""
    nested = batch[column].combine_chunks()
    parents = pc.list_parent_indices(nested)
    flat = pc.list_flatten(nested)
    n = len(flat)
    cols = {"uri": pc.take(batch["uri"], parents), "content_id": pc.take(batch["content_id"], parents),
            "filters_hash": pa.array([filters_hash] * n, pa.string()), "run_id": pa.array([run_id] * n, pa.string())}
    nested_names = {f.name for f in flat.type}
    return pa.Table.from_arrays([cols[f.name] if f.name in cols else flat.field(f.name) if f.name in nested_names
                                 else pa.nulls(n, f.type) for f in schema], schema=schema)  # occurrence_id: later


def write_results(batch: pa.Table, *, out_url: str, model_name: str, model_version: str, model_sha256: str,
                  filters_hash: str, run_id: str, metadata: dict, fenced: bool = False,
                  lease: tuple[str, str] | None = None) -> pa.Table:
    """The sink: split one batch of results into an images part and a detections part, write both.
    Ten parameters: the batch and a Ray Data sink's settings, keyword-only plain values a stage pickles
    (batch/reprocess/writer.py's PartWriter holds them), not a command's options model.

    `fenced`: commit only while `run_id` holds the run lease (tables/lease.py), as a reprocess run does:
    the model version's lease, or the one `lease` names (the online recorder's own, `lease_parts` keys).
    """
    storage: Storage = open_location(out_url)
    batch = batch.select(RESULT_SCHEMA.names).cast(RESULT_SCHEMA)
    n = batch.num_rows
    now = dt.datetime.now(dt.timezone.utc)
    consts = {"model_sha256": pa.array([model_sha256] * n, pa.string()),
              "filters_hash": pa.array([filters_hash] * n, pa.string()),
              "run_id": pa.array([run_id] * n, pa.string()),
              "processed_at": pa.array([now] * n, pa.timestamp("us", tz="UTC"))}
    images = pa.Table.from_arrays([batch[f.name] if f.name in batch.column_names else consts[f.name]
                                   for f in IMAGES_SCHEMA], schema=IMAGES_SCHEMA)
    detections = flatten_nested(batch, "detections", DETECTIONS_SCHEMA, filters_hash, run_id)
    keys = list(zip(batch["uri"].to_pylist(), batch["content_id"].to_pylist(), strict=True))
    name = part_name(run_id, keys)
    fence = None
    if fenced:
        held = lease or (model_name, model_version)
        check_held(storage, *held, run_id)  # before the first byte goes out

        def fence() -> None:  # and at the commit, the images file
            check_held(storage, *held, run_id)
    write_part(storage, model_name, model_version, name, images, detections, metadata, fence)
    status = batch["status"]
    kept = detections.filter(detections["kept"]).num_rows if detections.num_rows else 0
    return pa.table({
        "images": [n],
        "ok": [pc.sum(pc.equal(status, "ok")).as_py() or 0],
        "empty": [pc.sum(pc.equal(status, "empty")).as_py() or 0],
        "failed": [pc.sum(pc.equal(status, "failed")).as_py() or 0],
        "clips": [pc.sum(pc.equal(batch["kind"], "video")).as_py() or 0],
        "clips_failed": [pc.sum(pc.and_(pc.equal(batch["kind"], "video"), pc.equal(status, "failed"))).as_py() or 0],
        "frames_sampled": [pc.sum(batch["frames_sampled"]).as_py() or 0],
        "detections": [kept],
        "raw_detections": [detections.num_rows],
        "part": [name],
    })


def write_stage_results(batch: pa.Table, *, out_url: str, model_name: str, model_version: str, model_sha256: str,
                        filters_hash: str, run_id: str, metadata: dict, fenced: bool = False,
                        lease: tuple[str, str] | None = None) -> pa.Table:
    """The sink of a run with a crop/classify stage: its two extra files, then the part as `write_results` does.
    Ten parameters: those of `write_results`, for the same reason.

    Fenced before the first file, before the detections file and at the commit (the images file)."""
    storage = open_location(out_url)
    keys = list(zip(batch["uri"].to_pylist(), batch["content_id"].to_pylist(), strict=True))
    name = part_name(run_id, keys)
    if fenced:
        check_held(storage, *(lease or (model_name, model_version)), run_id)
    for table, schema in ((CLASSIFICATIONS, CLASSIFICATIONS_SCHEMA), (SNIPS, SNIPS_SCHEMA)):
        rows = flatten_nested(batch, table, schema, filters_hash, run_id)
        if rows.num_rows:  # before the images file, which commits the part
            write_file(storage, parquet_bytes(rows, metadata), table, *partition_parts(model_name, model_version), name)
    stats = write_results(batch.drop_columns(list(EXTRA_COLUMNS)), out_url=out_url, model_name=model_name,
                          model_version=model_version, model_sha256=model_sha256, filters_hash=filters_hash,
                          run_id=run_id, metadata=metadata, fenced=fenced, lease=lease)  # and at the commit
    n_cls = sum(len(v) for v in batch[CLASSIFICATIONS].to_pylist())
    return stats.append_column("classifications", pa.array([n_cls], pa.int64()))
