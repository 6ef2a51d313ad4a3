"""The options of `trapline deployments ...`: one pydantic model per command, from which its flags, help and checks
come (batch/commands.py registers them; batch/flags.py makes the flags). Light on purpose: every command line builds
the registry (tests/unit/test_cli_startup.py)."""

from __future__ import annotations

from pydantic import Field

from batch.deployments.defaults import GAP_DAYS, INDEPENDENCE_MIN, OCCASION_DAYS
from batch.flags import FlagStyle
from batch.options import CommandOptions, Location, StoreRoot, TablesLocation, TablesRef


class DeploymentsOptions(CommandOptions):
    tables: TablesLocation


class DecidedOptions(DeploymentsOptions):
    who: str = Field("cli", min_length=1, description="the person deciding, as the decisions log keeps it")
    comment: str | None = Field(None, description="why (kept with the decision)")


class ImportOptions(DecidedOptions):
    file: Location = Field(..., description="deployments.csv or .json: deploymentID, cameraID, latitude, longitude, "
                                            "deploymentStart, deploymentEnd, timezone and Camtrap DP's optional "
                                            "fields")
    timezone: str | None = Field(None, description="IANA zone for rows without a `timezone` (default UTC)")
    remove: list[str] | None = Field(None, description="take a deployment out (repeatable)")


class ListOptions(DeploymentsOptions):
    pass


class CorrectClockOptions(DecidedOptions):
    camera: str = Field(..., min_length=1, description="the camera id")
    recorded_from: str = Field(..., description="first camera-clock reading covered, as the tables show it "
                                                "(e.g. 2026-03-01T00:00:00)")
    recorded_until: str = Field(..., description="last camera-clock reading covered")
    offset: str = Field("0", description="how far ahead the clock was: seconds or e.g. +1h03m, -30s "
                                         "(true time = recorded - offset)")
    zone: str | None = Field(None, description="read the times as local to this IANA zone (e.g. Etc/GMT-1 for a "
                                               "clock left on winter time in Central Europe)")


class TimestampIssuesOptions(DecidedOptions):
    deployment: str = Field(..., min_length=1, description="the deploymentID")
    clear: bool = Field(False, description="its times can be trusted again")


class RevokeOptions(DecidedOptions):
    decision_id: str = Field(..., min_length=1, description="the clock decision to undo (it stays in the log)")


class EffortOptions(DeploymentsOptions):
    model: TablesRef | None = Field(None, description="NAME or NAME:VERSION when the tables hold several")
    filters_hash: str | None = Field(None, description="the tracked result set (default: the newest)")
    store: StoreRoot = None  # for NAME@ALIAS
    gap_days: float = Field(GAP_DAYS, gt=0, description="a stretch this long without any picture is not effort")
    independence_min: float = Field(INDEPENDENCE_MIN, ge=0, description="minutes between two detections of a "
                                                                        "species at a deployment for both to count")


class HistoryOptions(EffortOptions):
    species: str = Field(..., min_length=1, description="the determined label")
    occasion_days: int = Field(OCCASION_DAYS, ge=1, description="days per occasion")
    output: Location | None = Field(None, description="write the CSV here (default: print it)")


DEPLOYMENTS_FLAGS = {"tables": FlagStyle(metavar="DST"),
                     "file": FlagStyle(positional=True, metavar="FILE"),
                     "remove": FlagStyle(metavar="DEPLOYMENT", repeatable=True),
                     "recorded_from": FlagStyle(flags=("--from",), metavar="TIME"),
                     "recorded_until": FlagStyle(flags=("--until",), metavar="TIME"),
                     "deployment": FlagStyle(positional=True, metavar="DEPLOYMENT"),
                     "decision_id": FlagStyle(positional=True, metavar="DECISION_ID")}
