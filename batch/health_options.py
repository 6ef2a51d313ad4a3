"""The options of `trapline health` (batch/health.py): its thresholds, apart so the command registry holds them
without importing the tables. Each is a season signal's (batch/season_signals.py): its name, default, bounds and
help are declared there, once."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, create_model

from batch.options import TablesLocation
from batch.season_signals import Threshold, thresholds


def _field(t: Threshold) -> tuple:
    kind = t.kind if t.default is not None else t.kind | None
    return kind, Field(t.default, description=t.help, **t.bounds())


HealthThresholds: type[BaseModel] = create_model(
    "HealthThresholds", __config__=ConfigDict(extra="forbid"), __module__=__name__,
    __doc__="What counts as healthy (every field a flag of `trapline health`, and a key of its `--config` file).",
    **{t.option: _field(t) for t in thresholds() if t.option is not None})


class HealthOptions(HealthThresholds):
    """`trapline health --tables DST`: the checks of one set of tables."""

    tables: TablesLocation

    def thresholds(self) -> HealthThresholds:
        return HealthThresholds(**self.model_dump(exclude={"tables"}))
