"""Individuals over time (batch/identify/weekly.py): weekly figures worked out by hand, and the readiness to name
with each threshold as a setting."""

from __future__ import annotations

import pandas as pd

from batch.identify.weekly import readiness, weekly


def sightings(rows: list[tuple[str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame({"capture_time": pd.to_datetime([t for t, _ in rows]),
                         "individual_id": [i for _, i in rows]})


# week of 2 March: a, b, one unassigned; 9 March: a, b, c (new); 16 March: a, b, c; 23 March: a, c, c
ROWS = [("2026-03-02 22:00", "a"), ("2026-03-04 21:00", "b"), ("2026-03-08 23:59", None),
        ("2026-03-09 01:00", "a"), ("2026-03-10 01:00", "b"), ("2026-03-11 01:00", "c"),
        ("2026-03-16 01:00", "a"), ("2026-03-17 01:00", "b"), ("2026-03-18 01:00", "c"),
        ("2026-03-23 01:00", "a"), ("2026-03-24 01:00", "c"), ("2026-03-25 01:00", "c")]


def test_weekly_figures_equal_the_ones_worked_out_by_hand():
    weeks = weekly(sightings(ROWS))
    assert weeks["week"].tolist() == ["2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23"]
    assert weeks["sightings"].tolist() == [3, 3, 3, 3] and weeks["assigned"].tolist() == [2, 3, 3, 3]
    assert weeks["assigned_share"].tolist() == [0.6667, 1.0, 1.0, 1.0]
    assert weeks["individuals_seen"].tolist() == [2, 3, 3, 2]
    assert weeks["new_individuals"].tolist() == [2, 1, 0, 0] and weeks["profiles"].tolist() == [2, 3, 3, 3]
    assert weeks["profile_change"].tolist()[1:] == [0.5, 0.0, 0.0] and pd.isna(weeks["profile_change"].iloc[0])


def test_readiness_to_name_follows_each_threshold():
    weeks = weekly(sightings(ROWS))
    ready = readiness(weeks)
    assert ready.ready and ready.reasons[0] == "ok: 3 profile(s) (under 50)"
    assert not readiness(weeks, max_profiles=3).ready
    assert not readiness(weeks, stable_weeks=3).ready  # week 2 added half the profiles again
    assert not readiness(weeks.iloc[:2]).ready
    low = readiness(weeks, min_assigned_share=1.0)
    assert not low.ready and low.reasons[2] == "not yet: 100% of the last week's sightings assigned (over 100%)"
    assert readiness(weekly(sightings([]))).reasons == ["no sightings with a capture time yet"]
