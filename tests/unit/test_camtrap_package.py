"""A Camtrap DP export is a whole package: frictionless accepts it against the official 1.0.2 profile and
table schemas (local copies, no network), foreign keys included, and refuses a broken one."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re

import pandas as pd
import pytest

from batch.export.camtrap_package import PROFILE_URL, taxonomic
from batch.export.options import ExportOptions
from batch.export.run import run_export
from batch.postprocessing.events import event_id, group_events
from ground.errors import BatchError
from model_store import ModelStore
from model_store.tables.cameras import DEFAULT_CAMERA_ID
from model_store.tables.slices import DEFAULT_SLICE_IMAGES
from tests.fixtures.archive import (
    PATH_PATTERN,
    brightness_config,
    brightness_model,
    build_archive,
    process_without_ray,
    write_local,
)
from tests.fixtures.camtrap_dp import DEPLOYMENTS, META, validate_package


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("camtrap")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(brightness_model(d / "m.onnx"), "trapcam", "1", brightness_config())
    archive = write_local(build_archive(), d / "archive")
    out = d / "tables"
    process_without_ray(str(archive), str(out), store.root, "trapcam:1", path_pattern=PATH_PATTERN)
    (d / "deployments.csv").write_text(DEPLOYMENTS)
    (d / "meta.yaml").write_text(META)
    return {"dir": d, "out": out, "deployments": d / "deployments.csv", "meta": d / "meta.yaml"}


def export(env, dst, slice_images=DEFAULT_SLICE_IMAGES, **kw):
    args = {"deployments": str(env["deployments"]), "package_meta": str(env["meta"]), "timezone": "+02:00", **kw}
    return run_export(ExportOptions(tables=str(env["out"]), format="camtrap-dp", out=str(dst), gap_s=3 * 3600, **args),
                      slice_images=slice_images)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def rewrite(path, change):
    table = rows(path)
    change(table)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(table)


@pytest.mark.parametrize("level", ["media", "event", "both"])
def test_every_observation_level_is_a_valid_camtrap_dp_package(env, tmp_path, level):
    report = export(env, tmp_path / "dp", observation_level=level)
    assert report.notes == []
    errors, served = validate_package(tmp_path / "dp")
    assert errors == []
    # the official profile and all three table schemas were applied (from the local copies)
    assert {PROFILE_URL} | {u for u in served if u.endswith("-table-schema.json")} <= set(served)
    assert len({u for u in served if u.endswith("-table-schema.json")}) == 3
    package = json.loads((tmp_path / "dp" / "datapackage.json").read_text())
    assert package["profile"] == PROFILE_URL  # the published URL, not a local path
    assert [r["schema"] for r in package["resources"]] == [
        f"https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/{t}-table-schema.json"
        for t in ("deployments", "media", "observations")]
    assert package["project"]["observationLevel"] == (["media", "event"] if level == "both" else [level])
    assert package["temporal"] == {"start": "2024-05-01", "end": "2024-05-27"}
    assert package["spatial"]["type"] == "Polygon"
    assert package["spatial"]["coordinates"][0][0] == [4.352, 51.0501]
    assert package["contributors"][0]["title"] == "Ada Lovelace" and len(package["licenses"]) == 2
    observations = rows(tmp_path / "dp" / "observations.csv")
    assert {o["observationLevel"] for o in observations} == ({"media", "event"} if level == "both" else {level})
    deployments = {d["deploymentID"]: d for d in rows(tmp_path / "dp" / "deployments.csv")}
    assert set(deployments) == {"cam01", "cam02", "cam03"}
    # a start without an offset is local time: --timezone; one with an offset keeps it
    assert deployments["cam01"]["deploymentStart"] == "2024-04-29T09:00:00+02:00"
    assert deployments["cam03"]["deploymentEnd"] == "2024-06-30T00:00:00Z"
    assert deployments["cam01"]["baitUse"] == "false" and deployments["cam01"]["cameraHeight"] == "0.5"


def test_the_check_fails_on_a_broken_deployment_id_or_an_observation_type_outside_the_vocabulary(env, tmp_path):
    export(env, tmp_path / "dp", observation_level="both")
    assert validate_package(tmp_path / "dp")[0] == []

    def break_deployment(table):
        table[0]["deploymentID"] = "cam99"

    rewrite(tmp_path / "dp" / "observations.csv", break_deployment)
    errors, _ = validate_package(tmp_path / "dp")
    assert any("foreign-key" in e and "cam99" in e for e in errors), errors

    export(env, tmp_path / "dp2")

    def ghost(table):
        table[0]["observationType"] = "ghost"

    rewrite(tmp_path / "dp2" / "observations.csv", ghost)
    errors, _ = validate_package(tmp_path / "dp2")
    assert len(errors) == 1 and "constraint-error" in errors[0] and "enum" in errors[0], errors

    export(env, tmp_path / "dp3")
    package = json.loads((tmp_path / "dp3" / "datapackage.json").read_text())
    del package["project"]["samplingDesign"]
    (tmp_path / "dp3" / "datapackage.json").write_text(json.dumps(package))
    errors, _ = validate_package(tmp_path / "dp3")
    assert errors and all("samplingDesign" in e for e in errors), errors


def test_a_camera_without_a_deployment_is_refused_unless_allowed(env, tmp_path):
    partial = tmp_path / "two.csv"
    partial.write_text("\n".join(DEPLOYMENTS.splitlines()[:3]) + "\n")  # cam01, cam02
    with pytest.raises(BatchError, match=r"^no deployment for camera\(s\) cam03: add them to --deployments"):
        export(env, tmp_path / "dp", deployments=str(partial))
    assert not (tmp_path / "dp").exists()
    report = export(env, tmp_path / "dp", deployments=str(partial), allow_missing_deployments=True)
    assert any("cam03 written without coordinates" in n for n in report.notes)
    cam03 = next(d for d in rows(tmp_path / "dp" / "deployments.csv") if d["deploymentID"] == "cam03")
    assert cam03["latitude"] == cam03["longitude"] == ""
    assert (cam03["deploymentStart"], cam03["deploymentEnd"]) == ("2024-05-20T09:00:00Z", "2024-05-27T09:00:00Z")
    errors, _ = validate_package(tmp_path / "dp")  # as the note says: not publishable yet
    assert sorted(e.split(": ")[2] for e in errors) == ["latitude", "longitude"], errors
    assert all(e.startswith("deployments: constraint-error") for e in errors)


def test_without_package_meta_the_export_says_what_the_package_lacks(env, tmp_path):
    report = export(env, tmp_path / "dp", package_meta=None)
    assert len(report.notes) == 1
    assert "lacks contributors, project.title, project.samplingDesign, project.captureMethod:" in report.notes[0]
    assert validate_package(tmp_path / "dp")[0]


@pytest.mark.parametrize(("text", "suffix", "message"), [
    ("deploymentID,latitude,longitude,deploymentStart,deploymentEnd\ncam01,95,4,2024-05-01,2024-05-02\n", ".csv",
     r"row 1: latitude: Input should be less than or equal to 90 \(got '95'\)"),
    ("deploymentID,latitude,longitude,deploymentStart,deploymentEnd,featureType\n"
     "cam01,51,4,2024-05-01,2024-05-02,road\n", ".csv", r"featureType: .* \(got 'road'\)"),
    ("deploymentID,latitude,longitude,deploymentStart,deploymentEnd,elevation\n"
     "cam01,51,4,2024-05-01,2024-05-02,10\n", ".csv", r"elevation: Extra inputs are not permitted"),
    ('{"cam01": {"latitude": 51, "longitude": 4, "deploymentStart": "May 1st", "deploymentEnd": "2024-05-02"}}',
     ".json", r"entry 1: deploymentStart: .*not an ISO 8601 time: 'May 1st'"),
    ('[{"deploymentID": "cam01", "latitude": 51, "longitude": 4, "deploymentStart": "2024-05-03", '
     '"deploymentEnd": "2024-05-02"}]', ".json", r"deploymentEnd '2024-05-02' is before deploymentStart"),
])
def test_a_bad_deployments_file_is_refused_with_the_row_and_value(env, tmp_path, text, suffix, message):
    path = tmp_path / f"deployments{suffix}"
    path.write_text(text)
    with pytest.raises(BatchError, match=message):
        export(env, tmp_path / "dp", deployments=str(path))


def test_a_bad_package_meta_is_refused_with_the_value(env, tmp_path):
    meta = tmp_path / "meta.yaml"
    meta.write_text("project: {title: x, samplingDesign: random}\n")
    with pytest.raises(BatchError, match=r"project.samplingDesign: .* \(got 'random'\)"):
        export(env, tmp_path / "dp", package_meta=str(meta))
    meta.write_text("licenses: [{name: CC0-1.0, scope: data}]\n")
    with pytest.raises(BatchError, match="scope: media"):
        export(env, tmp_path / "dp", package_meta=str(meta))


@pytest.mark.parametrize("level", ["media", "both"])
def test_a_package_written_a_camera_at_a_time_is_the_package_written_at_once(env, tmp_path, level):
    whole = export(env, tmp_path / "whole", observation_level=level)
    sliced = export(env, tmp_path / "sliced", observation_level=level, slice_images=1)  # each camera a slice
    assert (sliced.images, sliced.failed, sliced.detections) == (whole.images, whole.failed, whole.detections)
    assert sliced.notes == whole.notes
    for name in ("deployments.csv", "media.csv", "observations.csv"):
        a, b = rows(tmp_path / "whole" / name), rows(tmp_path / "sliced" / name)
        key = "observationID" if name == "observations.csv" else next(iter(a[0]))
        assert sorted(b, key=lambda r: r[key]) == sorted(a, key=lambda r: r[key]) and len(a) >= 3
    packages = [json.loads((tmp_path / d / "datapackage.json").read_text()) for d in ("whole", "sliced")]
    for p in packages:
        p.pop("created")
    assert packages[0] == packages[1]
    assert validate_package(tmp_path / "sliced")[0] == []


def test_a_refused_export_puts_no_file_in_place_even_after_writing_slices(env, tmp_path):
    partial = tmp_path / "two.csv"
    partial.write_text("\n".join(DEPLOYMENTS.splitlines()[:3]) + "\n")  # cam01, cam02: cam03 comes last
    with pytest.raises(BatchError, match=r"^no deployment for camera\(s\) cam03"):
        export(env, tmp_path / "dp", deployments=str(partial), slice_images=1)
    assert not (tmp_path / "dp").exists()
    (tmp_path / "dp").mkdir()
    (tmp_path / "dp" / "media.csv").write_text("an earlier export\n")
    with pytest.raises(BatchError):
        export(env, tmp_path / "dp", deployments=str(partial), slice_images=1)
    assert [p.name for p in (tmp_path / "dp").iterdir()] == ["media.csv"]  # no temp file left beside it
    assert (tmp_path / "dp" / "media.csv").read_text() == "an earlier export\n"


def test_taxonomic_coverage_comes_from_the_observed_names_and_the_classifier_taxonomy():
    classifier = {"taxonomy": {"red_fox": ["Mammalia", "Canidae", "Vulpes vulpes"],
                               "grey_wolf": ["Mammalia", "Canidae", "Canis lupus"]},
                  "taxonomy_ranks": ["class", "family", "species"]}
    observations = [{"scientificName": "Vulpes vulpes"}, {"scientificName": "Canidae"},
                    {"scientificName": "Vulpes vulpes"}, {"scientificName": "thing"}, {}]
    assert taxonomic([o.get("scientificName") for o in observations], [classifier]) == [
        {"scientificName": "Canidae", "taxonRank": "family", "class": "Mammalia"},
        {"scientificName": "Vulpes vulpes", "taxonRank": "species", "class": "Mammalia", "family": "Canidae"},
        {"scientificName": "thing"},
    ]


def test_images_without_a_camera_get_the_stated_default_id_never_nan():
    t0 = dt.datetime(2025, 11, 25, 3, 17, 27)
    images = pd.DataFrame([
        {"uri": "a", "camera_id": float("nan"), "capture_time": t0, "status": "ok", "detection_count": 0},
        {"uri": "b", "camera_id": None, "capture_time": t0 + dt.timedelta(seconds=5), "status": "ok",
         "detection_count": 0},
    ])
    ev = group_events(images, pd.DataFrame(), gap_s=60)
    assert list(ev["event_id"]) == [f"{DEFAULT_CAMERA_ID}_20251125T031727"]
    assert list(ev["camera_id"]) == [DEFAULT_CAMERA_ID]
    assert event_id(float("nan"), t0) == "unknown_20251125T031727" and DEFAULT_CAMERA_ID == "unknown"


def test_tables_with_null_camera_ids_never_show_nan_or_none(env, tmp_path):
    """Tables written before the default existed hold null camera ids: events, exports and report say `unknown`."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from batch.review import ReportOptions, build_report

    tables = tmp_path / "tables"
    shutil.copytree(env["out"], tables)
    for path in (tables / "images").rglob("*.parquet"):
        frame = pd.read_parquet(path)
        frame["camera_id"] = [None if c == "cam03" else c for c in frame["camera_id"]]
        meta = pq.read_schema(path).metadata
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(meta), path)
    deployments = tmp_path / "deployments.csv"
    deployments.write_text(DEPLOYMENTS.replace("\ncam03,", "\nunknown,"))
    run_export(ExportOptions(tables=str(tables), format="camtrap-dp", out=str(tmp_path / "dp"),
                             deployments=str(deployments), package_meta=str(env["meta"]), observation_level="both",
                             gap_s=3 * 3600))
    assert validate_package(tmp_path / "dp")[0] == []
    observations = rows(tmp_path / "dp" / "observations.csv")
    assert {o["deploymentID"] for o in observations} == {"cam01", "cam02", "unknown"}
    assert any(o["eventID"].startswith("unknown_2024") for o in observations)
    for name in ("media.csv", "observations.csv", "deployments.csv"):
        text = (tmp_path / "dp" / name).read_text()
        assert not {"nan", "None", "NaN"} & set(text.replace("\n", ",").replace("_", ",").split(",")), name
    build_report(ReportOptions(str(tables), str(tmp_path / "rep"), per_band=2))
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "<td>unknown</td>" in html and not re.search(r">\s*(nan|None|\(none\))\s*<", html)


def test_images_outside_their_deployment_window_are_named_and_a_relative_file_is_read(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "short.json").write_text(json.dumps({
        "cam01": {"latitude": 51, "longitude": 4, "deploymentStart": "2024-04-29T00:00:00",
                  "deploymentEnd": "2024-05-31T00:00:00"},
        "cam02": {"latitude": 51, "longitude": 4, "deploymentStart": "2024-05-10T10:00:00+02:00",
                  "deploymentEnd": "2024-05-31T00:00:00+02:00"},  # EXIF times 08:00..15:00 local: 2 before
        "cam03": {"latitude": 51, "longitude": 4, "deploymentStart": "2024-05-01T00:00:00Z",
                  "deploymentEnd": "2024-06-30T00:00:00Z", "featureType": "trailGame"}}))
    report = export(env, tmp_path / "dp", deployments="short.json")
    assert report.notes == ["deployments.csv: 2 image(s) of cam02 lie outside its deploymentStart "
                            "2024-05-10T10:00:00+02:00 .. deploymentEnd 2024-05-31T00:00:00+02:00"]
    assert validate_package(tmp_path / "dp")[0] == []
