"""The online door's journal: every recorded upload's record, and which of them are not in the tables yet.

An upload recorded by the service (`POST /v1/images`, serve/recording/) is answered only after its record is
here; its rows reach the tables later, in parts of many rows (the recorder's flush). In between, the journal
is what makes the answer a promise:

    TABLES/_online/images/<image_id>.json            the upload's record (its rows included): the claim
    TABLES/_online/pending/<writer>/<image_id>.json  a marker per record its recorder has not committed yet
    TABLES/_leases/online@<writer>.json              each recorder's lease (tables/lease.py): its write fence
    TABLES/_runs/<writer>.json                       each recorder's run manifest (kind "record")

- **Claim** (`claim`): the marker is written, then the record is created exclusively
  (`Storage.create_exclusive`). Only one request ever creates an image's record, so two replicas recording
  the same bytes for the same camera at once, or a retry after a crash, cannot give it a second row: the
  loser removes its marker and answers the existing record.
- **Commit** (`commit`): a recorder writes its records' rows as parts (the same `write_stage_results` an
  archive run's sink uses, fenced by the recorder's own lease at the commit), then removes their markers
  (one bulk delete). A record is never rewritten: it is committed when its writer's marker is gone (`state`).
- **Recover** (`recover`): markers of a recorder that is gone (its lease stale: a replica killed with
  SIGKILL) are settled by whoever looks first, a new replica or the next `trapline reprocess`: it takes over
  the dead recorder's lease (so two recoverers cannot both commit), commits what is not in the tables yet and
  only drops the markers of what is (a part that committed before the crash could drop them). A marker without
  a record of its writer was never answered and is dropped.
- A running reprocess skips the images whose markers say they are pending (`pending_keys`) rather than
  process them a second time; readers and `trapline tables check` see an upload once its part commits.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, Field

from ground.errors import LeaseHeldError
from ground.storage import Storage
from model_store.tables.commit import write_stage_results
from model_store.tables.lease import RunLease
from model_store.tables.manifest import RunManifest, new_run_id, write_manifest
from model_store.tables.reader import Tables
from model_store.tables.schema import STAGE_SCHEMA

State = Literal["pending", "committed"]
ONLINE_DIR = "_online"
RECORDS_DIR = "images"
PENDING_DIR = "pending"
LEASE_NAME = "online"  # the recorders' leases: _leases/online@<writer>.json


def lease_key(writer: str) -> tuple[str, str]:
    """The (name, version) pair under which a recorder's lease lives (tables/lease.py `lease_parts`)."""
    return LEASE_NAME, writer


class Recorded(BaseModel):
    """One recorded upload: its rows as the tables will hold them, where they go, and the door's own record."""

    image_id: str
    writer: str = Field(description="the recorder (run id) that answered it and commits it")
    model_name: str
    model_version: str
    model_sha256: str
    filters_hash: str
    metadata: dict[str, Any] = Field(default_factory=dict, description="the part's trapline metadata")
    row: dict[str, Any] = Field(description="one STAGE_SCHEMA row (capture_time as ISO text)")
    extra: dict[str, Any] = Field(default_factory=dict, description="what the door remembers (its answer...)")

    @property
    def key(self) -> tuple[str, str]:
        return self.row["uri"], self.row["content_id"]

    @property
    def result_set(self) -> tuple[str, str, str]:
        return self.model_name, self.model_version, self.filters_hash

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


def record_parts(image_id: str) -> tuple[str, str, str]:
    return ONLINE_DIR, RECORDS_DIR, f"{image_id}.json"


def marker_parts(writer: str, image_id: str) -> tuple[str, str, str, str]:
    return ONLINE_DIR, PENDING_DIR, writer, f"{image_id}.json"


def claim(storage: Storage, rec: Recorded) -> bool:
    """Journal a new upload: its marker, then its record, created only if the image has none. False (and no
    marker left) when it has one: another request recorded these bytes first."""
    uri, content_id = rec.key
    marker = json.dumps({"uri": uri, "content_id": content_id, "model_name": rec.model_name,
                         "model_version": rec.model_version, "filters_hash": rec.filters_hash}).encode()
    storage.write_atomic(marker, *marker_parts(rec.writer, rec.image_id))
    if storage.create_exclusive(rec.to_json(), *record_parts(rec.image_id)):
        return True
    storage.delete(*marker_parts(rec.writer, rec.image_id))
    return False


def read(storage: Storage, image_id: str) -> Recorded | None:
    try:
        return Recorded.model_validate_json(storage.read_bytes(*record_parts(image_id)))
    except FileNotFoundError:
        return None


