"""Issue 87: what a season adds, the memory the service keeps does not follow. The season watcher (behind /metrics and
the season health) over 190 more finished runs keeps a few hundred bytes each (their kind, status and end), not each
run's manifest; the people view and the digest book keep nothing per added file (benchmarks/season_growth.py grows
every store 100×: BENCHMARKS.md)."""

from __future__ import annotations

from benchmarks.season_growth import BASE, measure_book, measure_people, measure_season


def test_the_watcher_keeps_a_small_record_per_finished_run_not_its_manifest(tmp_path):
    few, many = ({**BASE, "parts": 2, "decisions": 2, "runs": n} for n in (10, 200))
    small, large = measure_season(tmp_path / "few", few), measure_season(tmp_path / "many", many)
    per_run = (large["retained_bytes"] - small["retained_bytes"]) / 190
    assert per_run < 400, f"{per_run:.0f} bytes kept per finished run"  # each whole manifest kept, as before: 3,630
    assert small["gauge_series"] == large["gauge_series"] and large["up"], large


def test_the_people_view_and_the_digest_book_keep_nothing_per_added_file(tmp_path):
    people = [measure_people(tmp_path / f"p{n}", {**BASE, "last_used_files": n})["retained_bytes"] for n in (2, 200)]
    assert people[1] - people[0] < 2048, people
    book = [measure_book(tmp_path / f"b{n}", {**BASE, "book_rows": n})["retained_bytes"] for n in (1000, 20_000)]
    assert book[1] - book[0] < 2048, book
