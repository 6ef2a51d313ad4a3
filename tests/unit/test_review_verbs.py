"""The review verbs that make accuracy measurable (batch/postprocessing/detection_review.py): confirm, reject, relabel,
mark empty, add a missed box. Each is recorded once in the decisions log with who, when and the version it was made
on, refused (nothing written) when what it names is not in the set, and honoured by every later read: the verdicts
(model_store/tables/verdicts.py) and the occurrences' vote (batch/postprocessing/determine.py)."""

from __future__ import annotations

import pytest

from batch.postprocessing import detection_review as review
from batch.postprocessing.determine import determine
from batch.postprocessing.occurrences import SetPlace
from ground.errors import DecisionError, NotFoundError
from model_store.tables.decisions import (
    AddMissedBox,
    ClassifyDetection,
    ConfirmDetection,
    DecisionsLog,
    DetectionKey,
    ImageKey,
    MarkEmpty,
    RejectDetection,
    RevokeDecision,
    make,
)
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.verdicts import PersonVerdicts
from tests.fixtures.occurrences import write_sheet_tables


@pytest.fixture
def sheet(tmp_path):
    tables = write_sheet_tables(tmp_path / "sheet")
    return SetPlace(Tables(open_location(str(tables)))), tmp_path / "sheet" / "archive"


def det(archive, rel: str, index: int = 0) -> DetectionKey:
    return DetectionKey(uri=str(archive / rel), content_id=f"size={len(rel)}", detection_index=index)


def img(archive, rel: str) -> ImageKey:
    return ImageKey(uri=str(archive / rel), content_id=f"size={len(rel)}")


def test_each_verb_is_recorded_with_who_when_and_the_version(sheet):
    place, archive = sheet
    confirmed = review.confirm(place, det(archive, "burst/0.jpg"), "ann", "antlers")
    assert confirmed["action"] == "confirm_detection" and confirmed["label"] == "deer"  # the version's label
    assert confirmed["who"] == "ann" and confirmed["model"] == "sheetcam:1" and confirmed["at"]
    review.reject(place, det(archive, "sheet/007.jpg", 2), "bo", reason="not_animal")
    review.relabel(place, det(archive, "sheet/005.jpg", 1), "Noctua pronuba", "ann")
    review.mark_empty(place, img(archive, "sheet/late0.jpg"), "bo")
    review.add_box(place, img(archive, "sheet/001.jpg"), (0.6, 0.55, 0.04, 0.05), "moth", "ann", "missed")
    logged = DecisionsLog(place.tables.storage).read()
    assert [type(d) for d in logged] == [ConfirmDetection, RejectDetection, ClassifyDetection, MarkEmpty,
                                         AddMissedBox]
    assert all(d.model == "sheetcam:1" and d.filters_hash == "0000000000000000" for d in logged)
    assert logged[-1].bbox == (0.6, 0.55, 0.04, 0.05) and logged[-1].comment == "missed"


def test_what_is_not_in_the_set_is_refused_and_nothing_is_written(sheet):
    place, archive = sheet
    with pytest.raises(NotFoundError, match="no kept detection"):
        review.confirm(place, det(archive, "burst/0.jpg", 3), "ann")
    with pytest.raises(NotFoundError, match="no image"):
        review.mark_empty(place, img(archive, "elsewhere/1.jpg"), "ann")
    with pytest.raises(NotFoundError, match="no image"):  # right uri, another content
        review.mark_empty(place, ImageKey(uri=str(archive / "burst/0.jpg"), content_id="size=1"), "ann")
    with pytest.raises(DecisionError, match="bbox"):
        review.add_box(place, img(archive, "burst/0.jpg"), (0.9, 0.1, 0.2, 0.1), "deer", "ann")  # past the edge
    with pytest.raises(DecisionError, match="reason"):
        review.reject(place, det(archive, "burst/0.jpg"), "ann", reason="ugly")
    assert DecisionsLog(place.tables.storage).read() == []


def test_a_later_read_honours_the_latest_decision_the_version_and_revokes(sheet):
    place, archive = sheet
    burst2, late1 = det(archive, "burst/2.jpg"), det(archive, "sheet/late1.jpg")
    review.reject(place, burst2, "ann")
    review.confirm(place, burst2, "bo")  # the later one stands
    rejected = review.reject(place, det(archive, "burst/3.jpg"), "ann")
    DecisionsLog(place.tables.storage).append(make(RevokeDecision, "ann", revoked_id=rejected["decision_id"]))
    review.add_box(place, img(archive, "sheet/late1.jpg"), (0.1, 0.1, 0.1, 0.1), "moth", "ann")
    review.mark_empty(place, img(archive, "sheet/late1.jpg"), "bo")  # voids the box added before it
    review.add_box(place, img(archive, "sheet/late1.jpg"), (0.5, 0.5, 0.1, 0.1), "moth", "bo")
    six = [det(archive, "sheet/006.jpg", i) for i in (0, 1)]
    review.confirm(place, six[0], "ann")
    review.mark_empty(place, img(archive, "sheet/006.jpg"), "bo")  # later than the confirmation: both rejected
    review.confirm(place, six[1], "ann")  # later than the mark: this one stands
    # a decision about another version of the model is not about this one
    DecisionsLog(place.tables.storage).append(make(RejectDetection, "cy", detection=det(archive, "burst/0.jpg"),
                                           model="sheetcam:2", filters_hash="0000000000000000"))
    v = PersonVerdicts(DecisionsLog(place.tables.storage).read(), "sheetcam:1")
    assert v.get(burst2).label == "deer" and v.get(burst2).decision.who == "bo"
    assert v.get(det(archive, "burst/3.jpg")) is None and v.get(det(archive, "burst/0.jpg")) is None
    assert v.get(late1).label is None and isinstance(v.get(late1).decision, MarkEmpty)
    assert [b.bbox for b in v.added[(late1.uri, late1.content_id)]] == [(0.5, 0.5, 0.1, 0.1)]
    assert v.get(six[0]).label is None and v.get(six[1]).label == "moth"
    assert (
        PersonVerdicts(DecisionsLog(place.tables.storage).read(), "sheetcam:2").get(det(archive, "burst/0.jpg")).label
        is None
    )


def test_the_occurrences_vote_honours_confirmed_and_rejected_detections(sheet):
    place, archive = sheet
    keys = [det(archive, f"burst/{i}.jpg") for i in range(3)]
    votes = [{"uri": k.uri, "content_id": k.content_id, "detection_index": 0, "label": "deer", "score": 0.9}
             for k in keys]
    assert determine(votes).label == "deer"
    review.relabel(place, keys[0], "roe deer", "ann")
    review.confirm(place, keys[1], "ann", label="roe deer")
    review.reject(place, keys[2], "ann")
    verdicts = PersonVerdicts(DecisionsLog(place.tables.storage).read(), "sheetcam:1")
    d = determine(votes, classified=verdicts)
    assert (d.label, d.score) == ("roe deer", 1.0)  # two person votes of 1; the rejected one gives none
    review.mark_empty(place, img(archive, "burst/0.jpg"), "bo")
    review.mark_empty(place, img(archive, "burst/1.jpg"), "bo")
    nothing = determine(votes, classified=PersonVerdicts(DecisionsLog(place.tables.storage).read(), "sheetcam:1"))
    assert nothing.label is None  # no detection left that people say is an animal