def state(storage: Storage, rec: Recorded) -> State:
    """pending (answered, its rows not in the tables yet) while its writer's marker is there, then committed."""
    return "pending" if storage.exists(*marker_parts(rec.writer, rec.image_id)) else "committed"


def writers(storage: Storage) -> list[str]:
    """Recorders that have markers (uncommitted records) in the journal."""
    return storage.listdir(ONLINE_DIR, PENDING_DIR)


def markers(storage: Storage, writer: str) -> dict[str, dict[str, Any]]:
    """image_id -> marker of one recorder's uncommitted records."""
    out = {}
    for name in storage.listdir(ONLINE_DIR, PENDING_DIR, writer):
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            out[name[:-5]] = json.loads(storage.read_bytes(ONLINE_DIR, PENDING_DIR, writer, name))
        except (FileNotFoundError, ValueError):
            continue  # committed meanwhile, or not ours
    return out


def pending_keys(storage: Storage, model_name: str, model_version: str, filters_hash: str) -> set[tuple[str, str]]:
    """(uri, content_id) of recorded uploads of this result set that are not committed yet."""
    wanted = (model_name, model_version, filters_hash)
    return {(m["uri"], m["content_id"]) for w in writers(storage) for m in markers(storage, w).values()
            if (m.get("model_name"), m.get("model_version"), m.get("filters_hash")) == wanted}


def _settle(storage: Storage, records: Iterable[Recorded]) -> None:
    """The records' rows are in the tables: drop their markers (one bulk delete)."""
    storage.delete_many([marker_parts(r.writer, r.image_id) for r in records])


def commit(storage: Storage, records: Iterable[Recorded], run_id: str) -> int:
    """Write records' rows as parts of the tables (one per model version and result set), fenced by `run_id`'s
    recorder lease at each commit, then settle them. Returns the rows committed."""
    groups: dict[tuple, list[Recorded]] = {}
    for rec in records:
        key = (*rec.result_set, rec.model_sha256, json.dumps(rec.metadata, sort_keys=True))
        groups.setdefault(key, []).append(rec)
    committed = 0
    for (name, version, filters_hash, sha256, _), group in groups.items():
        table = pa.Table.from_pylist([r.table_row() for r in group], schema=STAGE_SCHEMA)
        write_stage_results(table, out_url=storage.url(), model_name=name, model_version=version,
                            model_sha256=sha256, filters_hash=filters_hash, run_id=run_id,
                            metadata=group[0].metadata, fenced=True, lease=lease_key(run_id))
        _settle(storage, group)
        committed += len(group)
    return committed


def recover(storage: Storage, *, exclude: str | None = None, ttl_s: float = 60.0) -> int:
    """Settle the markers of recorders that are gone (their lease stale or absent); returns the rows committed.

    A recorder still alive keeps its markers (it commits them at its next flush). `exclude`: the caller's own
    writer id."""
    total = 0
    for writer in writers(storage):
        if writer == exclude:
            continue
        found = markers(storage, writer)
        if not found:
            continue
        run_id = new_run_id()
        lease = RunLease(storage, *lease_key(writer), run_id, ttl_s=ttl_s)
        try:
            lease.acquire(wait_s=0)
        except LeaseHeldError:
            continue  # its recorder is alive: it commits them itself
        try:
            total += _recover_writer(storage, writer, found, run_id, ttl_s)
        finally:
            lease.release()
    return total


def _recover_writer(storage: Storage, writer: str, found: dict[str, dict], run_id: str, ttl_s: float) -> int:
    todo, settled, done = [], [], {}
    tables = Tables(storage)
    for image_id in found:
        rec = read(storage, image_id)
        if rec is None or rec.writer != writer:  # never answered by it (the crash came first), or a twin won
            storage.delete(*marker_parts(writer, image_id))
            continue
        if rec.result_set not in done:
            done[rec.result_set] = tables.done_keys(*rec.result_set, retry_failed=True)
        (settled if rec.key in done[rec.result_set] else todo).append(rec)  # settled: committed before the crash
    _settle(storage, settled)
    if not todo:
        return 0
    # The parts' fence is the lease of the run writing them: ours, under our own run id; the manifest makes the
    # run live for a concurrent reprocess's clean-up of uncommitted files.
    own = RunLease(storage, *lease_key(run_id), run_id, ttl_s=ttl_s).acquire()
    manifest = RunManifest.start(run_id, "record", source=f"recovery of recorder {writer}", out=storage.url())
    write_manifest(storage, manifest)
    try:
        n = commit(storage, todo, run_id)
        manifest.counts = {"images": n}
        manifest.finish("succeeded")
        return n
    except BaseException as exc:
        manifest.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        write_manifest(storage, manifest)
        own.release()
