"""Camtrap DP deployments as trapline reads them: one row's fields, checked, and a CSV/JSON file of such rows.

The user's file gives, per deployment, its camera, location, start and end and any of Camtrap DP's optional
setup fields, in Camtrap DP's own column names:

    deploymentID,cameraID,latitude,longitude,deploymentStart,deploymentEnd,locationName,timezone
    cam01-a,cam01,51.0501,4.3520,2024-04-29T09:00:00,2024-05-31T17:00:00,Beech ridge,Europe/Brussels

as CSV, or JSON (a list of such objects, or an object keyed by deploymentID). `cameraID` is the trapline
camera id the deployment's pictures carry (default: the deploymentID, one deployment per camera as before).
`timezone` (an IANA name, trapline's addition to Camtrap DP's columns) is the zone of the deployment's
local time: a start, end or capture time without an offset is read in it (daylight saving by `zoneinfo`).
`country` and `admin1Region` (trapline's too: ISO 3166-1 alpha-3, and a 2-character region such as a US state) say
where the camera stands, for the species ensemble's geofence (model_store/core/species/).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zoneinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ground.errors import BatchError, StorageError
from model_store.core.species.geofence import CountryCode, RegionCode
from model_store.tables.archive import open_location

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
    timezone: str | None = Field(None, description="IANA zone of the local times (trapline's addition)")
    # Where the camera stands for the species ensemble's geofence (trapline's additions; issue 57)
    country: CountryCode | None = Field(None, description="ISO 3166-1 alpha-3 country (trapline's addition)")
    admin1Region: RegionCode | None = Field(None, description="first-level region, 2 characters (trapline's "  # noqa: N815
                                                              "addition)")

    @field_validator("deploymentStart", "deploymentEnd")
    @classmethod
    def _iso_time(cls, value: str) -> str:
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {value!r} (e.g. 2024-05-01T09:00:00+02:00)") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_zone(value)

    @model_validator(mode="after")
    def _region_in_a_country(self) -> Deployment:
        if self.admin1Region and not self.country:
            raise ValueError(f"admin1Region {self.admin1Region!r} needs a country")
        return self

    @model_validator(mode="after")
    def _start_before_end(self) -> Deployment:
        if aware(self.deploymentEnd, "Z") < aware(self.deploymentStart, "Z"):
            raise ValueError(f"deploymentEnd {self.deploymentEnd!r} is before deploymentStart {self.deploymentStart!r}")
        return self

    @property
    def camera(self) -> str:
        """The trapline camera id of the deployment's pictures."""
        return self.cameraID or self.deploymentID

    def window(self, offset: str) -> tuple[dt.datetime, dt.datetime]:
        """(start, end) as aware times; a time without an offset is local to the row's `timezone`, else gets
        `offset` (--timezone)."""
        if self.timezone is not None:
            zone = zoneinfo.ZoneInfo(self.timezone)
            return tuple(when if when.tzinfo else when.replace(tzinfo=zone)  # type: ignore[return-value]
                         for when in (dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
                                      for t in (self.deploymentStart, self.deploymentEnd)))
        return aware(self.deploymentStart, offset), aware(self.deploymentEnd, offset)


def aware(text: str, offset: str) -> dt.datetime:
    """An ISO time as an aware datetime; a naive one is taken to be at `offset` ("Z" or "+HH:MM")."""
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = dt.datetime.fromisoformat(when.isoformat() + ("+00:00" if offset == "Z" else offset))
    return when


def check_zone(name: str) -> str:
    """An IANA time zone name, checked against the zone database; a ValueError naming it otherwise."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Amsterdam or UTC)") from None
    return name


def parse_deployments_text(text: str, name: str, where: str) -> dict[str, Deployment]:
    """Deployments from a CSV or JSON text (`name` says which); deploymentID -> Deployment. `where` prefixes errors."""
    if name.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BatchError(f"{where}: not valid JSON: {e}") from None
        if isinstance(data, dict):
            data = [{"deploymentID": key, **value} for key, value in data.items()]
        if not isinstance(data, list):
            raise BatchError(f"{where}: expected a list of deployments or an object keyed by deploymentID")
        rows = data
    elif name.lower().endswith(".csv"):
        rows = [{k.strip(): v for k, v in r.items() if k is not None and v not in ("", None)}
                for r in csv.DictReader(io.StringIO(text))]
    else:
        raise BatchError(f"{where}: use a .csv or .json file")
    return validate_rows(rows, where, "row" if name.lower().endswith(".csv") else "entry")


def validate_rows(rows: list, where: str, unit: str = "entry") -> dict[str, Deployment]:
    """Check each row as a Deployment; deploymentID -> Deployment; the first bad row is a BatchError naming it."""
    out: dict[str, Deployment] = {}
    for n, row in enumerate(rows, start=1):
        at = f"{where}, {unit} {n}"
        try:
            dep = Deployment.model_validate(row)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'row'}: {err['msg']}"
                                 + (f" (got {err['input']!r})" if err["type"] != "missing" else "")
                                 for err in e.errors())
            raise BatchError(f"{at}: {problems}") from None
        if dep.deploymentID in out:
            raise BatchError(f"{at}: deploymentID {dep.deploymentID!r} appears twice")
        out[dep.deploymentID] = dep
    return out


def load_deployments(path: str, flag: str = "--deployments") -> dict[str, Deployment]:
    """Read and check a deployments file (.csv or .json); deploymentID -> Deployment."""
    parent, _, name = path.replace("\\", "/").rpartition("/")
    try:
        text = open_location(parent or ".").read_bytes(name).decode("utf-8-sig")
    except (OSError, StorageError, UnicodeDecodeError) as e:
        raise BatchError(f"{flag}: cannot read {path}: {e}") from None
    return parse_deployments_text(text, name, f"{flag} {path}")
