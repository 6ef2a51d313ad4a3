"""The options of `trapline health` (batch/health.py): its thresholds, apart so the command registry holds them
without importing the tables."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from batch.options import TablesLocation


class HealthThresholds(BaseModel):
    """What counts as healthy (every field a flag of `trapline health`, and a key of its `--config` file)."""

    model_config = ConfigDict(extra="forbid")

    silent_days: float = Field(3.0, gt=0, description="a camera whose newest capture is older than this is silent")
    max_failed_share: float = Field(0.05, ge=0, le=1, description="most failed images per image committed")
    max_days_since_job: float = Field(8.0, gt=0, description="most days since an archive job last succeeded "
                                                              "(a weekly cron: 8)")
    min_assignment_rate: float = Field(0.70, ge=0, le=1, description="fewest sightings assigned to an individual")
    max_new_individuals_per_day: int = Field(20, ge=0, description="most individuals first seen on the newest "
                                                                   "day (more: the re-identification threshold)")
    max_to_review: int = Field(500, ge=0, description="most occurrences awaiting a person's review")
    max_clock_problems: int = Field(0, ge=0, description="most failing clock checks (trapline tables check)")
    max_table_gb: float | None = Field(None, gt=0, description="most GB the tables may hold (none: not checked)")


class HealthOptions(HealthThresholds):
    """`trapline health --tables DST`: the checks of one set of tables."""

    tables: TablesLocation

    def thresholds(self) -> HealthThresholds:
        return HealthThresholds(**self.model_dump(exclude={"tables"}))
