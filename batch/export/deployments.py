"""Deployments for a Camtrap DP package: where and when each camera stood (`--deployments FILE`).

The user's file gives, per trapline camera id (the `deploymentID`), its location, start and end
and any of Camtrap DP's optional setup fields, in Camtrap DP's own column names:

    deploymentID,latitude,longitude,deploymentStart,deploymentEnd,locationName,cameraHeight
    cam01,51.0501,4.3520,2024-04-29T09:00:00+02:00,2024-05-31T17:00:00+02:00,Beech ridge,0.5

as CSV, or JSON (a list of such objects, or an object keyed by deploymentID). A start or end
without an offset is local time and gets `--timezone`. Every camera of the exported images must
have a row; with `--allow-missing-deployments` a missing one is written with empty coordinates
(the package then does not validate until they are filled in) and its first and last capture.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model_store.tables.archive import open_location
from trapline.errors import BatchError, StorageError
from trapline.problems import describe, problems

FEATURE_TYPES = Literal["roadPaved", "roadDirt", "trailHiking", "trailGame", "roadUnderpass", "roadOverpass",
                        "roadBridge", "culvert", "burrow", "nestSite", "carcass", "waterSource", "fruitingTree"]

# deployments-table-schema.json 1.0.2, in its order
CAMTRAP_DEPLOYMENT_FIELDS = [
    "deploymentID", "locationID", "locationName", "latitude", "longitude", "coordinateUncertainty",
    "deploymentStart", "deploymentEnd", "setupBy", "cameraID", "cameraModel", "cameraDelay", "cameraHeight",
    "cameraDepth", "cameraTilt", "cameraHeading", "detectionDistance", "timestampIssues", "baitUse",
    "featureType", "habitat", "deploymentGroups", "deploymentTags", "deploymentComments",
]


class Deployment(BaseModel):
    """One row of the user's deployments file (Camtrap DP deployments fields; unknown ones are refused)."""

    model_config = ConfigDict(extra="forbid")

    deploymentID: str = Field(min_length=1)  # noqa: N815 - Camtrap DP's own names
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    deploymentStart: str  # noqa: N815
    deploymentEnd: str  # noqa: N815
    locationID: str | None = None  # noqa: N815
    locationName: str | None = None  # noqa: N815
    coordinateUncertainty: int | None = Field(None, ge=1)  # noqa: N815
    setupBy: str | None = None  # noqa: N815
    cameraID: str | None = None  # noqa: N815
    cameraModel: str | None = None  # noqa: N815
    cameraDelay: int | None = Field(None, ge=0)  # noqa: N815
    cameraHeight: float | None = Field(None, ge=0)  # noqa: N815
    cameraDepth: float | None = Field(None, ge=0)  # noqa: N815
    cameraTilt: int | None = Field(None, ge=-90, le=90)  # noqa: N815
    cameraHeading: int | None = Field(None, ge=0, le=360)  # noqa: N815
    detectionDistance: float | None = Field(None, ge=0)  # noqa: N815
    timestampIssues: bool | None = None  # noqa: N815
    baitUse: bool | None = None  # noqa: N815
    featureType: FEATURE_TYPES | None = None  # noqa: N815
    habitat: str | None = None
    deploymentGroups: str | None = None  # noqa: N815
    deploymentTags: str | None = None  # noqa: N815
    deploymentComments: str | None = None  # noqa: N815

    @field_validator("deploymentStart", "deploymentEnd")
    @classmethod
    def _iso_time(cls, value: str) -> str:
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {value!r} (e.g. 2024-05-01T09:00:00+02:00)") from None
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> Deployment:
        if aware(self.deploymentEnd, "Z") < aware(self.deploymentStart, "Z"):
            raise ValueError(f"deploymentEnd {self.deploymentEnd!r} is before deploymentStart {self.deploymentStart!r}")
        return self

    def window(self, offset: str) -> tuple[dt.datetime, dt.datetime]:
        """(start, end) as aware times; a time without an offset gets `offset` (--timezone)."""
        return aware(self.deploymentStart, offset), aware(self.deploymentEnd, offset)


def aware(text: str, offset: str) -> dt.datetime:
    """An ISO time as an aware datetime; a naive one is taken to be at `offset` ("Z" or "+HH:MM")."""
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = dt.datetime.fromisoformat(when.isoformat() + ("+00:00" if offset == "Z" else offset))
    return when


def camtrap_time(when: dt.datetime) -> str:
    """An aware time in the tables' format (`%Y-%m-%dT%H:%M:%S%z`: `Z` for UTC, else `+HH:MM`)."""
    text = when.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def load_deployments(path: str) -> dict[str, Deployment]:
    """Read and check a deployments file (.csv or .json); deploymentID -> Deployment."""

    parent, _, name = path.replace("\\", "/").rpartition("/")
    try:
        text = open_location(parent or ".").read_bytes(name).decode("utf-8-sig")
    except (OSError, StorageError, UnicodeDecodeError) as e:
        raise BatchError(f"--deployments: cannot read {path}: {e}") from None
    if name.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BatchError(f"--deployments {path}: not valid JSON: {e}") from None
        if isinstance(data, dict):
            data = [{"deploymentID": key, **value} for key, value in data.items()]
        if not isinstance(data, list):
            raise BatchError(f"--deployments {path}: expected a list of deployments or an object keyed by "
                             "deploymentID")
        rows = data
    elif name.lower().endswith(".csv"):
        rows = [{k.strip(): v for k, v in r.items() if k is not None and v not in ("", None)}
                for r in csv.DictReader(io.StringIO(text))]
    else:
        raise BatchError(f"--deployments {path}: use a .csv or .json file")
    out: dict[str, Deployment] = {}
    for n, row in enumerate(rows, start=1):
        where = f"--deployments {path}, {'row' if name.lower().endswith('.csv') else 'entry'} {n}"
        try:
            dep = Deployment.model_validate(row)
        except ValidationError as e:
            raise BatchError(f"{where}: {describe(problems(e))}") from None
        if dep.deploymentID in out:
            raise BatchError(f"{where}: deploymentID {dep.deploymentID!r} appears twice")
        out[dep.deploymentID] = dep
    return out


def deployment_rows(cameras: dict[str, tuple[dt.datetime, dt.datetime]], given: dict[str, Deployment],
                    offset: str, allow_missing: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """deployments.csv rows for the exported cameras, and the cameras written without a deployment.

    `cameras` maps each camera id of the exported media to its first and last capture (aware).
    A camera missing from `given` is an error unless `allow_missing`.
    """
    missing = sorted(set(cameras) - set(given))
    if missing and not allow_missing:
        raise BatchError(f"no deployment for camera(s) {', '.join(missing)}: add them to --deployments "
                         "(or pass --allow-missing-deployments to write them without coordinates)")
    rows = []
    for camera in sorted(cameras):
        dep = given.get(camera)
        if dep is None:
            first, last = cameras[camera]
            rows.append({"deploymentID": camera, "deploymentStart": camtrap_time(first),
                         "deploymentEnd": camtrap_time(last),
                         "deploymentComments": "written by trapline export without a deployment: "
                                               "coordinates unknown; start and end are the first and last capture"})
            continue
        start, end = dep.window(offset)
        row = {k: v for k, v in dep.model_dump().items() if v is not None}
        row.update(deploymentStart=camtrap_time(start), deploymentEnd=camtrap_time(end))
        for key in ("timestampIssues", "baitUse"):
            if key in row:
                row[key] = "true" if row[key] else "false"
        rows.append(row)
    return rows, missing
