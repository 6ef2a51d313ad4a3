"""Score thresholds from people's reviews (batch/postprocessing/thresholds.py): on generated reviews where the right
threshold is known, the precision at the proposal on the same reviews, the per-camera rule, the labels that cannot
reach the target; then on real tables and a real store: the command, `--publish` (same weights, provenance),
`trapline postprocess --config-from` applying it without inference, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from batch.postprocessing import detection_review as review
from batch.postprocessing.accuracy_stats import NONE, rate
from batch.postprocessing.occurrences import SetPlace
from batch.postprocessing.thresholds import Judged, lowest, proposal, propose
from ground.errors import BatchError
from model_store import ModelStore
from model_store.core.filters import FilterSet
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS
from tests.fixtures.occurrences import write_sheet_tables
from tests.fixtures.onnx_models import fixture_config
from tests.fixtures.postprocess import postprocess
from tests.fixtures.threshold_reviews import season
from tests.unit.test_review_verbs import det, img
from trapline.cli import main


def precision_at(judged, label, t):
    kept = [j for j in judged if j.model == label and j.score is not None and j.score >= t]
    return sum(j.people == label for j in kept) / len(kept)


def test_a_known_threshold_is_found():
    """40 right boxes at 0.60-0.99, then alternately wrong and right going down: precision at 0.57 is 41/43 = 0.953,
    at 0.56 42/44 = 0.955, at 0.55 42/45 = 0.933 and lower never again 0.95. So 0.56."""
    judged = [Judged("deer", "deer", round(0.60 + i / 100, 2)) for i in range(40)]
    judged += [Judged(NONE if i % 2 == 0 else "deer", "deer", round(0.59 - i / 100, 2)) for i in range(50)]
    judged += [Judged("deer", NONE, None)] * 3  # boxes people added: misses at any threshold
    got = lowest(judged, "deer", 0.95, 10)
    assert got["threshold"] == 0.56 and got["precision"] == rate(42, 44) and got["kept"] == 44
    assert got["recall"] == rate(42, 40 + 25 + 3) and got["reason"] is None
    assert lowest(judged, "deer", 0.9, 10)["threshold"] == 0.5  # 45/50 = 0.90; 0.48: 46/52 = 0.885, and below


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_precision_at_the_proposal_reaches_the_target_and_no_lower_score_does(seed):
    judged = season(seed)
    p = propose(judged, 0.95, min_label=10, min_camera=10_000)
    for entry in p["labels"]:
        t = entry["threshold"]
        assert t is not None, entry
        assert precision_at(judged, entry["label"], t) >= 0.95
        assert entry["precision"]["value"] == round(precision_at(judged, entry["label"], t), 6)
        lower = {j.score for j in judged if j.model == entry["label"] and j.score is not None and j.score < t}
        assert all(precision_at(judged, entry["label"], s) < 0.95 for s in lower)
        assert p["filter"]["config"]["min_scores"][entry["label"]] == t
    assert p["filter"] == {"name": "label_score", "config": {"min_scores": p["filter"]["config"]["min_scores"],
                                                            "cameras": {}}}


def test_a_camera_with_evidence_enough_gets_its_own_threshold_else_the_labels():
    clean = [Judged("deer", "deer", s / 100, "clean") for s in range(20, 80)]  # right from 0.2 up
    noisy = [Judged("deer" if s >= 70 else NONE, "deer", s / 100, "noisy") for s in range(20, 80)]
    few = [Judged(NONE, "deer", 0.9, "few")] * 5
    p = propose(clean + noisy + few, 0.95, min_label=10, min_camera=30)
    (deer,) = p["labels"]
    cams = {c["camera_id"]: c for c in deer["cameras"]}
    assert sorted(cams) == ["clean", "noisy"]  # "few" has 5 reviewed detections of deer: below 30, the label's
    assert cams["clean"]["uses"] == "camera" and cams["clean"]["threshold"] == 0.2
    assert cams["noisy"]["uses"] == "camera" and cams["noisy"]["threshold"] == 0.7
    assert p["filter"]["config"]["cameras"] == {"clean": {"deer": 0.2}, "noisy": {"deer": 0.7}}
    hopeless = [Judged(NONE, "deer", s / 100, "bad") for s in range(40)]
    p = propose(clean + hopeless, 0.95, min_label=10, min_camera=30)
    cams = {c["camera_id"]: c for c in p["labels"][0]["cameras"]}
    assert cams["bad"]["uses"] == "label" and "stays below 0.95" in cams["bad"]["reason"]


def test_a_label_that_cannot_reach_the_target_gets_no_threshold_and_says_why():
    judged = [Judged(NONE if i % 2 else "fox", "fox", i / 100) for i in range(40)]  # the top one wrong: never 0.95
    judged += [Judged("boar", "boar", 0.9)] * 4
    p = propose(judged, 0.95)
    fox, boar = p["labels"][1], p["labels"][0]
    assert fox["threshold"] is None and "precision stays below 0.95 at every threshold" in fox["reason"]
    assert fox["best"]["precision"]["value"] < 0.95
    assert boar["threshold"] is None and boar["reason"] == "4 reviewed detection(s) labelled boar; at least 10 needed"
    assert p["filter"]["config"] == {"min_scores": {}, "cameras": {}}
    for bad in (0, -0.1, 1.01):
        with pytest.raises(BatchError, match="target precision must be in"):
            propose(judged, bad)


def test_the_label_score_filter_uses_the_cameras_threshold_where_it_has_one():
    from model_store.core.filters import DetectionArrays

    fs = FilterSet.from_specs([{"name": "label_score", "config": {"min_scores": {"deer": 0.5},
                                                                  "cameras": {"c1": {"deer": 0.8}}}}])
    boxes = np.zeros((3, 4))
    scores, classes = np.array([0.6, 0.6, 0.1]), np.array([0, 0, 1])
    kept, _ = fs.apply(DetectionArrays(boxes, scores, classes, ["deer", "fox"], 10, 10))
    assert kept.tolist() == [True, True, True]  # no camera (a request): the label's; fox has none
    kept, flags = fs.apply(DetectionArrays(boxes, scores, classes, ["deer", "fox"], 10, 10, "c1"))
    assert kept.tolist() == [False, False, True] and flags[0] == ["label_score"]
    with pytest.raises(Exception, match="does not have"):
        fs.check_labels(["moth"])


@pytest.fixture
def reviewed(tmp_path, fixture_models):
    """The sheet's tables with moths reviewed: the 0.9 and 0.8 boxes right, the 0.7 and 0.1 ones not; the five deer
    confirmed. And sheetcam:1 in a store."""
    tables = write_sheet_tables(tmp_path / "sheet")
    archive, place = tmp_path / "sheet" / "archive", SetPlace(Tables(open_location(str(tables))))
    for i in range(12):
        review.confirm(place, det(archive, f"sheet/{i:03d}.jpg", 0), "ann")
        if i >= 4:
            review.reject(place, det(archive, f"sheet/{i:03d}.jpg", 1), "ann")
    review.reject(place, det(archive, "sheet/007.jpg", 2), "ann")
    for i in range(3):
        review.confirm(place, det(archive, f"sheet/late{i}.jpg", 0), "ann")
    for i in range(5):
        review.confirm(place, det(archive, f"burst/{i}.jpg", 0), "ann")
    review.add_box(place, img(archive, "sheet/001.jpg"), (0.6, 0.55, 0.04, 0.05), "moth", "ann")
    store = str(tmp_path / "store")
    ModelStore(store).publish(fixture_models["yolov8"], "sheetcam", "1", fixture_config("yolov8",
                                                                                        labels=["moth", "deer"]))
    return str(tables), store


def cli(capsys, *argv):
    code = main(list(argv))
    said = capsys.readouterr()
    return code, said.out, said.err


def test_the_command_proposes_publishes_and_postprocess_applies_it(reviewed, capsys):
    tables, store = reviewed
    p = proposal(SetPlace(Tables(open_location(tables)), "sheetcam:1"))
    moth, deer = {e["label"]: e for e in p["labels"]}["moth"], {e["label"]: e for e in p["labels"]}["deer"]
    assert moth["threshold"] == 0.8 and moth["precision"] == rate(15, 15) and moth["recall"] == rate(15, 16)
    assert deer["threshold"] is None and "5 reviewed detection(s) labelled deer" in deer["reason"]
    assert p["decisions"]["count"] == 30 and len(p["decisions"]["ids"]) == 30

    code, out, err = cli(capsys, "models", "thresholds", "sheetcam:1", "--tables", tables, "--store", store,
                         "--min-label-evidence", "5", "--publish", "--version", "1-t95")
    assert code == 0, err
    assert "moth                 score >= 0.8000" in out and "deer                 score >= 0.9000" in out
    assert "published sheetcam:1-t95" in out and "--config-from sheetcam:1-t95" in out
    models = ModelStore(store)
    new, old = models.get("sheetcam:1-t95"), models.get("sheetcam:1")
    assert new.sha256 == old.sha256 and models.verify("sheetcam:1-t95")
    assert new.config.filters[-1] == {"name": "label_score", "config": {"min_scores": {"moth": 0.8, "deer": 0.9},
                                                                        "cameras": {}}}
    provenance = json.loads(models.storage.read_bytes("sheetcam", "1-t95", "thresholds.json"))
    assert provenance["source"] == "sheetcam:1" and provenance["target_precision"] == 0.95
    assert provenance["decisions"]["count"] == 30 and provenance["tables"] == Tables(open_location(tables)).url
    assert "30 decision(s)" in models.card("sheetcam:1-t95")

    # served: the new version's detector applies the thresholds itself (what `models promote` swaps in)
    blank = np.zeros((480, 640, 3), np.uint8)
    said = {v: [(d.label, round(d.score, 2)) for d in models.load_detector(f"sheetcam:{v}").predict_batch([blank])[0]
                .detections] for v in ("1", "1-t95")}
    assert said["1"] == [("moth", 0.9), ("deer", 0.7), ("deer", 0.6), ("moth", 0.3)]
    assert said["1-t95"] == [("moth", 0.9)]

    report = postprocess(tables, "label_score", None, config_from="sheetcam:1-t95", store=store)
    kept = Tables(open_location(tables)).read(DETECTIONS, "sheetcam", "1").to_pandas()
    kept = kept[(kept["filters_hash"] == report.filters_hash) & kept["kept"]]
    assert sorted(kept["score"].round(2).unique()) == [0.8, 0.9]  # the 0.7 and 0.1 moths dropped, no inference
    assert report.kept_before == 29 and report.kept_after == 20


def test_bad_inputs_are_refused_clearly(reviewed, tmp_path, capsys):
    tables, store = reviewed
    for target in ("0", "1.5"):
        code, _, err = cli(capsys, "models", "thresholds", "sheetcam:1", "--tables", tables, "--target-precision",
                           target)
        assert code == 2 and "--target-precision" in err
    code, _, err = cli(capsys, "models", "thresholds", "sheetcam:9", "--tables", tables)
    assert code == 2 and "sheetcam:9" in err
    fresh = write_sheet_tables(tmp_path / "fresh")
    code, _, err = cli(capsys, "models", "thresholds", "sheetcam:1", "--tables", str(fresh))
    assert code == 2 and "no reviewed detections of sheetcam:1" in err
    code, _, err = cli(capsys, "models", "thresholds", "sheetcam:1", "--tables", tables, "--publish")
    assert code == 2 and "--publish needs --version" in err
    code, _, err = cli(capsys, "models", "thresholds", "sheetcam:1", "--tables", tables, "--store", store,
                       "--publish", "--version", "1-none")  # deer below 10 reviewed; moth reaches it: publishes
    assert code == 0, err
    code, _, err = cli(capsys, "models", "thresholds", "sheetcam:1", "--tables", tables, "--store", store,
                       "--target-precision", "1", "--min-label-evidence", "30", "--publish", "--version", "1-x")
    assert code == 2 and "no threshold to publish" in err
    assert "1-x" not in ModelStore(store).list_versions("sheetcam")
    code, _, err = cli(capsys, "postprocess", "--tables", tables, "--filter", "label_score", "--config-from",
                       "sheetcam:1", "--store", store)
    assert code == 2 and "sheetcam:1 has no label_score filter" in err


def test_the_proposal_over_http(reviewed, tmp_path):
    import warnings

    from serve.ingress import IngressCore, token_digest
    from trapline.service import service_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    tables, store = reviewed
    fresh = str(write_sheet_tables(tmp_path / "fresh"))
    core = IngressCore({"models": [{"name": "sheetcam"}], "store": store,
                        "jobs": {"roots": [str(tmp_path)], "working_dir_allowed": False}},
                       {}, token_digest("thr-admin"), token_digest("thr-read"), features=service_features())
    with TestClient(core.__serve_build_asgi_app__()) as client:
        def get(path, token="thr-read", **params):
            return client.get(path, params=params, headers={"Authorization": f"Bearer {token}"} if token else {})

        said = get("/v1/models/sheetcam/1/thresholds", tables=tables, target_precision=0.95)
        assert said.status_code == 200, said.text
        assert said.json() == proposal(SetPlace(Tables(open_location(tables)), "sheetcam:1"))
        five = get("/v1/models/sheetcam/1/thresholds", tables=tables, min_label_evidence=5).json()
        assert five["filter"]["config"]["min_scores"] == {"deer": 0.9, "moth": 0.8}
        for bad in (0, 1.5, "x"):
            r = get("/v1/models/sheetcam/1/thresholds", tables=tables, target_precision=bad)
            assert r.status_code == 422 and "target_precision" in r.text
        r = get("/v1/models/sheetcam/9/thresholds", tables=tables)
        assert r.status_code == 422 and "sheetcam:9" in r.text  # no such version in the tables (as accuracy)
        assert get("/v1/models/sheet..cam/1/thresholds", tables=tables).status_code == 404
        r = get("/v1/models/sheetcam/1/thresholds", tables=fresh)
        assert r.status_code == 422 and "no reviewed detections" in r.text
        assert get("/v1/models/sheetcam/1/thresholds", token=None, tables=tables).status_code == 401
