"""Counts that mean animals: `trapline events` per event and per camera and night, Camtrap DP event-level `count`
from occurrences (validated against the 1.0.2 standard), and the occurrence id on MegaDetector / COCO boxes."""

from __future__ import annotations

import csv
import json

import pytest

from batch.export.options import ExportOptions
from batch.export.run import run_export
from batch.postprocessing import occurrences
from batch.postprocessing.events import period_of, read_events, run_events
from batch.postprocessing.options import EventsOptions
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from tests.fixtures.camtrap_dp import META, validate_package
from tests.fixtures.occurrences import START, write_sheet_tables
from tests.fixtures.postprocess import postprocess
from trapline.cli import main


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    tables = write_sheet_tables(tmp_path_factory.mktemp("counts") / "sheet")
    postprocess(str(tables), "track", {})
    deer = occurrences.load(Tables(open_location(str(tables)))).rows.query("camera_id == 'burst'").iloc[0]
    occurrences.identify(
        occurrences.SetPlace(Tables(open_location(str(tables)))), deer["occurrence_id"], "Capreolus capreolus", "ann"
    )
    return tables


def test_nights_are_named_by_their_evening():
    assert period_of(START) == "night 2026-06-01"
    assert period_of(START.replace(day=2, hour=5)) == "night 2026-06-01"
    assert period_of(START.replace(day=2, hour=6)) == "day 2026-06-02"


def test_events_count_occurrences_beside_the_max_per_frame_count(sheet, capsys):
    report = run_events(EventsOptions(tables=str(sheet), gap_s=60))
    assert report.occurrences == 4  # moths A, B, C and the deer; the lone speck is not an animal
    # each camera with its own animals
    sliced = run_events(EventsOptions(tables=str(sheet), gap_s=60, dry_run=True), slice_images=1)
    assert (sliced.occurrences, sliced.periods, sliced.events) == (report.occurrences, report.periods, report.events)
    assert report.periods == [
        {
            "camera_id": "burst",
            "period": "night 2026-06-01",
            "events": 1,
            "max_per_frame": 1,
            "occurrences": 1,
            "labels": {"Capreolus capreolus": 1},
        },
        {
            "camera_id": "sheet",
            "period": "night 2026-06-01",
            "events": 2,
            "max_per_frame": 3 + 1,
            "occurrences": 3,
            "labels": {"moth": 3},
        },
    ]
    events = read_events(Tables(open_location(str(sheet))), "sheetcam", "1", report.filters_hash, 60).set_index(
        "camera_id"
    )
    first = events.loc["sheet"].sort_values("start").iloc[0]
    assert list(first["label_counts"]) == [3] and first["occurrences"] == 2  # the speck is a box, not an animal
    assert list(first["occurrence_labels"]) == ["moth"] and first["period"] == "night 2026-06-01"
    assert main(["events", "--tables", str(sheet), "--gap-s", "60", "--dry-run"]) == 0
    said = capsys.readouterr().out
    assert "4 animal(s)" in said and "occurrences    3 (moth 3)" in said


def test_camtrap_dp_event_counts_come_from_occurrences_and_the_package_is_valid(sheet, tmp_path):
    dst = tmp_path / "dp"
    (tmp_path / "deployments.csv").write_text(
        "deploymentID,latitude,longitude,deploymentStart,deploymentEnd\n"
        "sheet,51.05,4.35,2026-06-01T20:00:00,2026-06-02T06:00:00\nburst,51.06,4.36,2026-06-01T20:00:00,"
        "2026-06-02T06:00:00\n")
    (tmp_path / "meta.yaml").write_text(META)
    report = run_export(ExportOptions(tables=str(sheet), format="camtrap-dp", out=str(dst), observation_level="both",
                                      gap_s=60, deployments=str(tmp_path / "deployments.csv"),
                                      package_meta=str(tmp_path / "meta.yaml")))
    errors, _ = validate_package(dst)
    assert errors == [] and report.notes == []
    with open(dst / "observations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    events = [r for r in rows if r["observationLevel"] == "event"]
    moths = sorted((r for r in events if r["deploymentID"] == "sheet"), key=lambda r: r["eventStart"])
    assert [r["count"] for r in moths] == ["2", "1"] and moths[0]["classificationMethod"] == "machine"
    [deer] = [r for r in events if r["deploymentID"] == "burst"]
    assert (deer["count"], deer["scientificName"], deer["classificationMethod"], deer["classifiedBy"]) == \
        ("1", "Capreolus capreolus", "human", "ann")
    media = [r for r in rows if r["observationLevel"] == "media" and r["observationType"] != "blank"]
    assert media and all("|occurrence:occ-" in r["observationTags"] for r in media)
    run_export(ExportOptions(tables=str(sheet), format="camtrap-dp", out=str(tmp_path / "sliced"),
                             observation_level="both", gap_s=60, deployments=str(tmp_path / "deployments.csv"),
                             package_meta=str(tmp_path / "meta.yaml")),
               slice_images=1)  # a camera at a time: each with its own occurrences, the same animals counted
    with open(tmp_path / "sliced" / "observations.csv", newline="") as f:
        assert sorted(map(tuple, map(dict.items, csv.DictReader(f)))) == sorted(map(tuple, map(dict.items, rows)))


def test_megadetector_and_coco_boxes_name_their_occurrence(sheet, tmp_path):
    run_export(ExportOptions(tables=str(sheet), format="megadetector", out=str(tmp_path / "md.json")))
    md = json.loads((tmp_path / "md.json").read_text())
    boxes = [d for im in md["images"] for d in im["detections"] or []]
    assert len(boxes) == 29 and all(d["occurrence_id"].startswith("occ-") for d in boxes)
    assert len({d["occurrence_id"] for d in boxes}) == 5
    run_export(ExportOptions(tables=str(sheet), format="coco", out=str(tmp_path / "coco.json")))
    results = json.loads((tmp_path / "coco.json").read_text())
    assert {r["occurrence_id"] for r in results} == {d["occurrence_id"] for d in boxes}


def test_the_report_counts_animals_per_camera_and_night_and_names_the_disagreements(sheet, tmp_path, capsys):
    code = main(["report", "--tables", str(sheet), "--out", str(tmp_path / "report")])
    said = capsys.readouterr().out
    assert code == 0 and "animals: 4 confirmed occurrence(s)" in said and "a person's identification on 1" in said
    html = (tmp_path / "report" / "index.html").read_text()
    assert 'id="animals"' in html and "night 2026-06-01" in html
    assert "ann said Capreolus capreolus, the model says deer" in html
