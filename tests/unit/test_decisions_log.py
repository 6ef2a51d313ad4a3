"""The decisions log: append-only, typed, read back in order; a bad decision or a foreign file is an error."""

from __future__ import annotations

import pytest

from ground.errors import DecisionError
from model_store.tables.decisions import (
    DECISIONS_DIR,
    ClassifyDetection,
    DecisionsLog,
    DetectionKey,
    IdentifyOccurrence,
    make,
)
from model_store.tables.locations import open_location


def test_identifications_fold_to_the_latest_and_survive_a_new_reader(tmp_path):
    log = DecisionsLog(open_location(str(tmp_path)))
    key = DetectionKey(uri="/a/1.jpg", content_id="size=1", detection_index=0)
    first = log.append(make(IdentifyOccurrence, "ann", occurrence_id="occ-1", label="fox", detections=[key]))
    second = log.append(make(IdentifyOccurrence, "bob", comment="ear tufts", occurrence_id="occ-1", label="lynx"))
    log.append(make(ClassifyDetection, "ann", detection=key, label="fox"))

    again = DecisionsLog(open_location(str(tmp_path)))  # another process, later
    assert [d.decision_id for d in again.read()][:2] == [first.decision_id, second.decision_id]
    latest = again.latest_identifications()
    assert latest["occ-1"].label == "lynx" and latest["occ-1"].who == "bob" and latest["occ-1"].comment == "ear tufts"
    assert again.latest_classifications()[key].label == "fox"
    assert len(list((tmp_path / DECISIONS_DIR).iterdir())) == 3


def test_a_decision_is_never_overwritten(tmp_path):
    log = DecisionsLog(open_location(str(tmp_path)))
    d = log.append(make(IdentifyOccurrence, "ann", occurrence_id="occ-1", label="fox"))
    with pytest.raises(DecisionError, match="already in the log"):
        log.append(d.model_copy(update={"label": "wolf"}))
    assert log.latest_identifications()["occ-1"].label == "fox"


def test_a_bad_decision_names_its_field_and_writes_nothing(tmp_path):
    log = DecisionsLog(open_location(str(tmp_path)))
    with pytest.raises(DecisionError, match="label") as err:
        make(IdentifyOccurrence, "ann", occurrence_id="occ-1", label="")
    assert err.value.status == 422 and err.value.extra["field"] == "label"
    with pytest.raises(DecisionError, match="who"):
        make(IdentifyOccurrence, "", occurrence_id="occ-1", label="fox")
    assert log.read() == []


def test_a_file_that_is_not_a_decision_is_reported_not_skipped(tmp_path):
    log = DecisionsLog(open_location(str(tmp_path)))
    log.append(make(IdentifyOccurrence, "ann", occurrence_id="occ-1", label="fox"))
    (tmp_path / DECISIONS_DIR / "zz.json").write_text('{"action": "explode"}')
    with pytest.raises(DecisionError, match="zz.json is not a decision"):
        log.read()
