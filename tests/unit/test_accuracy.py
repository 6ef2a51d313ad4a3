"""A version's accuracy from people's decisions (batch/postprocessing/accuracy.py, accuracy_stats.py): a hand-built set
of decisions with known answers, the same figures from scikit-learn on the same decisions, and the Wilson interval
against published values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from batch.postprocessing import detection_review as review
from batch.postprocessing.accuracy import gather, measure
from batch.postprocessing.accuracy_stats import NONE, rate, wilson
from batch.postprocessing.detection_review import Reviewing
from batch.postprocessing.occurrences import SetPlace
from model_store.tables.decisions import DecisionsLog, RevokeDecision, make
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from tests.fixtures.occurrences import write_sheet_tables
from tests.unit.test_review_verbs import det, img


@pytest.mark.parametrize(("k", "n", "low", "high"), [  # Newcombe (1998), Stat. Med. 17:857, Table I, method 3
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
    (29, 29, 0.8830, 1.0)])
def test_the_wilson_interval_gives_the_published_values(k, n, low, high):
    lo, hi = wilson(k, n)
    assert (round(lo, 4), round(hi, 4)) == (low, high)
    assert wilson(0, 0) is None and rate(0, 0) == {"value": None, "low": None, "high": None, "k": 0, "n": 0}


def decide(place: SetPlace, archive) -> None:
    """The hand-built review (the expected figures are worked out in `test_accuracy_from_known_decisions`)."""
    for rel, i in (("sheet/000.jpg", 0), ("sheet/004.jpg", 0), ("sheet/004.jpg", 1), ("burst/0.jpg", 0)):
        review.confirm(place, det(archive, rel, i), "ann")
    review.relabel(place, det(archive, "sheet/005.jpg", 1), "noctua", "ann")
    review.relabel(place, det(archive, "burst/1.jpg"), "roe deer", "ann")
    review.reject(place, det(archive, "sheet/007.jpg", 2), "bo")
    review.reject(place, det(archive, "burst/2.jpg"), "bo")
    review.confirm(place, det(archive, "burst/2.jpg"), "ann")  # later: stands
    gone = review.reject(place, det(archive, "burst/3.jpg"), "bo")
    DecisionsLog(place.tables.storage).append(make(RevokeDecision, "bo", revoked_id=gone["decision_id"]))
    review.mark_empty(place, img(archive, "sheet/late0.jpg"), "bo")
    review.add_box(place, img(archive, "sheet/001.jpg"), (0.6, 0.55, 0.04, 0.05), "moth", "ann")
    review.mark_empty(place, img(archive, "sheet/late1.jpg"), "bo")
    review.add_box(place, img(archive, "sheet/late1.jpg"), (0.5, 0.5, 0.1, 0.1), "moth", "ann")  # after: stands
    review.confirm(place, det(archive, "sheet/006.jpg"), "ann")
    review.mark_empty(place, img(archive, "sheet/006.jpg"), "bo")  # both boxes: false positives
    review.add_box(place, img(archive, "sheet/008.jpg"), (0.5, 0.5, 0.1, 0.1), "moth", "ann")
    review.mark_empty(place, img(archive, "sheet/008.jpg"), "bo")  # voids that box; both boxes false positives


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    root = tmp_path_factory.mktemp("accuracy")
    place = SetPlace(Tables(open_location(str(write_sheet_tables(root / "sheet")))))
    decide(place, root / "sheet" / "archive")
    return place


def test_accuracy_from_known_decisions(reviewed):
    a = measure(reviewed)
    assert a["model"] == "sheetcam:1" and a["interval"] == "wilson"
    # pairs: (moth, moth) x3, (noctua, moth), (NONE, moth) x7, (moth, NONE) x2, (deer, deer) x2, (roe deer, deer)
    d = a["detection"]
    assert (d["tp"], d["fp"], d["fn"]) == (7, 7, 2)
    assert d["precision"] == rate(7, 14) and d["recall"] == rate(7, 9) and d["f1"] == round(14 / 23, 6)
    assert d["label_agreement"] == rate(5, 7)
    labels = {r["label"]: r for r in a["per_label"]}
    assert sorted(labels) == ["deer", "moth", "noctua", "roe deer"]
    assert (labels["moth"]["precision"], labels["moth"]["recall"]) == (rate(3, 11), rate(3, 5))
    assert (labels["deer"]["precision"], labels["deer"]["recall"]) == (rate(2, 3), rate(2, 2))
    assert labels["noctua"]["precision"]["value"] is None and labels["noctua"]["recall"] == rate(0, 1)
    cov = a["coverage"]
    assert cov["images"] == 20 and cov["reviewed_images"] == rate(12, 20)  # burst/3's only decision was revoked
    assert cov["detections"] == 29 and cov["reviewed_detections"] == rate(14, 29) and cov["added_boxes"] == 2
    assert cov["kinds"] == {"confirmed": 5, "relabelled": 2, "rejected": 1, "empty": 6, "missed": 2}
    cams = {c["camera_id"]: c for c in a["per_camera"]}
    assert (cams["sheet"]["tp"], cams["sheet"]["fp"], cams["sheet"]["fn"]) == (4, 7, 2)
    assert (cams["burst"]["tp"], cams["burst"]["fp"], cams["burst"]["fn"]) == (3, 0, 0)
    assert cams["burst"]["reviewed_images"] == 3 and cams["burst"]["label_agreement"] == rate(2, 3)
    assert cams["sheet"]["reviewed_images"] == 9 and cov["reviewed_per_camera"] == {"sheet": 9, "burst": 3}
    burst_labels = {r["label"]: r for r in cams["burst"]["per_label"]}
    assert burst_labels["deer"]["precision"] == rate(2, 3) and burst_labels["roe deer"]["recall"] == rate(0, 1)
    conf = a["confusion"]
    assert conf["labels"][-1] == NONE
    at = {(t, s): conf["counts"][i][j] for i, t in enumerate(conf["labels"]) for j, s in enumerate(conf["labels"])}
    assert at[("moth", "moth")] == 3 and at[("noctua", "moth")] == 1 and at[(NONE, "moth")] == 7
    assert at[("moth", NONE)] == 2 and at[("roe deer", "deer")] == 1 and sum(at.values()) == 16


def test_the_figures_are_scikit_learns_on_the_same_decisions(reviewed):
    evidence, _ = gather(Reviewing.open(reviewed))
    y_true, y_pred = [e.people for e in evidence], [e.model for e in evidence]
    a = measure(reviewed)
    labels = [r["label"] for r in a["per_label"]]
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=np.nan)
    for i, row in enumerate(a["per_label"]):
        for ours, theirs in ((row["precision"]["value"], p[i]), (row["recall"]["value"], r[i])):
            assert (ours is None and np.isnan(theirs)) or ours == pytest.approx(theirs, abs=1e-6)
        assert row["people"] == support[i]
        if row["f1"] is not None and not np.isnan(f[i]):
            assert row["f1"] == pytest.approx(f[i], abs=1e-6)
    bp, br, bf, _ = precision_recall_fscore_support([t != NONE for t in y_true], [s != NONE for s in y_pred],
                                                    average="binary")
    d = a["detection"]
    assert (d["precision"]["value"], d["recall"]["value"], d["f1"]) == pytest.approx((bp, br, bf), abs=1e-6)
    conf = a["confusion"]
    assert np.array_equal(confusion_matrix(y_true, y_pred, labels=conf["labels"]), np.array(conf["counts"]))


def test_every_interval_is_statsmodels_wilson_on_the_same_decisions(reviewed):
    from statsmodels.stats.proportion import proportion_confint

    a = measure(reviewed)
    rates = [a["detection"]["precision"], a["detection"]["recall"]]
    rates += [row[key] for row in a["per_label"] for key in ("precision", "recall")]
    checked = 0
    for r in rates:
        if not r["n"]:
            assert r["low"] is None and r["high"] is None
            continue
        low, high = proportion_confint(r["k"], r["n"], alpha=0.05, method="wilson")
        assert (r["low"], r["high"]) == pytest.approx((low, high), abs=1e-6), r
        checked += 1
    assert checked >= 6
    for k, n in ((0, 10), (10, 10), (3, 7), (1, 1000), (999, 1000), (1, 1)):  # the edges, beside the fixture's
        assert wilson(k, n) == pytest.approx(proportion_confint(k, n, alpha=0.05, method="wilson"), abs=1e-12)


def test_another_version_has_no_evidence_from_this_ones_review(reviewed, tmp_path):
    import shutil

    tables = tmp_path / "tables"
    shutil.copytree(reviewed.tables.url, tables)  # the review's tables, with their log, left as they are for the others
    two = write_sheet_tables(tmp_path / "two", version="2")  # the same images under sheetcam:2
    for table in ("detections", "images"):
        shutil.copytree(two / table / "model_name=sheetcam" / "model_version=2",
                        tables / table / "model_name=sheetcam" / "model_version=2")
    a = measure(SetPlace(Tables(open_location(str(tables))), "sheetcam:2"))
    assert a["model"] == "sheetcam:2" and a["coverage"]["reviewed_images"]["k"] == 0
    assert a["detection"]["precision"]["value"] is None and a["per_label"] == []
    assert (
        measure(SetPlace(Tables(open_location(str(tables))), "sheetcam:1"))["detection"]["tp"] == 7
    )  # version 1's review still counts


def test_the_model_card_carries_the_accuracy_when_tables_are_given(reviewed, fixture_models, tmp_path):
    from batch.models_commands import AccuracyOptions, ShowOptions
    from batch.postprocessing.review_cli import accuracy, show
    from model_store import ModelStore
    from tests.fixtures.onnx_models import fixture_config

    store = str(tmp_path / "store")
    ModelStore(store).publish(fixture_models["yolov8"], "sheetcam", "1", fixture_config("yolov8"))
    plain = show(ShowOptions(ref="sheetcam:1", store=store))
    assert "accuracy" not in plain.data and "accuracy of" not in plain.text
    card = show(ShowOptions(ref="sheetcam:1", store=store, tables=reviewed.tables.url))
    assert card.data["name"] == "sheetcam" and card.data["accuracy"] == measure(reviewed)
    assert card.text.startswith(plain.text)
    assert "precision 0.50 (0.27-0.73, 7/14)" in card.text and "reviewed: 0.60 (0.39-0.78, 12/20) images" in card.text
    printed = accuracy(AccuracyOptions(ref="sheetcam:1", tables=reviewed.tables.url))
    assert printed.text in card.text and printed.data["detection"]["tp"] == 7
