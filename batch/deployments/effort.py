"""Effort and detection histories: camera-days per deployment, trap rates, activity by hour, occasions.

- Effort: a deployment's period, less every stretch longer than `gap_days` without a single picture (the camera
  stopped: a full card, a flat battery). Camera-days are the rest, in days.
- Independent detections: a species' detections at one deployment, counting one only when it comes more than
  `independence_min` minutes after the last one counted (the field's usual 30 minutes).
- Trap rate: independent detections per 100 camera-days; nights: distinct local nights (noon to noon) with one.
- Activity: independent detections by local hour (the deployment's zone).
- Detection history: deployments x occasions of `occasion_days` local days, from the earliest deployment's first day:
  1 detected, 0 not detected with effort in the occasion, NA without effort in it.

Every time here is the corrected one (model_store/tables/clock.py): `capture_time` UTC and `capture_time_local`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

import numpy as np
import pandas as pd

from batch.deployments.defaults import GAP_DAYS, INDEPENDENCE_MIN, OCCASION_DAYS
from model_store.tables.clock import TimeBook
from model_store.tables.deployments import DeploymentRecord

__all__ = ["GAP_DAYS", "INDEPENDENCE_MIN", "OCCASION_DAYS", "Effort", "efforts", "independent", "trap_rates",
           "activity", "detection_history"]


@dataclass(frozen=True)
class Effort:
    """One deployment's effort: active stretches (naive UTC) and camera-days."""

    deployment_id: str
    active: list[tuple[pd.Timestamp, pd.Timestamp]]

    @property
    def camera_days(self) -> float:
        return sum((b - a).total_seconds() for a, b in self.active) / 86400

    def seconds_within(self, start: pd.Timestamp, end: pd.Timestamp) -> float:
        return sum(max(0.0, (min(b, end) - max(a, start)).total_seconds()) for a, b in self.active)


def _naive_utc(when: dt.datetime) -> pd.Timestamp:
    return pd.Timestamp(when.astimezone(dt.timezone.utc).replace(tzinfo=None))


def efforts(book: TimeBook, pictures: pd.DataFrame, gap_days: float = GAP_DAYS) -> dict[str, Effort]:
    """deployment id -> its effort, from the placed pictures (deployment_id, capture_time UTC)."""
    by_dep = {}
    if "deployment_id" in pictures:
        by_dep = {d: np.sort(pd.to_datetime(g["capture_time"]).dropna().to_numpy())
                  for d, g in pictures[pictures["deployment_id"].notna()].groupby("deployment_id")}
    out = {}
    for r in book.deployments:
        start, end = _naive_utc(r.start_utc), _naive_utc(r.end_utc)
        times = [start, *(pd.Timestamp(t) for t in by_dep.get(r.deployment_id, [])), end]
        active, run_start = [], start
        for a, b in zip(times, times[1:], strict=False):
            if (b - a).total_seconds() > gap_days * 86400:
                if a > run_start:
                    active.append((run_start, a))
                run_start = b
        if end > run_start:
            active.append((run_start, end))
        out[r.deployment_id] = Effort(r.deployment_id, active)
    return out


def independent(detections: pd.DataFrame, independence_min: float = INDEPENDENCE_MIN) -> pd.DataFrame:
    """The independent detections (deployment_id, label, capture_time, capture_time_local), time ordered."""
    d = detections[detections["deployment_id"].notna() & detections["label"].notna()]
    d = d.sort_values(["deployment_id", "label", "capture_time"], kind="stable")
    keep = np.zeros(len(d), bool)
    limit = pd.Timedelta(minutes=independence_min)
    last: dict[tuple, pd.Timestamp] = {}
    for i, (dep, label, t) in enumerate(zip(d["deployment_id"], d["label"], pd.to_datetime(d["capture_time"]),
                                            strict=True)):
        prev = last.get((dep, label))
        if prev is None or t - prev > limit:
            keep[i] = True
            last[(dep, label)] = t
    return d[keep].reset_index(drop=True)


def trap_rates(book: TimeBook, effort: dict[str, Effort], detections: pd.DataFrame,
               independence_min: float = INDEPENDENCE_MIN) -> pd.DataFrame:
    """Per deployment and species: camera-days, independent detections, trap rate per 100 camera-days, nights."""
    ind = independent(detections, independence_min)
    ind = ind.assign(night=(pd.to_datetime(ind["capture_time_local"]) - pd.Timedelta(hours=12)).dt.date)
    rows = []
    labels = sorted(ind["label"].unique())
    for r in book.deployments:
        days = effort[r.deployment_id].camera_days
        here = ind[ind["deployment_id"] == r.deployment_id]
        for label in labels:
            mine = here[here["label"] == label]
            rows.append({"deploymentID": r.deployment_id, "species": label, "camera_days": round(days, 4),
                         "detections": len(mine), "trap_rate": round(100 * len(mine) / days, 4) if days else None,
                         "nights": int(mine["night"].nunique())})
    return pd.DataFrame(rows, columns=["deploymentID", "species", "camera_days", "detections", "trap_rate",
                                       "nights"])


def activity(detections: pd.DataFrame, independence_min: float = INDEPENDENCE_MIN) -> pd.DataFrame:
    """Independent detections per species (rows) and local hour 0..23 (columns)."""
    ind = independent(detections, independence_min)
    hours = pd.to_datetime(ind["capture_time_local"]).dt.hour
    table = pd.crosstab(ind["label"], hours).reindex(columns=range(24), fill_value=0)
    table.columns = [f"{h:02d}" for h in table.columns]
    return table.rename_axis("species").rename_axis(None, axis=1)


def _day_start_utc(r: DeploymentRecord, day: dt.date) -> pd.Timestamp:
    local = dt.datetime.combine(day, dt.time()).replace(tzinfo=zoneinfo.ZoneInfo(r.zone))
    return _naive_utc(local)


def detection_history(book: TimeBook, effort: dict[str, Effort], detections: pd.DataFrame, species: str,
                      occasion_days: int = OCCASION_DAYS) -> pd.DataFrame:
    """Deployments (rows) x occasions (columns `o1`, `o2`...): 1, 0 or NA (see the module docstring)."""
    if not book.deployments:
        return pd.DataFrame()
    first = min(r.local(r.start_utc).date() for r in book.deployments)
    last = max(r.local(r.end_utc).date() for r in book.deployments)
    n = (last - first).days // occasion_days + 1
    seen = detections[(detections["label"] == species) & detections["deployment_id"].notna()]
    seen_days = {(d, t.date()) for d, t in zip(seen["deployment_id"], pd.to_datetime(seen["capture_time_local"]),
                                               strict=True)}
    out = {}
    for r in book.deployments:
        row = []
        for k in range(n):
            a = first + dt.timedelta(days=k * occasion_days)
            b = a + dt.timedelta(days=occasion_days)
            if effort[r.deployment_id].seconds_within(_day_start_utc(r, a), _day_start_utc(r, b)) <= 0:
                row.append(pd.NA)
            else:
                hit = any((r.deployment_id, a + dt.timedelta(days=j)) in seen_days for j in range(occasion_days))
                row.append(1 if hit else 0)
        out[r.deployment_id] = row
    frame = pd.DataFrame.from_dict(out, orient="index", columns=[f"o{k + 1}" for k in range(n)], dtype="Int64")
    return frame.rename_axis("deploymentID")
