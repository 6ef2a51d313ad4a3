"""`trapline identify` over stored tables: clustering, stable ids, decisions honoured by a re-run, bad input."""

from __future__ import annotations

import csv
import json

import pytest

from batch.identify.options import IdentifyOptions
from batch.identify.run import record_decision, run_identify
from ground.errors import DecisionError, LabelNotCoveredError
from model_store.core.identify.cluster import cluster, stable_ids
from model_store.store.store import ModelStore
from model_store.tables.archive import open_location
from model_store.tables.decisions import (
    ConfirmSighting,
    DecisionsLog,
    DetectionKey,
    MergeIndividuals,
    NameIndividual,
    RejectSighting,
    make,
)
from model_store.tables.identities import INDIVIDUALS, SIGHTINGS, read_result
from tests.fixtures.reid_tables import write_identity_tables
from trapline.cli import main

KEYPOINTS = {"backend": "keypoints", "applies_to": ["zebra"]}


def test_average_linkage_does_not_chain_two_individuals_through_one_chance_match():
    pairs = [(0, 1, 0.99), (1, 2, 0.98), (0, 2, 0.97), (3, 4, 0.99), (4, 5, 0.99), (3, 5, 0.95),
             (2, 3, 0.9)]  # one chance match between the two triples
    assert list(cluster(6, pairs, 0.5)) == [0, 0, 0, 1, 1, 1]
    apart = cluster(6, pairs, 0.5, cannot_link=[(0, 1)])
    assert apart[0] != apart[1] and apart[3] == apart[4] == apart[5]
    joined = cluster(6, pairs, 0.5, must_link=[(0, 5)])
    assert joined[0] == joined[5]


def test_stable_ids_follow_the_previous_run_by_overlap():
    ids, changes = stable_ids([0, 0, 1, 1, 2], ["A", "A", "B", "A", None], lambda c: f"new{c}")
    assert ids == ["A", "A", "B", "B", "new2"]
    assert changes.split == {"A": ["B"]} and changes.new == ["new2"]
    ids, changes = stable_ids([0, 0, 0], ["A", "B", "B"], lambda c: f"new{c}")
    assert ids == ["B", "B", "B"] and changes.merged == {"B": ["A"]}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("reid")
    url, truth = write_identity_tables(root, individuals=5, views=3, tiny=True)
    store = str(root / "models")
    ModelStore(store).publish(None, "coats", "1", KEYPOINTS)
    ModelStore(store).publish(None, "coats", "2", {**KEYPOINTS, "keypoints": {"ratio": 0.75}})
    truth_csv = root / "truth.csv"
    with open(truth_csv, "w", newline="") as f:
        w = csv.DictWriter(f, ["rel_path", "individual"])
        w.writeheader()
        w.writerows({"rel_path": t["rel_path"], "individual": t["individual"]} for t in truth)
    return root, url, store, str(truth_csv)


def _key(row) -> DetectionKey:
    return DetectionKey(uri=row.uri, content_id=row.content_id, detection_index=int(row.detection_index))


