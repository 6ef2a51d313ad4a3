"""The Camtrap DP options of `trapline export --format camtrap-dp`: its own options model (refused with another
format), declared apart from the exporter (batch/export/camtrap.py) so the command line is built without the tables'
readers."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from batch.export.common_options import FormatOptions
from batch.options import Location
from batch.postprocessing.options import DEFAULT_GAP_S


def _utc_offset(value: str) -> str:
    if not re.fullmatch(r"Z|[+-]\d{2}:\d{2}", value):
        raise ValueError("must be Z or +HH:MM / -HH:MM")
    return value


class CamtrapOptions(FormatOptions):
    """The options of `trapline export --format camtrap-dp`: what every format takes, and these."""

    timezone: Annotated[str, AfterValidator(_utc_offset)] = Field(
        "Z", description="UTC offset of the cameras' clocks (path / EXIF times; mtimes stay UTC)")
    observation_level: Literal["media", "event", "both"] = Field(
        "media", description="observations per image box (media), per event and label (event), or both")
    gap_s: float = Field(DEFAULT_GAP_S, gt=0, description="a gap longer than this many seconds between a camera's "
                                                           "images starts a new event")
    deployments: Location | None = Field(None, description="per camera id its latitude, longitude, "
                                                           "deploymentStart, deploymentEnd (and optional Camtrap DP "
                                                           "setup fields), a .csv or .json file")
    allow_missing_deployments: bool = Field(False, description="write cameras missing from --deployments "
                                                               "without coordinates instead of refusing")
    package_meta: Location | None = Field(None, description="datapackage.json metadata (title, "
                                                            "contributors, project, licenses, ...), a .yaml or "
                                                            ".json file")
