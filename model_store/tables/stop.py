"""Stop requests: `DST/_runs/<job id>.stop`, written by the control plane, read by the run at every part.

A run submitted as a Ray job (`POST /v1/jobs`, `ray job submit`) checks for its job's request after each
committed part and ends there (`RunStoppedError`): its lease released, no part half-written. The request
stays as the record of why the run ended.
"""

from __future__ import annotations

import datetime as dt
import json
import re

from ground.storage import Storage
from model_store.tables.schema import RUNS_DIR

SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def _name(job_id: str) -> str:
    if not SAFE_ID.match(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return f"{job_id}.stop"


def request_stop(storage: Storage, job_id: str, by: str = "") -> None:
    body = {"job_id": job_id, "requested_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "by": by}
    storage.write_atomic(json.dumps(body).encode(), RUNS_DIR, _name(job_id))


def stop_requested(storage: Storage, job_id: str | None) -> bool:
    return bool(job_id) and storage.exists(RUNS_DIR, _name(job_id))
