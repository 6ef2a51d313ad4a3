"""A track that never moves, over tables (issue 69): flagged, not counted, and a person's word wins."""

from __future__ import annotations

from batch.postprocessing import occurrences
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import OCCURRENCES
from tests.fixtures.occurrences import SHEET_MODEL, write_sheet_tables
from tests.fixtures.postprocess import postprocess

# moth A sits 12 frames within an IoU of 0.5 of its place: under this rule a fixed thing (moth B has 8 frames)
STILL = {"appearance": "none", "static_iou": 0.5, "static_min_frames": 10}


def test_a_flagged_occurrence_is_not_counted_until_a_person_identifies_it(tmp_path):
    sheet = write_sheet_tables(tmp_path / "sheet")
    first = postprocess(str(sheet), "track", STILL)
    rows = Tables(open_location(str(sheet))).read(OCCURRENCES, SHEET_MODEL, "1").to_pandas()
    flagged = rows[rows["static"].astype(bool)]
    assert len(flagged) == 1 and flagged.iloc[0]["frames"] == 12 and not flagged.iloc[0]["confirmed"]
    assert rows[rows.filters_hash == first.filters_hash]["confirmed"].sum() == 3  # moth B, moth C, the deer
    shown = occurrences.summary(
        occurrences.find(occurrences.load(Tables(open_location(str(sheet)))), flagged.iloc[0]["occurrence_id"])
    )
    assert shown["static"] is True and shown["folds"] == []
    occurrences.identify(
        occurrences.SetPlace(Tables(open_location(str(sheet)))),
        flagged.iloc[0]["occurrence_id"],
        "moth",
        "ann",
        "it flew off at dawn",
    )
    later = postprocess(str(sheet), "score", {"min_score": 0.2})  # a later run keeps the person's word
    rows = Tables(open_location(str(sheet))).read(OCCURRENCES, SHEET_MODEL, "1").to_pandas()
    mine = rows[(rows.filters_hash == later.filters_hash) & rows["static"].astype(bool)]
    assert len(mine) == 1 and mine.iloc[0]["confirmed"] and mine.iloc[0]["determined_by"] == "human"
    assert rows[rows.filters_hash == later.filters_hash]["confirmed"].sum() == 4