def test_identify_finds_the_individuals_and_a_rerun_honours_every_decision(archive, capsys):
    root, url, store, truth = archive
    assert main(["identify", "--tables", url, "--identifier", "coats:1", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "identified 15 of 16 sightings with coats:1 (1 unidentifiable)" in out
    assert "tables    wrote {sightings,individuals} (run_id=" in out  # the summary names every table written
    # the action and --truth are flags generated from their model (IdentifyAction), checked as every option is
    assert main(["identify", "evaluate", "--tables", url, "--truth", str(truth), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["top1"] == 1.0 and figures["ari"] == 1.0 and figures["individuals_found"] == 5
    assert main(["identify", "evaluate", "--tables", url]) == 2
    assert "identify evaluate needs --truth CSV" in capsys.readouterr().err
    assert main(["identify", "nope", "--tables", url]) == 2
    err = capsys.readouterr().err  # named as it is given (a positional), not as a --action flag there is not
    assert "{run,evaluate,weekly}: Input should be 'run', 'evaluate' or 'weekly'" in err and "--action" not in err
    s = read_result(open_location(url), SIGHTINGS)
    tiny = s[s["decision"] == "unidentifiable"]
    assert list(tiny["reason"]) == ["snip 12x10 px is smaller than 24 px on its shorter side"]
    assert tiny["individual_id"].isna().all()
    s = s[s["decision"] != "unidentifiable"]
    assert set(s["decision"]) <= {"matched", "new"} and s["identifier_version"].eq("1").all()
    assert len(read_result(open_location(url), INDIVIDUALS)) == 5

    ids = sorted(s["individual_id"].unique())
    a, b = ids[0], ids[1]
    first_a = next(s[s["individual_id"] == a].itertuples())
    first_b = next(s[s["individual_id"] == b].itertuples())
    record_decision(open_location(url), make(NameIndividual, "ana", individual_id=a, name="Stripey"))
    record_decision(open_location(url), make(MergeIndividuals, "ana", individual_id=a, other_id=b))
    other = ids[2]
    lone = next(s[s["individual_id"] == other].itertuples())
    record_decision(open_location(url), make(RejectSighting, "ana", sighting=_key(lone), individual_id=other))
    record_decision(open_location(url), make(ConfirmSighting, "ana", sighting=_key(first_b), individual_id=a))

    # a new identifier version and another threshold: every decision kept, the other ids unchanged
    report = run_identify(IdentifyOptions(tables=str(url), identifier="coats:2", store=str(store), threshold=0.6))
    s2 = read_result(open_location(url), SIGHTINGS)
    by_key = {(r.uri, r.detection_index): r for r in s2.itertuples()}
    assert by_key[(first_a.uri, first_a.detection_index)].individual_id == a
    assert by_key[(first_b.uri, first_b.detection_index)].individual_id == a  # merged into a, confirmed there
    assert by_key[(first_b.uri, first_b.detection_index)].decision == "confirmed"
    assert by_key[(lone.uri, lone.detection_index)].individual_id != other  # the rejected link is not remade
    for i in ids[3:]:
        assert set(s2[s2["individual_id"] == i]["uri"]) == set(s[s["individual_id"] == i]["uri"])
    ind = read_result(open_location(url), INDIVIDUALS).set_index("individual_id")
    assert ind.loc[a, "name"] == "Stripey" and bool(ind.loc[a, "confirmed"]) and ind.loc[a, "sightings"] == 6
    assert b not in ind.index and report.individuals == len(ind)


def test_bad_decisions_and_uncovered_labels_are_refused(archive, tmp_path):
    root, url, store, _ = archive
    if read_result(open_location(url), SIGHTINGS).empty:
        run_identify(IdentifyOptions(tables=str(url), identifier="coats:1", store=str(store)))
    before = len(DecisionsLog(open_location(url)).read())
    with pytest.raises(DecisionError, match="cannot merge individual 'x' into itself") as err:
        make(MergeIndividuals, "ana", individual_id="x", other_id="x")
    assert err.value.status == 422
    with pytest.raises(DecisionError, match="unknown individual 'nobody'"):
        record_decision(open_location(url), make(NameIndividual, "ana", individual_id="nobody", name="N"))
    ghost = DetectionKey(uri="/nowhere.png", content_id="size=1", detection_index=0)
    some = read_result(open_location(url), SIGHTINGS)["individual_id"].iloc[0]
    with pytest.raises(DecisionError, match="unknown sighting /nowhere.png"):
        record_decision(open_location(url), make(ConfirmSighting, "ana", sighting=ghost, individual_id=some))
    assert len(DecisionsLog(open_location(url)).read()) == before  # nothing half-written
    ModelStore(store).publish(None, "deer-coats", "1", {"backend": "keypoints", "applies_to": ["deer"]})
    with pytest.raises(LabelNotCoveredError, match="identifies deer, but the kept detections of det:1 are zebra"):
        run_identify(IdentifyOptions(tables=str(url), identifier="deer-coats:1", store=str(store)))


def test_camtrap_dp_export_names_each_identified_animal(archive, tmp_path):
    from batch.export.options import ExportOptions
    from batch.export.run import run_export
    from model_store.tables.identities import current
    from tests.fixtures.camtrap_dp import META, validate_package

    root, url, store, _ = archive
    deployments = tmp_path / "deployments.csv"
    deployments.write_text("deploymentID,latitude,longitude,deploymentStart,deploymentEnd\n" + "".join(
        f"cam{c},51.0,4.0,2026-04-30T00:00:00Z,2026-06-01T00:00:00Z\n" for c in (0, 1, 2, 9)))
    run_identify(IdentifyOptions(tables=str(url), identifier="coats:1", store=str(store)))
    now = current(open_location(url)).sightings.dropna(subset=["individual_id"])
    meta = tmp_path / "meta.yaml"
    meta.write_text(META)
    report = run_export(ExportOptions(tables=url, format="camtrap-dp", out=str(tmp_path / "dp"),
                                      deployments=str(deployments), package_meta=str(meta)))
    assert report.notes == []
    with open(tmp_path / "dp" / "observations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_file = {r["mediaID"]: r["individualID"] for r in rows}
    assert len(rows) == 16 and sum(1 for r in rows if r["individualID"]) == len(now) == 15  # the tiny box: none
    assert set(by_file.values()) - {""} == set(now["individual_id"])  # people's decisions applied (the merge)
    assert json.loads((tmp_path / "dp" / "datapackage.json").read_text())["project"]["individualAnimals"] is True
    errors, _ = validate_package(tmp_path / "dp")
    assert errors == []


def test_the_report_shows_individuals_per_camera(archive, tmp_path, capsys):
    root, url, store, _ = archive
    run_identify(IdentifyOptions(tables=str(url), identifier="coats:1", store=str(store)))
    some = read_result(open_location(url), SIGHTINGS)["individual_id"].dropna().iloc[-1]
    record_decision(open_location(url), make(NameIndividual, "ana", individual_id=some, name="Zed"))
    assert main(["report", "--tables", url, "--out", str(tmp_path / "r")]) == 0
    html = (tmp_path / "r" / "index.html").read_text()
    assert 'id="individuals"' in html
    from model_store.tables.identities import current

    now = current(open_location(url))
    seen = now.sightings.dropna(subset=["individual_id"])
    for camera, g in seen.groupby("camera_id"):  # one row per camera: its individuals and sightings
        assert f"<td>{camera}</td><td class=\"num\">{g['individual_id'].nunique()}</td>" \
               f"<td class=\"num\">{len(g)}</td>" in html
    assert "Zed" in html  # the name a person gave, beside its cameras


def test_one_identify_run_at_a_time_per_set_of_tables(archive):
    from ground.errors import LeaseHeldError
    from model_store.tables.archive import open_location
    from model_store.tables.lease import RunLease

    root, url, store, _ = archive
    before = read_result(open_location(url), INDIVIDUALS)
    other = RunLease(open_location(url), "identify", "sightings", "20260101T000000Z-other").acquire()
    try:
        with pytest.raises(LeaseHeldError, match="another run holds"):
            run_identify(IdentifyOptions(tables=str(url), identifier="coats:1", store=str(store)))
    finally:
        other.release()
    assert read_result(open_location(url), INDIVIDUALS).equals(before)  # the refused run wrote nothing
    # released: the next one runs
    run_identify(IdentifyOptions(tables=str(url), identifier="coats:1", store=str(store)))


def test_the_newest_run_wins_even_within_one_second(tmp_path):
    from model_store.tables.identities import latest_run

    for run in ("20260101T000000Z-zzzzzz", "20260101T000000000002Z-aaaaaa", "20260101T000000000001Z-ffffff",
                "20260101T000001000000Z-000000"):
        d = tmp_path / INDIVIDUALS / f"run_id={run}"
        d.mkdir(parents=True)
        if run != "20260101T000001000000Z-000000":  # begun, never committed: not in force
            (d / "part-0.parquet").write_bytes(b"")
    assert latest_run(open_location(str(tmp_path))) == "20260101T000000000002Z-aaaaaa"
