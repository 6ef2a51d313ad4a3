"""Issue 83: one run opens what it reads and writes once — the archive, the output tables, the tables it reads and the
model store — at its door, and hands the opened thing down. Counted by benchmarks/tables_opened.py (every Storage
built during the command, by the root it opens) on the commands a user runs, in process."""

from __future__ import annotations

from benchmarks.tables_opened import measure

PLACES = ("archive", "out", "store", "tables", "audit log")


def test_each_command_opens_each_place_once(tmp_path):
    counts = measure(tmp_path)
    assert {"reprocess --dry-run", "identify", "models promote (gated)"} <= set(counts)
    for command, opened in counts.items():
        over = {place: n for place, n in opened.items() if place in PLACES and n > 1}
        assert over == {}, f"trapline {command} opened {over} more than once"
    # the plan reads all three: each opened, none twice
    assert {p: counts["reprocess --dry-run"].get(p) for p in ("archive", "out", "store")} == \
        {"archive": 1, "out": 1, "store": 1}
    # the gate and the promote share the door's store and tables (before: store 3, tables 4)
    assert {p: counts["models promote (gated)"].get(p) for p in ("store", "tables")} == {"store": 1, "tables": 1}
