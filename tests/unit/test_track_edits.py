"""People's fixes to tracks (batch/postprocessing/track_edits.py): cut, join and move, folded in the log's order."""

from __future__ import annotations

import numpy as np

from batch.postprocessing import occurrences
from batch.postprocessing.track_edits import apply_track_edits
from model_store.tables.decisions import (
    DecisionsLog,
    DetectionKey,
    MergeOccurrences,
    MoveDetection,
    SplitOccurrence,
    make,
)
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from tests.fixtures.occurrences import write_sheet_tables
from tests.fixtures.postprocess import postprocess
from trapline.cli import main

KEYS = [("a.jpg", "c", i) for i in range(8)]


def _k(i: int) -> DetectionKey:
    return DetectionKey(uri="a.jpg", content_id="c", detection_index=i)


def test_cut_join_and_move_in_order_and_unknown_detections_are_skipped():
    track = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    sure = np.array([1.0, 0.9, 0.2, 0.9, 1.0, 0.8, 1.0, 0.7])
    edits = [make(SplitOccurrence, "ann", cut_at=_k(2)),  # 0 0 | 3 3 (a new id)
             make(MergeOccurrences, "ann", detections=[_k(4), _k(6)]),  # tracks 1 and 2 are one
             make(MoveDetection, "ann", detection=_k(3), to=_k(0)),  # 3 goes back to track 0
             make(SplitOccurrence, "ann", cut_at=DetectionKey(uri="gone.jpg", content_id="c", detection_index=0))]
    out, confidence, applied = apply_track_edits(track, sure, KEYS, edits)
    assert out.tolist() == [0, 0, 3, 0, 1, 1, 1, 1]
    assert applied == 3
    assert confidence[2] == 1.0 and confidence[3] == 1.0 and confidence[6] == 1.0  # people's links are certain
    assert confidence[5] == 0.8 and track.tolist() == [0, 0, 0, 0, 1, 1, 2, 2]  # the input is left alone


def test_no_edits_leave_the_tracks_as_linked():
    track, sure = np.array([0, 1]), np.array([1.0, 1.0])
    out, confidence, applied = apply_track_edits(track, sure, KEYS[:2], [])
    assert out is track and applied == 0


def test_the_cli_lists_the_least_certain_and_records_a_cut(tmp_path, capsys):
    tables = str(write_sheet_tables(tmp_path / "sheet"))
    postprocess(tables, "track", {})
    assert main(["occurrences", "review", "--tables", tables]) == 0
    listed = capsys.readouterr().out
    assert "occurrence(s) with a link under 1.0" in listed
    moth_a = occurrences.select(occurrences.load(Tables(open_location(tables))).rows, camera="sheet")
    oid = moth_a.sort_values("frames").iloc[-1]["occurrence_id"]
    assert main(["occurrences", "split", oid, "--frame", "6", "--tables", tables, "--who", "ann"]) == 0
    assert "split_occurrence" in capsys.readouterr().out
    [cut] = DecisionsLog(open_location(tables)).read()
    assert isinstance(cut, SplitOccurrence) and cut.who == "ann" and cut.occurrence_id == oid
    assert main(["occurrences", "split", oid, "--frame", "99", "--tables", tables]) != 0
    assert "--frame must be 0..11" in capsys.readouterr().err
