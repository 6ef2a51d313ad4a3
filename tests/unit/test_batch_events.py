"""Events (visits grouped by capture-time gap): the grouping rule, the `events` table, Camtrap DP event level."""

from __future__ import annotations

import csv
import datetime as dt
import os

import pandas as pd
import pytest

from batch.export.options import ExportOptions
from batch.export.run import run_export
from batch.options import parse_options
from batch.postprocessing.events import group_events, read_events, run_events
from batch.postprocessing.options import EventsOptions
from ground.errors import OptionsError
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from tests.fixtures.review import two_version_tables

T0 = dt.datetime(2024, 5, 1, 6, 0, 0)


def image(uri, camera, seconds, status="ok", count=1):
    return {"uri": uri, "camera_id": camera, "capture_time": T0 + dt.timedelta(seconds=seconds) if seconds is not None
            else pd.NaT, "status": status, "detection_count": count}


def test_a_gap_longer_than_gap_s_starts_a_new_event_per_camera():
    images = pd.DataFrame([
        image("a1", "A", 0), image("a2", "A", 30), image("a3", "A", 90, count=0),  # 60 s apart: same event
        image("a4", "A", 151),  # 61 s after a3: a new event
        image("b1", "B", 10), image("b2", "B", 20),  # another camera: its own events
        image("bad", "B", 25, status="failed", count=None), image("notime", "B", None),
    ])
    dets = pd.DataFrame([
        {"uri": "a1", "label": "deer", "score": 0.9}, {"uri": "a2", "label": "deer", "score": 0.5},
        {"uri": "a2", "label": "deer", "score": 0.4}, {"uri": "a2", "label": "fox", "score": 0.3},
        {"uri": "a4", "label": "fox", "score": 0.7},
    ])
    ev = group_events(images, dets, gap_s=60, filters_hash="h").set_index("event_id")
    assert list(ev.index) == ["A_20240501T060000", "A_20240501T060231", "B_20240501T060010"]
    first = ev.loc["A_20240501T060000"]
    assert (first.images, first.images_with_detections, first.duration_s) == (3, 2, 90.0)
    assert list(first.uris) == ["a1", "a2", "a3"]
    # count = the most boxes of a label in one frame (the same deer is in every frame), not their sum
    assert list(first.labels) == ["deer", "fox"] and list(first.label_counts) == [2, 1]
    assert list(first.label_max_scores) == [0.9, 0.3] and first.max_score == 0.9
    blank = ev.loc["B_20240501T060010"]
    assert list(blank.labels) == [] and pd.isna(blank.max_score) and list(blank.uris) == ["b1", "b2"]
    assert len(group_events(images, dets, gap_s=1000)) == 2  # one event per camera


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("events")
    spec, archive, out, store = two_version_tables(d)
    return {"spec": spec, "out": out, "dir": d}


def test_events_table_is_written_next_to_the_others_and_rerun_replaces_it(env):
    spec, out = env["spec"], env["out"]
    report = run_events(EventsOptions(tables=str(out), gap_s=3 * 3600, model="trapcam:1"))
    # cam01 frames 2 h apart on 2024-05-01 (+ one on 05-02); cam02 hourly; cam03 daily
    assert report.events == 1 + 1 + 1 + 8 and report.failed == len(spec.failed)
    assert report.images == len(spec.good) and report.without_time == 0
    path = report.written
    assert path.startswith(str(out / "events" / "model_name=trapcam" / "model_version=1"))
    first = read_events(Tables(open_location(str(out))), "trapcam", "1", report.filters_hash, 3 * 3600)
    again = run_events(EventsOptions(tables=str(out), gap_s=3 * 3600, model="trapcam:1"))
    assert again.written == path and len(os.listdir(os.path.dirname(path))) == 1  # replaced, not added
    second = read_events(Tables(open_location(str(out))), "trapcam", "1", report.filters_hash, 3 * 3600)
    assert first.astype(str).equals(second.astype(str))
    # a camera at a time
    sliced = run_events(EventsOptions(tables=str(out), gap_s=3 * 3600, model="trapcam:1"), slice_images=1)
    assert (sliced.events, sliced.images, sliced.failed, sliced.without_time) == \
        (report.events, report.images, report.failed, report.without_time)
    assert (
        read_events(Tables(open_location(str(out))), "trapcam", "1", report.filters_hash, 3 * 3600)
        .astype(str)
        .equals(first.astype(str))
    )
    frame = pd.read_parquet(out / "events")  # hive-partitioned like images/detections
    assert set(frame["model_version"].astype(str)) == {"1"} and len(frame) == report.events
    with pytest.raises(OptionsError, match="--gap-s: .*greater than 0"):  # at the door, before any table is read
        parse_options(EventsOptions, {"tables": str(out), "gap_s": 0}, "events")


