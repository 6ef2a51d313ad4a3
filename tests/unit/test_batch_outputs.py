"""Exports (MegaDetector, COCO, Camtrap DP) and re-filtering of stored detections, on tables built without Ray."""

from __future__ import annotations

import csv
import json
import os

import pytest
from pydantic import ValidationError

from batch.export.camtrap import CAMTRAP_MEDIA_FIELDS, CAMTRAP_OBSERVATION_FIELDS
from batch.export.options import ExportOptions
from batch.export.run import run_export
from batch.reprocess.plan import plan_run
from ground.errors import BatchError, OptionsError
from model_store import FilterConfigError, ModelStore
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from tests.fixtures.archive import (
    PATH_PATTERN,
    brightness_config,
    brightness_model,
    build_archive,
    process_without_ray,
    write_local,
)
from tests.fixtures.postprocess import postprocess

MIN_SIZE = {"min_area_fraction": 0.01}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("outputs")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(brightness_model(d / "m.onnx"), "trapcam", "1", brightness_config())
    spec = build_archive()
    archive = write_local(spec, d / "archive")
    out = d / "tables"
    process_without_ray(str(archive), str(out), store.root, "trapcam:1", path_pattern=PATH_PATTERN)
    return {"dir": d, "store": store, "spec": spec, "archive": archive, "out": out}


def listing(path):
    return sorted(os.path.relpath(os.path.join(r, f), path) for r, _, fs in os.walk(path) for f in fs)


def test_megadetector_export(env, tmp_path):
    spec = env["spec"]
    report = run_export(ExportOptions(tables=str(env["out"]), format="megadetector", out=str(tmp_path / "md.json")))
    md = json.loads((tmp_path / "md.json").read_text())
    assert md["info"]["format_version"] == "1.4" and md["info"]["detector"] == "trapcam 1"
    assert md["detection_categories"] == {"1": "deer", "2": "fox"}
    by_file = {i["file"]: i for i in md["images"]}
    assert sorted(by_file) == spec.images and report.images == len(spec.images)
    for rel, reason in spec.failed.items():
        assert by_file[rel]["failure"].startswith(f"{reason}: ") and by_file[rel]["detections"] is None
    for rel in spec.blank:
        assert by_file[rel]["detections"] == [] and "failure" not in by_file[rel]
    for entry in md["images"]:
        for d in entry["detections"] or []:
            x, y, w, h = d["bbox"]
            assert 0 <= x <= x + w <= 1.0001 and 0 <= y <= y + h <= 1.0001, entry["file"]
    ok = by_file["cam01/2024-05-01/IMG_20240501_080000.jpg"]["detections"]
    assert [d["category"] for d in ok] == ["1", "2", "2", "1"]
    for d in ok:
        assert isinstance(d["conf"], float) and len(d["bbox"]) == 4 and all(0 <= v <= 1 for v in d["bbox"])
    x, y, w, h = ok[0]["bbox"]  # deer on 160x120: x 55..105 of 160, y 45..75 of 120
    assert (x, y, w, h) == pytest.approx((55 / 160, 45 / 120, 50 / 160, 30 / 120), abs=1e-4)


def test_coco_export_has_pixel_boxes_and_an_image_index(env, tmp_path):
    spec = env["spec"]
    run_export(ExportOptions(tables=str(env["out"]), format="coco", out=str(tmp_path / "res.json")))
    results = json.loads((tmp_path / "res.json").read_text())
    index = json.loads((tmp_path / "res.images.json").read_text())
    assert {c["id"]: c["name"] for c in index["categories"]} == {1: "deer", 2: "fox"}
    images = {i["id"]: i for i in index["images"]}
    assert len(images) == len(spec.good)
    assert len(results) == 4 * (len(spec.good) - len(spec.blank))
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score"} and r["image_id"] in images
        img = images[r["image_id"]]
        x, y, w, h = r["bbox"]
        assert 0 <= x <= x + w <= img["width"] + 0.01 and 0 <= y <= y + h <= img["height"] + 0.01
    first = next(r for r in results if images[r["image_id"]]["file_name"].endswith("IMG_20240501_080000.jpg"))
    assert first["bbox"] == pytest.approx([55.0, 45.0, 50.0, 30.0], abs=0.01) and first["category_id"] == 1


