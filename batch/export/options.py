"""The options of `trapline export`: the CLI's flags are generated from this model, and a job's options are
validated against it."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from batch.export.registry import EXPORTERS, FORMATS
from batch.flags import FlagStyle
from batch.options import SET_FLAGS, Location, ScopedOptions
from batch.refilter.events import DEFAULT_GAP_S

Format = Literal[FORMATS]  # the registered exporters (batch/export/registry.py)
ObservationLevel = Literal["media", "event", "both"]


class ExportOptions(ScopedOptions):
    format: Format = Field(..., description="; ".join(f"{name}: {e.description}" for name, e in EXPORTERS.items()))
    out: Location = Field(..., description="output file (megadetector, coco) or directory (camtrap-dp)")
    timezone: str = Field("Z", description="Camtrap DP: UTC offset of the cameras' clocks (path / EXIF times; "
                                           "mtimes stay UTC)")
    observation_level: ObservationLevel = Field(
        "media", description="Camtrap DP observations per image box (media), per event and label (event), or both")
    gap_s: float = Field(DEFAULT_GAP_S, gt=0, description="a gap longer than this many seconds between a camera's "
                                                           "images starts a new event")
    deployments: Location | None = Field(None, description="Camtrap DP: per camera id its latitude, longitude, "
                                                      "deploymentStart, deploymentEnd (and optional Camtrap DP setup "
                                                      "fields), a .csv or .json file")
    allow_missing_deployments: bool = Field(False, description="Camtrap DP: write cameras missing from --deployments "
                                                               "without coordinates instead of refusing")
    package_meta: Location | None = Field(None, description="Camtrap DP: datapackage.json metadata (title, "
                                                            "contributors, project, licenses, ...), a .yaml or "
                                                            ".json file")

    @field_validator("timezone")
    @classmethod
    def _offset(cls, value: str) -> str:
        if not re.fullmatch(r"Z|[+-]\d{2}:\d{2}", value):
            raise ValueError("must be Z or +HH:MM / -HH:MM")
        return value


EXPORT_FLAGS = {**SET_FLAGS, "deployments": FlagStyle(metavar="FILE.csv|FILE.json"),
                "package_meta": FlagStyle(metavar="META.yaml")}
