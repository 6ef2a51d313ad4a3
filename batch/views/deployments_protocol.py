"""The request bodies of the deployment routes (batch/views/deployments.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

WHO = Field(None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
            description="the person deciding, as the records keep it: the person whose token sends it (default); "
                        "only an admin may name someone else, and is then recorded beside them")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tables: str | None = Field(None, description="the tables (default: the recorder's tables of the serve config)")
    who: str | None = WHO
    comment: str | None = Field(None, max_length=2000)


class DeploymentsFile(BaseModel):
    """A Camtrap DP deployments file as a person picked it (the console reads it; the service parses it)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., max_length=300, pattern=r"(?i)\.(csv|json)$", description="its name: .csv or .json")
    text: str = Field(..., max_length=50_000_000, description="its content, UTF-8")


class DeploymentsImportRequest(_Body):
    """`POST /v1/deployments`: Camtrap DP deployments rows (plus cameraID and timezone) to record."""

    deployments: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)
    file: DeploymentsFile | None = Field(None, description="a deployments CSV/JSON file's text, instead of rows")
    timezone: str | None = Field(None, description="IANA zone for rows without a `timezone`")
    removed: list[str] = Field(default_factory=list, description="deploymentIDs to take out")


class ClockCorrectionRequest(_Body):
    """`POST /v1/deployments/clock`: a camera's clock was `offset_s` ahead (or on `zone`) for these readings."""

    camera_id: str = Field(..., min_length=1, max_length=200)
    recorded_from: str = Field(..., description="first camera-clock reading covered, as the tables show it")
    recorded_until: str = Field(..., description="last camera-clock reading covered")
    offset_s: float = Field(0.0, description="how far ahead the clock was (true time = recorded - offset_s)")
    zone: str | None = Field(None, description="read the times as local to this IANA zone")


class TimestampIssuesRequest(_Body):
    issues: bool = True


class RevokeRequest(_Body):
    pass
