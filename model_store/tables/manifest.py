"""Run manifests: `DST/_runs/<run_id>.json`, one small JSON per run, rewritten atomically as it progresses.

A manifest says what ran (arguments, model name/version/sha256, filters), how far it got
(counts, status, heartbeat) and when. Besides telling people what happened, it lets a later
run decide whether files left by an earlier one belong to a run that is still alive.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from ground.storage import Storage
from model_store.tables.schema import RUNS_DIR

RunStatus = Literal["running", "succeeded", "failed", "interrupted"]
# A run whose heartbeat is older than this is presumed dead when we cannot check its process.
STALE_AFTER_S = 15 * 60


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_run_id(now: dt.datetime | None = None) -> str:
    """Sortable and unique: 20240601T120000Z-1a2b3c."""
    now = now or utcnow()
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"


def submission_id() -> str | None:
    """The `ray job submit` id of this driver (for `ray job status/logs`), None outside a submitted job."""
    try:  # the job supervisor hands the driver its job config, submission id included, in this variable
        return json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")).get("metadata", {}).get(
            "job_submission_id")
    except (ValueError, AttributeError):
        return None


class RunManifest(BaseModel):
    """What one reprocess or postprocess run did."""

    run_id: str
    # record: the online door's recorder (tables/journal.py); compact: `trapline tables compact`; train: `trapline
    # models train --tables` (batch/train/record.py)
    kind: Literal["reprocess", "postprocess", "record", "compact", "train"]
    status: RunStatus = "running"
    started_at: str
    updated_at: str
    ended_at: str | None = None
    host: str = Field(default_factory=socket.gethostname)
    pid: int = Field(default_factory=os.getpid)
    ray_job_id: str | None = Field(default_factory=lambda: submission_id(), description="`ray job submit` id")
    arguments: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict, description="name, version, sha256, ref, labels")
    filters: dict[str, Any] = Field(default_factory=dict, description="hash, specs")
    provenance: dict[str, Any] = Field(default_factory=dict, description="trapline version, core version and "
                                       "fingerprint of the code that made the rows (model_store/core/provenance.py)")
    result_set: str | None = Field(None, description="the result set the run wrote (filters_hash of its rows)")
    source: str | None = None
    out: str | None = None
    counts: dict[str, int | float] = Field(default_factory=dict)
    wall_s: float | None = None
    images_per_s: float | None = None
    error: str | None = None
    published: str | None = Field(None, description="train: the version it published (NAME:VERSION)")

    @classmethod
    def start(cls, run_id: str, kind: str, **fields: Any) -> RunManifest:
        now = utcnow().isoformat(timespec="seconds")
        return cls(run_id=run_id, kind=kind, started_at=now, updated_at=now, **fields)

    def touch(self) -> None:
        self.updated_at = utcnow().isoformat(timespec="seconds")

    def finish(self, status: RunStatus, error: str | None = None) -> None:
        self.status = status
        self.error = error
        self.touch()
        self.ended_at = self.updated_at


def write_manifest(storage: Storage, manifest: RunManifest) -> None:
    storage.write_atomic(json.dumps(manifest.model_dump(mode="json"), indent=2).encode(),
                         RUNS_DIR, f"{manifest.run_id}.json")


def read_manifests(storage: Storage) -> list[RunManifest]:
    """Every readable manifest under DST/_runs, oldest first."""
    out = []
    for name in storage.listdir(RUNS_DIR):
        if not name.endswith(".json"):
            continue
        try:
            out.append(RunManifest.model_validate_json(storage.read_bytes(RUNS_DIR, name)))
        except (OSError, ValueError):
            continue  # a foreign or damaged file must not stop a run
    return sorted(out, key=lambda m: m.run_id)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_live(manifest: RunManifest | None, now: dt.datetime | None = None) -> bool:
    """True if the run may still be writing: status running and (its process exists, or a fresh heartbeat)."""
    if manifest is None or manifest.status != "running":
        return False
    if manifest.host == socket.gethostname():
        return _pid_alive(manifest.pid) and manifest.pid != os.getpid()
    try:
        updated = dt.datetime.fromisoformat(manifest.updated_at)
    except ValueError:
        return False
    return ((now or utcnow()) - updated).total_seconds() < STALE_AFTER_S


def close_abandoned(storage: Storage, noticed_by: str) -> list[str]:
    """Mark runs that still say "running" but whose driver is gone (killed) as failed; returns their ids."""
    closed = []
    for m in read_manifests(storage):
        if m.status == "running" and m.run_id != noticed_by and not is_live(m):
            m.finish("failed", f"abandoned: the driver stopped without closing the run (noticed by run {noticed_by})")
            write_manifest(storage, m)
            closed.append(m.run_id)
    return closed
