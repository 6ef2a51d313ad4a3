"""Deployments for a Camtrap DP package: where and when each camera stood.

From the deployments table beside the tables (`trapline deployments import`, model_store/tables/deployments.py:
several deployments of a camera, each picture placed by its camera and corrected time, `timestampIssues` from the
decisions log), or for a one-off from a file (`--deployments FILE`), which then replaces the table.
The one-off file gives, per trapline camera id (the `deploymentID`), its location, start and end
and any of Camtrap DP's optional setup fields, in Camtrap DP's own column names:

    deploymentID,latitude,longitude,deploymentStart,deploymentEnd,locationName,cameraHeight
    cam01,51.0501,4.3520,2024-04-29T09:00:00+02:00,2024-05-31T17:00:00+02:00,Beech ridge,0.5

as CSV, or JSON (a list of such objects, or an object keyed by deploymentID). A start or end
without an offset is local time and gets `--timezone`. Every camera of the exported images must
have a row; with `--allow-missing-deployments` a missing one is written with empty coordinates
(the package then does not validate until they are filled in) and its first and last capture.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from ground.errors import BatchError
from model_store.tables.archive import open_location
from model_store.tables.clock import TimeBook
from model_store.tables.deployment_fields import (  # noqa: F401 - the export's names for them
    CAMTRAP_DEPLOYMENT_FIELDS,
    Deployment,
    aware,
    load_deployments,
)


def table_deployments(tables_url: str | None) -> dict[str, Deployment]:
    """The deployments table beside the tables, as the export's deployments: start and end with their local offset,
    `timestampIssues` as the decisions log marks it; empty when none is recorded."""
    if not tables_url:
        return {}
    book = TimeBook.load(open_location(tables_url))
    out = {}
    for r in book.deployments:
        update = {"deploymentStart": camtrap_time(r.start_utc.astimezone(zoneinfo.ZoneInfo(r.zone))),
                  "deploymentEnd": camtrap_time(r.end_utc.astimezone(zoneinfo.ZoneInfo(r.zone))), "timezone": None,
                  "country": None, "admin1Region": None}
        if r.deployment_id in book.issues:
            update["timestampIssues"] = book.issues[r.deployment_id]
        out[r.deployment_id] = r.deployment.model_copy(update=update)
    return out


def camtrap_time(when: dt.datetime) -> str:
    """An aware time in the tables' format (`%Y-%m-%dT%H:%M:%S%z`: `Z` for UTC, else `+HH:MM`)."""
    text = when.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


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
        row = {k: v for k, v in dep.model_dump().items() if v is not None and k != "timezone"}
        row.update(deploymentStart=camtrap_time(start), deploymentEnd=camtrap_time(end))
        for key in ("timestampIssues", "baitUse"):
            if key in row:
                row[key] = "true" if row[key] else "false"
        rows.append(row)
    return rows, missing