def test_camtrap_dp_event_level_observations(env, tmp_path):
    out = env["out"]
    run_export(ExportOptions(tables=str(out), format="camtrap-dp", out=str(tmp_path / "ev"), model="trapcam:1",
                             observation_level="event", gap_s=3 * 3600, allow_missing_deployments=True))
    rows = list(csv.DictReader(open(tmp_path / "ev" / "observations.csv")))
    assert rows and {r["observationLevel"] for r in rows} == {"event"} and all(r["mediaID"] == "" for r in rows)
    events = run_events(EventsOptions(tables=str(out), gap_s=3 * 3600, model="trapcam:1", dry_run=True))
    assert len({r["eventID"] for r in rows}) == events.events
    deer = [r for r in rows if r["observationTags"].startswith("label:deer")]
    assert deer and all(int(r["count"]) == 2 and r["eventStart"] <= r["eventEnd"] for r in deer)
    run_export(ExportOptions(tables=str(out), format="camtrap-dp", out=str(tmp_path / "both"), model="trapcam:1",
                             observation_level="both", gap_s=3 * 3600, allow_missing_deployments=True))
    both = list(csv.DictReader(open(tmp_path / "both" / "observations.csv")))
    media_rows = [r for r in both if r["observationLevel"] == "media"]
    event_ids = {r["eventID"] for r in both if r["observationLevel"] == "event"}
    assert media_rows and all(r["eventID"] in event_ids for r in media_rows)


def test_event_level_observations_carry_the_species_when_a_classifier_ran():
    from types import SimpleNamespace

    from batch.export.base import ExportRows
    from batch.export.camtrap import camtrap_dp
    from batch.export.camtrap_options import CamtrapOptions

    def cls(label, score, path):
        return {"label": label, "score": score, "taxon_path": path, "classifier_name": "species",
                "classifier_version": "2"}

    images = pd.DataFrame([{**image(u, "A", t, count=n), "content_id": "c", "rel_path": f"A/{u}.jpg",
                            "processed_at": T0} for u, t, n in (("f1", 0, 2), ("f2", 10, 1), ("f3", 20, 0))])
    box = {"bbox_x": 0.1, "bbox_y": 0.1, "bbox_w": 0.2, "bbox_h": 0.2}
    deer = cls("deer", 0.8, ["Animalia", "Cervidae", "Capreolus capreolus"])
    dets = pd.DataFrame([
        {"uri": "f1", "label": "animal", "score": 0.9, **box, "classifications": [deer]},
        {"uri": "f1", "label": "animal", "score": 0.7, **box, "classifications": [{**deer, "score": 0.6}]},
        {"uri": "f2", "label": "animal", "score": 0.6, **box, "classifications": [cls("fox", 0.95, [])]},
        {"uri": "f2", "label": "person", "score": 0.5, **box, "classifications": []},
    ])
    tset = SimpleNamespace(model_name="md", model_version="5", filters_hash="h", labels=["animal", "person"])
    options = CamtrapOptions(tables="t", out="o", format="camtrap-dp", observation_level="event", gap_s=60)
    _, rows = camtrap_dp(ExportRows(images, dets), tset, options)
    by_name = {(r.get("scientificName", ""), r["observationTags"].split("|")[0]): r for r in rows}
    assert set(by_name) == {("Capreolus capreolus", "label:animal"), ("fox", "label:animal"), ("", "label:person")}
    roe = by_name[("Capreolus capreolus", "label:animal")]
    assert roe["count"] == 2 and roe["classificationProbability"] == 0.8  # two in one frame; the best answer
    assert roe["classifiedBy"] == "md 5 + species 2" and roe["observationType"] == "animal"
    assert by_name[("fox", "label:animal")]["count"] == 1
    person = by_name[("", "label:person")]
    assert person["classificationProbability"] == 0.5 and person["classifiedBy"] == "md 5"
    assert len({r["observationID"] for r in rows}) == 3 and {r["eventID"] for r in rows} == {"A_20240501T060000"}
