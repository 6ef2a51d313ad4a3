"""Individuals over time: per week, what re-identification found, and whether the profiles are ready to be named.

Per ISO week (Monday to Sunday) of the sightings' capture times, from the newest identify run with people's
decisions folded in (model_store/tables/identities.py `current`):

- sightings: detections identified or not; assigned: those put with an individual, and their share;
- individuals seen, and new individuals (first seen that week);
- profiles: individuals known by the end of the week, and the week's change (new over last week's profiles).

Ready to name (the deer project's rule, each threshold a setting): fewer than `max_profiles` profiles, fewer than
`max_new_share` new profiles a week for the last `stable_weeks` weeks, and more than `min_assigned_share` of the
last week's sightings assigned to a known individual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

MAX_PROFILES = 50
MAX_NEW_SHARE = 0.05
STABLE_WEEKS = 2
MIN_ASSIGNED_SHARE = 0.70
COLUMNS = ["week", "sightings", "assigned", "assigned_share", "individuals_seen", "new_individuals", "profiles",
           "profile_change"]


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: list[str]  # what holds, or what does not

    def as_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "reasons": self.reasons}


def weekly(sightings: pd.DataFrame) -> pd.DataFrame:
    """One row per week with sightings (COLUMNS), oldest first."""
    s = sightings[sightings["capture_time"].notna()]
    if s.empty:
        return pd.DataFrame(columns=COLUMNS)
    t = pd.to_datetime(s["capture_time"])
    s = s.assign(week=(t - pd.to_timedelta(t.dt.weekday, unit="D")).dt.normalize())
    first_week = s[s["individual_id"].notna()].groupby("individual_id")["week"].min()
    rows, profiles = [], 0
    for week, g in s.groupby("week", sort=True):
        assigned = int(g["individual_id"].notna().sum())
        new = int((first_week == week).sum())
        change = new / profiles if profiles else None
        profiles += new
        rows.append({"week": week.date().isoformat(), "sightings": len(g), "assigned": assigned,
                     "assigned_share": round(assigned / len(g), 4),
                     "individuals_seen": int(g["individual_id"].nunique()),
                     "new_individuals": new, "profiles": profiles,
                     "profile_change": None if change is None else round(change, 4)})
    return pd.DataFrame(rows, columns=COLUMNS)


def readiness(weeks: pd.DataFrame, max_profiles: int = MAX_PROFILES, max_new_share: float = MAX_NEW_SHARE,
              stable_weeks: int = STABLE_WEEKS, min_assigned_share: float = MIN_ASSIGNED_SHARE) -> Readiness:
    """Whether the profiles are ready to be named, each threshold with what the weeks say."""
    if weeks.empty:
        return Readiness(False, ["no sightings with a capture time yet"])
    last = weeks.iloc[-1]
    recent = weeks["profile_change"].iloc[-stable_weeks:]
    checks = [
        (int(last["profiles"]) < max_profiles, f"{int(last['profiles'])} profile(s) (under {max_profiles})"),
        (len(weeks) >= stable_weeks + 1 and recent.notna().all() and bool((recent < max_new_share).all()),
         f"new profiles a week over the last {stable_weeks} week(s): "
         + ", ".join("n/a" if pd.isna(v) else f"{v:.1%}" for v in recent) + f" (each under {max_new_share:.0%})"),
        (float(last["assigned_share"]) > min_assigned_share,
         f"{float(last['assigned_share']):.0%} of the last week's sightings assigned (over {min_assigned_share:.0%})"),
    ]
    return Readiness(all(ok for ok, _ in checks), [("ok: " if ok else "not yet: ") + why for ok, why in checks])
