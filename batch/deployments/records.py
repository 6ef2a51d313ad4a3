"""What the CLI and the HTTP routes do with deployments and clocks: import, list, correct, mark, revoke.

Both doors call these functions with plain values; the records live beside the tables (model_store/tables/
deployments.py, the decisions log), and every reader applies them (model_store/tables/clock.py).
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from ground.errors import BatchError, DecisionError
from model_store.tables.archive import open_location
from model_store.tables.clock import TimeBook, apply_clock
from model_store.tables.decisions import CorrectClock, DecisionsLog, MarkTimestampIssues, RevokeDecision, make
from model_store.tables.deployment_fields import load_deployments, parse_deployments_text, validate_rows
from model_store.tables.deployments import DeploymentsTable
from model_store.tables.schema import IMAGES

_SPAN = re.compile(r"^(?P<sign>[+-])?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?:in)?)?"
                   r"(?:(?P<s>\d+(?:\.\d+)?)s)?$")


def parse_offset(text: str) -> float:
    """A clock offset in seconds from `3780`, `+1h03m`, `-30s`, `2d4h` (positive: the clock was ahead)."""
    text = text.strip().replace(" ", "")
    try:
        return float(text)
    except ValueError:
        pass
    m = _SPAN.match(text)
    if not text or not m or not any(m.group(k) for k in "dhms"):
        raise BatchError(f"--offset: {text!r} is not a clock offset (seconds, or e.g. +1h03m, -30s, 2d4h)")
    seconds = (int(m.group("d") or 0) * 86400 + int(m.group("h") or 0) * 3600 + int(m.group("m") or 0) * 60
               + float(m.group("s") or 0))
    return -seconds if m.group("sign") == "-" else seconds


def import_deployments(tables: str, source: str | list[dict] | tuple[str, str], who: str, comment: str | None = None,
                       timezone: str | None = None, removed: list[str] | None = None) -> dict[str, Any]:
    """Record deployments from a CSV/JSON file path, a (file name, text) pair or a list of Camtrap DP rows; what was
    recorded."""
    if isinstance(source, str):
        given = load_deployments(source, "deployments file")
    elif isinstance(source, tuple):
        given = parse_deployments_text(source[1], source[0], f"deployments file {source[0]}")
    else:
        given = validate_rows(source, "deployments")
    record = DeploymentsTable(open_location(tables)).add(given, who, comment, timezone, removed)
    return {"import_id": record.import_id, "deployments": [d.deploymentID for d in record.deployments],
            "removed": record.removed}


def _pictures(tables: str) -> pd.DataFrame:
    from model_store.tables.reader import Tables  # the reader is heavy; only listing needs it

    t = Tables(open_location(tables))
    dataset = t.dataset(IMAGES)
    if dataset is None:
        return pd.DataFrame(columns=["uri", "camera_id", "capture_time", "capture_time_source"])
    rows = dataset.to_table(columns=["uri", "camera_id", "capture_time", "capture_time_source"]).to_pandas()
    return rows.drop_duplicates("uri")


def list_deployments(tables: str, with_pictures: bool = True) -> dict[str, Any]:
    """The deployments with their pictures' count, first and last (corrected) time; pictures no deployment holds."""
    storage = open_location(tables)
    book = TimeBook.load(storage)
    counts: dict[str, dict] = {}
    unplaced = 0
    if with_pictures and book.deployments:
        placed = apply_clock(_pictures(tables), book)
        if "deployment_id" in placed:
            for dep, g in placed[placed["deployment_id"].notna()].groupby("deployment_id"):
                t = pd.to_datetime(g["capture_time"])
                counts[dep] = {"pictures": len(g), "first_utc": _iso(t.min()), "last_utc": _iso(t.max())}
            unplaced = int(placed["deployment_problem"].notna().sum())
    rows = []
    for r in book.deployments:
        d = r.deployment
        rows.append({"deploymentID": r.deployment_id, "cameraID": r.camera_id, "locationID": d.locationID,
                     "locationName": d.locationName, "latitude": d.latitude, "longitude": d.longitude,
                     "start_utc": _iso(r.start_utc), "end_utc": _iso(r.end_utc), "timezone": r.zone,
                     "timestampIssues": book.issues.get(r.deployment_id, False),
                     **counts.get(r.deployment_id, {"pictures": 0, "first_utc": None, "last_utc": None})})
    corrections = [{"decision_id": c.decision_id, "camera_id": c.camera_id, "recorded_from": _iso(c.recorded_from),
                    "recorded_until": _iso(c.recorded_until), "offset_s": c.offset_s, "zone": c.zone, "who": c.who,
                    "at": _iso(c.at), "comment": c.comment} for c in book.corrections]
    return {"deployments": rows, "clock_corrections": corrections, "pictures_without_deployment": unplaced}


def correct_clock(tables: str, who: str = "cli", comment: str | None = None, **correction: Any) -> dict[str, Any]:
    """Append a `correct_clock` decision; every later read applies it. `correction` holds the fields of the decision
    (model_store/tables/decisions.py `CorrectClock`: camera_id, recorded_from, recorded_until, offset_s, zone), checked
    by that model (a DecisionError names a bad one)."""
    d = make(CorrectClock, who, comment, **correction)
    return DecisionsLog(open_location(tables)).append(d).model_dump(mode="json")


def mark_timestamp_issues(tables: str, deployment_id: str, issues: bool = True, who: str = "cli",
                          comment: str | None = None) -> dict[str, Any]:
    """Append a `timestamp_issues` decision for a deployment of the table (exported as Camtrap DP's flag)."""
    storage = open_location(tables)
    if deployment_id not in DeploymentsTable(storage).current():
        raise DecisionError(f"no deployment {deployment_id!r} in the deployments table", field="deployment_id")
    d = make(MarkTimestampIssues, who, comment, deployment_id=deployment_id, issues=issues)
    return DecisionsLog(storage).append(d).model_dump(mode="json")


def revoke(tables: str, decision_id: str, who: str = "cli", comment: str | None = None) -> dict[str, Any]:
    """Append a `revoke` of an earlier clock decision: readers act as if it had not been made."""
    log = DecisionsLog(open_location(tables))
    known = {d.decision_id for d in log.read() if isinstance(d, CorrectClock | MarkTimestampIssues)}
    if decision_id not in known:
        raise DecisionError(f"no clock decision {decision_id!r} in the decisions log", field="decision_id")
    return log.append(make(RevokeDecision, who, comment, revoked_id=decision_id)).model_dump(mode="json")


def _iso(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).isoformat()