def test_the_json_formats_written_a_camera_at_a_time_are_the_documents_written_at_once(env, tmp_path):
    """MegaDetector and COCO stream a slice of whole cameras at a time (bounded memory at any archive size): the
    same document as one read, but for the order of the images (camera by camera) and so COCO's image ids."""
    def export(fmt, name, slices):
        run_export(ExportOptions(tables=str(env["out"]), format=fmt, out=str(tmp_path / name)), slice_images=slices)
        return json.loads((tmp_path / name).read_text())

    whole, sliced = export("megadetector", "md.json", 10_000), export("megadetector", "md-sliced.json", 1)
    assert {k: v for k, v in sliced.items() if k != "images"} == {k: v for k, v in whole.items() if k != "images"}
    assert sorted(sliced["images"], key=lambda e: e["file"]) == sorted(whole["images"], key=lambda e: e["file"])

    def by_file(results, index):
        files = {i["id"]: i["file_name"] for i in index["images"]}
        assert len(files) == len(index["images"])  # ids stay unique across slices
        return sorted((files[r["image_id"]], json.dumps({**r, "image_id": None}, sort_keys=True)) for r in results)

    results, results_sliced = export("coco", "c.json", 10_000), export("coco", "c-sliced.json", 1)
    index, index_sliced = (json.loads((tmp_path / f"{n}.images.json").read_text()) for n in ("c", "c-sliced"))
    assert by_file(results_sliced, index_sliced) == by_file(results, index) and results
    assert {k: v for k, v in index_sliced.items() if k != "images"} == {k: v for k, v in index.items() if k != "images"}
    assert sorted(i["file_name"] for i in index_sliced["images"]) == sorted(i["file_name"] for i in index["images"])


