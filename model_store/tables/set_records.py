"""The life of a result set, beside its rows: `DST/_sets/model_name=N/model_version=V/<set>.json`.

A result set is the rows of one model version with one `filters_hash` (the filter set, plus every classifier
version with --classify). Its parts say what made them (trapline metadata, provenance included); this record says
what happened to the set as a whole, and only exists once something did:

- a redo (`trapline reprocess --redo`) makes a new set for the same model version and filters: its hash is new
  (`redo_hash`), its `lineage` the filters' hash, `redo_of` the set readers took when it began, `reason` why. It
  is `building` until a run into it has gone over the whole archive, and readers keep taking the old set until
  then; a rerun with --redo resumes it.
- `trapline tables retire` hides a set from every reader (`retired_at`), `unretire` shows it again;
- `trapline tables purge` marks it `purging` (hidden at once), deletes its files, then `purged` (with the bytes
  reclaimed); a purge killed halfway is finished by a rerun.

Sets made before these records (and every plain set since) have none: readers take them as whole and visible.
Each record is one small JSON written atomically (`Storage.write_atomic`), so a reader sees the old or the new one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from ground.storage import Storage

SETS_DIR = "_sets"


def utcnow_text() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class SetRecord(BaseModel):
    """What happened to one result set (see the module docstring)."""

    model_name: str
    model_version: str
    set_hash: str = Field(description="the rows' filters_hash")
    lineage: str = Field(description="the hash of its filters (and classifiers): what a plain run writes")
    redo_of: str | None = Field(None, description="the set readers took when this redo began")
    reason: str | None = Field(None, description="why it was redone (reprocess --reason)")
    created_at: str = Field(default_factory=utcnow_text)
    created_by: str | None = Field(None, description="the run that began it")
    provenance: dict[str, Any] = Field(default_factory=dict, description="the code of the run that began it")
    state: Literal["building", "whole"] = "whole"
    whole_at: str | None = None
    retired_at: str | None = None
    retired_reason: str | None = None
    purge: Literal["purging", "purged"] | None = None
    purged_at: str | None = None
    bytes_reclaimed: int | None = None

    @property
    def hidden(self) -> bool:
        """Readers leave it out: retired, purged or being purged, or a redo not yet whole."""
        return self.retired_at is not None or self.purge is not None or self.state == "building"

    @property
    def status(self) -> str:
        if self.purge:
            return self.purge
        if self.retired_at:
            return "retired"
        return self.state

    @property
    def set_id(self) -> str:
        return f"{self.model_name}:{self.model_version}/{self.set_hash}"

    @property
    def key(self) -> tuple[str, str]:
        return self.model_name, self.model_version


def redo_hash(lineage: str) -> str:
    """A new set's hash for a redo of `lineage`: 16 hex digits like every filters hash, unique per redo."""
    return hashlib.sha256(f"{lineage}\0redo\0{uuid.uuid4().hex}".encode()).hexdigest()[:16]


def _parts(model_name: str, model_version: str, set_hash: str | None = None) -> tuple[str, ...]:
    where = (SETS_DIR, f"model_name={model_name}", f"model_version={model_version}")
    return (*where, f"{set_hash}.json") if set_hash else where


def read_record(storage: Storage, model_name: str, model_version: str, set_hash: str) -> SetRecord | None:
    parts = _parts(model_name, model_version, set_hash)
    if not storage.exists(*parts):
        return None
    return SetRecord.model_validate_json(storage.read_bytes(*parts))


def write_record(storage: Storage, record: SetRecord) -> None:
    storage.write_atomic(record.model_dump_json(indent=2).encode(),
                         *_parts(record.model_name, record.model_version, record.set_hash))


def records(storage: Storage, model_name: str | None = None, model_version: str | None = None) -> list[SetRecord]:
    """Every record (of one model version, when given), oldest first. A record that cannot be read is an error:
    a set hidden on purpose must not reappear because its record was damaged."""
    out = []
    for name_dir in storage.listdir(SETS_DIR):
        if not name_dir.startswith("model_name=") or (model_name and name_dir != f"model_name={model_name}"):
            continue
        for version_dir in storage.listdir(SETS_DIR, name_dir):
            if not version_dir.startswith("model_version=") or (
                    model_version and version_dir != f"model_version={model_version}"):
                continue
            for name in storage.listdir(SETS_DIR, name_dir, version_dir):
                if name.endswith(".json") and not name.startswith("."):
                    out.append(SetRecord.model_validate_json(storage.read_bytes(SETS_DIR, name_dir, version_dir,
                                                                                name)))
    return sorted(out, key=lambda r: (r.created_at, r.set_hash))


def hidden_sets(storage: Storage, model_name: str, model_version: str) -> dict[str, str]:
    """set hash -> why readers leave it out (retired, purging, purged, building), for one model version."""
    return {r.set_hash: r.status for r in records(storage, model_name, model_version) if r.hidden}


def superseded_sets(storage: Storage, model_name: str, model_version: str) -> set[str]:
    """The sets a whole, visible redo replaced: readers take the redo instead unless asked for them by hash."""
    return {r.redo_of for r in records(storage, model_name, model_version) if r.redo_of and not r.hidden}


def hidden_keys(storage: Storage) -> list[str]:
    """`NAME NUL VERSION NUL SET` of every set hidden from readers, in every model version (for readers that read
    across sets: the console's newest capture per camera)."""
    return ["\x00".join((r.model_name, r.model_version, r.set_hash)) for r in records(storage) if r.hidden]
