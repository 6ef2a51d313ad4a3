"""The deployments table: where and when each camera stood, kept beside the tables it explains.

A deployment is a camera at a place for a period (Camtrap DP's deployment, model_store/tables/deployment_fields.py);
a camera that moved has two. The records are imported from a Camtrap DP-shaped CSV/JSON (`trapline deployments
import`, `POST /v1/deployments`), each import one small JSON file, created once and never rewritten (as the
decisions log's files)::

    DST/_deployments/<import_id>.json     {"import_id", "at", "who", "comment", "deployments": [...], "removed": [...]}

Reading folds the imports oldest first: a later import of a deploymentID replaces the earlier record, and one that
lists it under `removed` takes it out, so the history of what was said stays readable. Every reader resolves a
picture to its deployment by camera and capture time here (model_store/tables/clock.py).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zoneinfo
from dataclasses import dataclass

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from ground.errors import BatchError
from ground.storage import Storage
from model_store.tables.deployment_fields import Deployment, check_zone, validate_rows
from model_store.tables.locations import opened

DEPLOYMENTS_DIR = "_deployments"
DEFAULT_ZONE = "UTC"


class DeploymentsImport(BaseModel):
    """One import: the deployments given (a later import of the same id replaces it) and the ids taken out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    import_id: str
    at: dt.datetime
    who: str = Field(min_length=1, max_length=200)
    comment: str | None = Field(default=None, max_length=2000)
    deployments: list[Deployment] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class DeploymentRecord:
    """A deployment as readers use it: its camera, its period in UTC and the zone of its local times."""

    deployment: Deployment
    start_utc: dt.datetime
    end_utc: dt.datetime
    zone: str
    import_id: str

    @property
    def deployment_id(self) -> str:
        return self.deployment.deploymentID

    @property
    def camera_id(self) -> str:
        return self.deployment.camera

    def local(self, when: dt.datetime) -> dt.datetime:
        """An aware time as the deployment's naive local time."""
        return when.astimezone(zoneinfo.ZoneInfo(self.zone)).replace(tzinfo=None)


def record_of(dep: Deployment, default_zone: str, import_id: str = "") -> DeploymentRecord:
    """The deployment with its period in UTC: a start or end without an offset is local to its zone."""
    zone = dep.timezone or default_zone
    tz = zoneinfo.ZoneInfo(zone)

    def utc(text: str) -> dt.datetime:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (when if when.tzinfo else when.replace(tzinfo=tz)).astimezone(dt.timezone.utc)

    return DeploymentRecord(dep, utc(dep.deploymentStart), utc(dep.deploymentEnd), zone, import_id)


class DeploymentsTable:
    """The deployments beside one set of tables (`storage`: their root, opened at the door).

    Lifecycle: cheap to construct; `records()` reads the imports afresh each call (a few small files)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = opened(storage, "DeploymentsTable")

    def add(self, rows: list[dict] | dict[str, Deployment], who: str, comment: str | None = None,
            default_zone: str | None = None, removed: list[str] | None = None) -> DeploymentsImport:
        """Record one import (rows as Camtrap DP dicts, or parsed deployments); checked whole before anything is
        written: bad rows, an unknown zone, or two deployments of one camera that overlap are BatchErrors."""
        given = rows if isinstance(rows, dict) else validate_rows(rows, "deployments")
        if default_zone is not None:
            try:
                check_zone(default_zone)
            except ValueError as e:
                raise BatchError(f"--timezone: {e}") from None
            given = {k: d if d.timezone else d.model_copy(update={"timezone": default_zone}) for k, d in given.items()}
        now = dt.datetime.now(dt.timezone.utc)
        record = DeploymentsImport(import_id=f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}", at=now,
                                   who=who, comment=comment, deployments=list(given.values()),
                                   removed=list(removed or []))
        unknown = sorted(set(record.removed) - set(self.current()))
        if unknown:
            raise BatchError(f"cannot remove deployment(s) {', '.join(unknown)}: not in the deployments table")
        overlaps(self._fold([*self._imports(), record]).values())  # refuse before writing
        if not self.storage.create_exclusive(record.model_dump_json().encode(), DEPLOYMENTS_DIR,
                                             f"{record.import_id}.json"):
            raise BatchError(f"deployments import {record.import_id} is already recorded")
        return record

    def _imports(self) -> list[DeploymentsImport]:
        if not self.storage.exists(DEPLOYMENTS_DIR):
            return []
        out = []
        for name in sorted(self.storage.listdir(DEPLOYMENTS_DIR)):
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                out.append(DeploymentsImport.model_validate(json.loads(self.storage.read_bytes(DEPLOYMENTS_DIR,
                                                                                               name))))
            except ValueError as e:  # a lost deployment would silently move pictures: never skipped
                raise BatchError(f"{self.storage.url(DEPLOYMENTS_DIR, name)} is not a deployments import: {e}"
                                 ) from None
        return sorted(out, key=lambda i: (i.at, i.import_id))

    @staticmethod
    def _fold(imports: list[DeploymentsImport]) -> dict[str, DeploymentRecord]:
        out: dict[str, DeploymentRecord] = {}
        for imp in imports:
            for dep in imp.deployments:
                out[dep.deploymentID] = record_of(dep, DEFAULT_ZONE, imp.import_id)
            for gone in imp.removed:
                out.pop(gone, None)
        return out

    def current(self) -> dict[str, DeploymentRecord]:
        """deploymentID -> its record as the imports say now."""
        return self._fold(self._imports())

    def records(self) -> list[DeploymentRecord]:
        """Every current deployment, by camera then start."""
        return sorted(self.current().values(), key=lambda r: (r.camera_id, r.start_utc, r.deployment_id))

    def table(self) -> pa.Table:
        """The current deployments as an Arrow table (Camtrap DP columns, the period in UTC, the zone)."""
        rows = [{**r.deployment.model_dump(), "cameraID": r.camera_id, "timezone": r.zone,
                 "start_utc": r.start_utc, "end_utc": r.end_utc} for r in self.records()]
        return pa.Table.from_pylist(rows) if rows else pa.table({"deploymentID": pa.array([], pa.string())})


def overlaps(records) -> None:
    """Refuse two deployments of one camera whose periods overlap: a picture between them would have two."""
    by_camera: dict[str, list[DeploymentRecord]] = {}
    for r in records:
        by_camera.setdefault(r.camera_id, []).append(r)
    for camera, recs in by_camera.items():
        recs.sort(key=lambda r: r.start_utc)
        for a, b in zip(recs, recs[1:], strict=False):
            if b.start_utc < a.end_utc:
                raise BatchError(f"deployments {a.deployment_id!r} and {b.deployment_id!r} of camera {camera!r} "
                                 f"overlap ({b.deployment.deploymentStart} is before {a.deployment.deploymentEnd}): "
                                 "a picture between them would belong to both")