def test_camtrap_dp_export(env, tmp_path):
    spec = env["spec"]
    run_export(ExportOptions(tables=str(env["out"]), format="camtrap-dp", out=str(tmp_path / "dp"), timezone="+02:00",
                             allow_missing_deployments=True))
    with open(tmp_path / "dp" / "media.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CAMTRAP_MEDIA_FIELDS
        media = list(reader)
    with open(tmp_path / "dp" / "observations.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CAMTRAP_OBSERVATION_FIELDS
        obs = list(reader)
    assert len(media) == len(spec.good) and {m["deploymentID"] for m in media} == {"cam01", "cam02", "cam03"}
    assert len({m["mediaID"] for m in media}) == len(media)
    m = next(m for m in media if m["filePath"] == "cam01/2024-05-01/IMG_20240501_080000.jpg")
    assert m["timestamp"] == "2024-05-01T08:00:00+02:00" and m["fileMediatype"] == "image/jpeg"
    # --timezone is the cameras' clock (path, EXIF); an mtime is UTC and stays UTC
    exif = next(m for m in media if m["filePath"] == "cam02/DSC_0001.JPG")
    assert exif["timestamp"] == "2024-05-10T08:00:00+02:00"
    mtime = next(m for m in media if m["filePath"] == "cam03/PICT0001.JPG")
    assert mtime["timestamp"] == "2024-05-20T09:00:00Z"
    assert m["filePublic"] == "false"
    blank = [o for o in obs if o["observationType"] == "blank"]
    animals = [o for o in obs if o["observationType"] == "animal"]
    assert len(blank) == len(spec.blank) and len(animals) == 4 * (len(spec.good) - len(spec.blank))
    assert {o["mediaID"] for o in obs} <= {m["mediaID"] for m in media}
    for o in obs:
        assert o["classificationMethod"] == "machine" and o["classifiedBy"] == "trapcam 1"
        assert o["observationLevel"] == "media" and o["classificationTimestamp"].endswith("Z")
    boxed = [o for o in animals if o["bboxX"]]
    assert len(animals) - len(boxed) == 1  # the portrait PNG's weak deer lies outside the picture: no geometry
    for o in boxed:
        x, y, w, h = (float(o[k]) for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight"))
        assert 0 <= x <= 1 and 0 <= y <= 1 and 0 < w <= 1 and 0 < h <= 1
        assert 0 <= float(o["classificationProbability"]) <= 1 and o["observationTags"].startswith("label:")


def test_export_subsets_and_errors(env, tmp_path):
    report = run_export(ExportOptions(tables=str(env["out"]), format="megadetector", out=str(tmp_path / "cam2.json"),
                                      cameras=["cam02"], since="2024-05-10", until="2024-05-10"))
    md = json.loads((tmp_path / "cam2.json").read_text())
    assert {i["file"] for i in md["images"]} == {f"cam02/DSC_{i:04d}.JPG" for i in range(1, 9)}
    assert report.failed == 0
    with pytest.raises(BatchError, match="no rows for model 'other'"):
        run_export(ExportOptions(tables=str(env["out"]), format="coco", out=str(tmp_path / "x.json"), model="other"))
    with pytest.raises(BatchError, match="no images table"):
        run_export(ExportOptions(tables=str(tmp_path / "empty"), format="coco", out=str(tmp_path / "x.json")))
    with pytest.raises(ValidationError, match="timezone"):  # refused where the options enter, before any read
        ExportOptions(tables=str(env["out"]), format="camtrap-dp", out=str(tmp_path / "dp"), timezone="CEST")


@pytest.fixture
def tables_copy(env, tmp_path):
    import shutil

    out = tmp_path / "tables"
    shutil.copytree(env["out"], out)
    return out


def test_postprocess_equals_rerunning_the_model_with_that_filter(env, tables_copy, tmp_path):
    spec = env["spec"]
    report = postprocess(str(tables_copy), "min_size", MIN_SIZE)
    ok = len(spec.good) - len(spec.blank)
    assert report.images == len(spec.images) and report.detections_checked == 4 * ok
    assert report.flagged == report.kept_before - report.kept_after > 0
    assert report.images_changed == ok and report.became_empty == 0
    assert report.tables == [IMAGES, DETECTIONS]  # no classifications to re-filter, no occurrences
    # The same filter through the model gives the same rows and the same filters hash.
    direct = tmp_path / "direct"
    process_without_ray(str(env["archive"]), str(direct), env["store"].root, "trapcam:1", path_pattern=PATH_PATTERN,
                        filters={"min_size": MIN_SIZE})
    cols = ["uri", "status", "detection_count", "raw_detection_count", "filters_hash"]
    refiltered = Tables(open_location(str(tables_copy))).current_images("trapcam", "1", report.filters_hash)[cols]
    rerun = Tables(open_location(str(direct))).current_images("trapcam", "1", report.filters_hash)[cols]
    assert refiltered.equals(rerun)
    dcols = ["uri", "detection_index", "label", "kept", "flags"]
    a = Tables(open_location(str(tables_copy))).read(DETECTIONS, "trapcam", "1").to_pandas()
    b = Tables(open_location(str(direct))).read(DETECTIONS, "trapcam", "1").to_pandas()
    a = a[a.filters_hash == report.filters_hash][dcols].sort_values(["uri", "detection_index"]).reset_index(drop=True)
    b = b[dcols].sort_values(["uri", "detection_index"]).reset_index(drop=True)
    assert a.astype(str).equals(b.astype(str))
    # A reprocess asking for that filter set finds everything done already.
    plan = plan_run_with(env, tables_copy, filters={"min_size": MIN_SIZE})
    assert plan.selection.todo == []
    again = postprocess(str(tables_copy), "min_size", MIN_SIZE, filters_hash=report.source_filters_hash)
    assert (again.images, again.skipped) == (0, len(spec.images))


def plan_run_with(env, out, **kw):
    from batch.reprocess.options import ReprocessOptions

    return plan_run(ReprocessOptions(archive=str(env["archive"]), out=str(out), model="trapcam:1",
                                     store=env["store"].root, path_pattern=PATH_PATTERN, **kw))


def test_postprocess_score_filter_empties_images_and_camera_subset(env, tables_copy):
    report = postprocess(str(tables_copy), "score", {"min_score": 0.95}, cameras=["cam01"])
    cam01_ok = [r for r in env["spec"].good if r.startswith("cam01/") and r not in env["spec"].blank]
    assert report.became_empty == report.images_changed == len(cam01_ok)
    assert report.images == sum(r.startswith("cam01/") for r in env["spec"].images)
    rows = Tables(open_location(str(tables_copy))).current_images("trapcam", "1", report.filters_hash)
    assert set(rows["status"]) == {"empty", "failed"} and set(rows["camera_id"]) == {"cam01"}


def test_postprocess_validates_before_writing_and_dry_run_writes_nothing(env, tables_copy):
    before = listing(tables_copy)
    with pytest.raises(OptionsError, match="min_area_fraction"):  # at the door: the options model's check
        postprocess(str(tables_copy), "min_size", {"min_area_fraction": 2})
    with pytest.raises(FilterConfigError, match="unknown labels"):
        postprocess(str(tables_copy), "class_mask", {"allowed_labels": ["moose"]})
    with pytest.raises(OptionsError, match="--filter"):
        postprocess(str(tables_copy), "blur", {})
    report = postprocess(str(tables_copy), "class_mask", {"allowed_labels": ["deer"]}, dry_run=True)
    assert report.flagged > 0 and report.run_id is None
    assert listing(tables_copy) == before
    assert len(Tables(open_location(str(tables_copy))).parts(IMAGES, "trapcam", "1")) == len(before) // 2
