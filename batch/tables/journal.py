"""The online door's journal: uploads answered but not yet committed to the tables, none lost, none twice.

An upload recorded by the service (`POST /v1/images`, serve/recording/) is answered only after its rows
are in this journal; they reach the tables later, in parts of many rows (the recorder's flush). In
between, the journal is what makes the answer a promise:

    TABLES/_online/pending/<image_id>.json   one entry per answered upload, until the part holding it commits
    TABLES/_leases/online@<writer>.json      each recorder's lease (tables/lease.py): its write fence
    TABLES/_runs/<writer>.json               each recorder's run manifest (kind "record")

- **Claim.** An entry is created exclusively (`Storage.create_exclusive`): two replicas recording the same
  bytes for the same camera at once cannot both write it, so the image gets one row.
- **Commit.** A recorder commits its entries with `commit_entries` (the same `write_stage_results` an
  archive run's sink uses, fenced by the recorder's own lease at the commit) and then deletes them.
- **Recover.** Entries whose recorder is gone (its lease stale: a replica killed with SIGKILL) are committed by
  whoever notices first, a new replica or the next `trapline reprocess` (`recover`): it takes over the dead
  recorder's lease, so two recoverers cannot both commit them, and skips entries whose part had committed
  before the crash deleted them. A running reprocess skips the images still pending (`pending_keys`) rather
  than process them a second time.

Readers (and `trapline tables check`) see an upload once its part commits.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field

from batch.tables.commit import write_stage_results
from batch.tables.lease import RunLease
from batch.tables.manifest import RunManifest, new_run_id, write_manifest
from batch.tables.reader import Tables
from batch.tables.schema import STAGE_SCHEMA
from trapline.errors import LeaseHeldError
from trapline.storage import Storage

ONLINE_DIR = "_online"
PENDING_DIR = "pending"
LEASE_NAME = "online"  # the recorders' leases: _leases/online@<writer>.json


def lease_key(writer: str) -> tuple[str, str]:
    """The (name, version) pair under which a recorder's lease lives (tables/lease.py `lease_parts`)."""
    return LEASE_NAME, writer


class PendingEntry(BaseModel):
    """One answered upload's rows, as the tables will hold them, and where they go."""

    image_id: str
    writer: str = Field(description="the recorder (run id) that answered it and will commit it")
    model_name: str
    model_version: str
    model_sha256: str
    filters_hash: str
    metadata: dict[str, Any] = Field(default_factory=dict, description="the part's trapline metadata")
    row: dict[str, Any] = Field(description="one STAGE_SCHEMA row (capture_time as ISO text)")

    @property
    def key(self) -> tuple[str, str]:
        return self.row["uri"], self.row["content_id"]

    def to_json(self) -> bytes:
        row = dict(self.row)
        if isinstance(row.get("capture_time"), dt.datetime):
            row["capture_time"] = row["capture_time"].isoformat()
        return self.model_copy(update={"row": row}).model_dump_json().encode()

    def table_row(self) -> dict[str, Any]:
        row = dict(self.row)
        if isinstance(row.get("capture_time"), str):
            row["capture_time"] = dt.datetime.fromisoformat(row["capture_time"])
        return row


def entry_parts(image_id: str) -> tuple[str, str, str]:
    return ONLINE_DIR, PENDING_DIR, f"{image_id}.json"


def claim(storage: Storage, entry: PendingEntry) -> bool:
    """Put an answered upload in the journal; False if the image is already there (another request has it)."""
    return storage.create_exclusive(entry.to_json(), *entry_parts(entry.image_id))


def read_entry(storage: Storage, image_id: str) -> PendingEntry | None:
    try:
        return PendingEntry.model_validate_json(storage.read_bytes(*entry_parts(image_id)))
    except FileNotFoundError:
        return None


def pending(storage: Storage) -> list[PendingEntry]:
    """Every entry in the journal (damaged ones are skipped: they would stop every recovery)."""
    out = []
    for name in storage.listdir(ONLINE_DIR, PENDING_DIR):
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            out.append(PendingEntry.model_validate_json(storage.read_bytes(ONLINE_DIR, PENDING_DIR, name)))
        except (FileNotFoundError, ValueError):
            continue  # committed and deleted meanwhile, or not ours
    return out


def pending_keys(storage: Storage, model_name: str, model_version: str, filters_hash: str) -> set[tuple[str, str]]:
    """(uri, content_id) of recorded uploads of this result set that are not committed yet."""
    return {e.key for e in pending(storage) if (e.model_name, e.model_version, e.filters_hash)
            == (model_name, model_version, filters_hash)}


def commit_entries(storage: Storage, entries: Iterable[PendingEntry], run_id: str) -> int:
    """Commit entries as parts of the tables (one per model version and result set), fenced by `run_id`'s
    recorder lease at each commit, then delete them from the journal. Returns the rows committed."""
    groups: dict[tuple, list[PendingEntry]] = {}
    for e in entries:
        key = (e.model_name, e.model_version, e.model_sha256, e.filters_hash, json.dumps(e.metadata, sort_keys=True))
        groups.setdefault(key, []).append(e)
    committed = 0
    for (name, version, sha256, filters_hash, _), group in groups.items():
        table = pa.Table.from_pylist([e.table_row() for e in group], schema=STAGE_SCHEMA)
        write_stage_results(table, out_url=storage.url(), model_name=name, model_version=version,
                            model_sha256=sha256, filters_hash=filters_hash, run_id=run_id,
                            metadata=group[0].metadata, fenced=True, lease=lease_key(run_id))
        for e in group:
            storage.delete(*entry_parts(e.image_id))
        committed += len(group)
    return committed


def recover(storage: Storage, *, exclude: str | None = None, ttl_s: float = 60.0) -> int:
    """Commit the entries of recorders that are gone (their lease stale or absent); returns the rows committed.

    A recorder still alive keeps its entries (it commits them at its next flush). `exclude`: the caller's own
    writer id. Entries whose image already has a row of the same result set are only deleted."""
    by_writer: dict[str, list[PendingEntry]] = {}
    for e in pending(storage):
        if e.writer != exclude:
            by_writer.setdefault(e.writer, []).append(e)
    total = 0
    for writer, entries in by_writer.items():
        run_id = new_run_id()
        lease = RunLease(storage, *lease_key(writer), run_id, ttl_s=ttl_s)
        try:
            lease.acquire(wait_s=0)
        except LeaseHeldError:
            continue  # its recorder is alive: it commits them itself
        # The fence of the parts is the lease of the run writing them: ours, under our run id.
        own = RunLease(storage, *lease_key(run_id), run_id, ttl_s=ttl_s).acquire()
        manifest = RunManifest.start(run_id, "record", source=f"recovery of recorder {writer}", out=storage.url())
        write_manifest(storage, manifest)
        try:
            tables = Tables(storage.url(), storage)
            done: dict[tuple[str, str, str], set] = {}
            todo = []
            for e in entries:
                rs = (e.model_name, e.model_version, e.filters_hash)
                if rs not in done:
                    done[rs] = tables.done_keys(*rs, retry_failed=True)
                if e.key in done[rs]:
                    storage.delete(*entry_parts(e.image_id))  # its part committed before the recorder died
                else:
                    todo.append(e)
            total += commit_entries(storage, todo, run_id)
            manifest.counts = {"images": len(todo), "recovered_from": 1}
            manifest.finish("succeeded")
        except BaseException as exc:
            manifest.finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            write_manifest(storage, manifest)
            own.release()
            lease.release()
    return total
