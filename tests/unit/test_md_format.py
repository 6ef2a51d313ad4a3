"""The MegaDetector export carries what MegaDetector's own tools look for: `info.detector_metadata` with the
detection thresholds, and classifier facts inside `info` where MegaDetector's writer puts them."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pandas as pd
import pytest

from batch.export.formats import megadetector
from batch.export.options import ExportOptions
from batch.export.run import run_export
from model_store import ModelStore
from model_store.core.config import ModelConfig
from model_store.store.derive import PRESETS
from tests.fixtures.archive import (
    PATH_PATTERN,
    brightness_config,
    brightness_model,
    build_archive,
    process_without_ray,
    write_local,
)

# megadetector/postprocessing/validate_batch_results.py: any other top-level key is "non-standard"
MD_FILE_KEYS = {"info", "images", "detection_categories", "classification_categories",
                "classification_category_descriptions"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("md")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    weights = brightness_model(d / "m.onnx")
    store.publish(weights, "trapcam", "1", brightness_config())
    store.publish(weights, "trapcam", "2", brightness_config(typical_detection_threshold=0.4,
                                                             conservative_detection_threshold=0.1))
    archive = write_local(build_archive(), d / "archive")
    out = d / "tables"
    for version in ("1", "2"):
        process_without_ray(str(archive), str(out), store.root, f"trapcam:{version}", path_pattern=PATH_PATTERN)
    return {"dir": d, "out": out, "store": store}


def info_of(env, tmp_path, model, **kw):
    run_export(ExportOptions(tables=str(env["out"]), format="megadetector", out=str(tmp_path / "md.json"), model=model,
                             **kw))
    doc = json.loads((tmp_path / "md.json").read_text())
    assert set(doc) <= MD_FILE_KEYS
    return doc["info"]


def test_detector_metadata_has_the_thresholds_of_the_model_config(env, tmp_path):
    meta = info_of(env, tmp_path, "trapcam:2")["detector_metadata"]
    assert (meta["typical_detection_threshold"], meta["conservative_detection_threshold"]) == (0.4, 0.1)
    assert meta["model_name"] == "trapcam" and meta["model_version"] == "2" and len(meta["model_sha256"]) == 64


def test_without_thresholds_in_the_config_the_score_threshold_stands_for_both(env, tmp_path):
    meta = info_of(env, tmp_path, "trapcam:1")["detector_metadata"]
    assert meta["typical_detection_threshold"] == meta["conservative_detection_threshold"] == 0.25
    assert meta["score_threshold"] == 0.25


def test_tables_written_before_the_thresholds_were_recorded_take_them_from_the_store(env, tmp_path):
    from batch.export.md_metadata import thresholds_of

    tset = SimpleNamespace(model_name="trapcam", model_version="2", metadata={"model": {"sha256": "x"}})
    assert thresholds_of(tset, env["store"].root)["typical_detection_threshold"] == 0.4
    assert thresholds_of(tset, str(tmp_path / "no-store")) == {}  # then MegaDetector falls back, as it says


def test_the_megadetector_preset_and_the_config_rules():
    assert PRESETS["megadetector-v5"]["typical_detection_threshold"] == 0.2
    assert PRESETS["megadetector-v5"]["conservative_detection_threshold"] == 0.05
    cfg = brightness_config(typical_detection_threshold=0.1, conservative_detection_threshold=0.3)
    cfg["weights"] = {**cfg["weights"], "sha256": "0" * 64}
    with pytest.raises(ValueError, match="conservative_detection_threshold 0.3 is above typical"):
        ModelConfig.model_validate(cfg)


def test_classifier_facts_sit_inside_info_as_megadetectors_writer_puts_them():
    when = dt.datetime(2025, 11, 25, 3, 0, 0)
    images = pd.DataFrame([{"uri": "/a/cam1/x.jpg", "rel_path": "cam1/x.jpg", "status": "ok", "processed_at": when}])
    top = {"classifier_name": "species", "classifier_version": "2"}
    dets = pd.DataFrame([{"uri": "/a/cam1/x.jpg", "class_id": 0, "label": "animal", "score": 0.9, "bbox_x": 0.1,
                          "bbox_y": 0.1, "bbox_w": 0.2, "bbox_h": 0.2,
                          "classifications": [{**top, "label": "red_fox", "score": 0.8,
                                               "top_labels": ["red_fox", "grey_wolf"], "top_scores": [0.8, 0.15]}]}])
    classifier = {"name": "species", "version": "2", "sha256": "s" * 64, "labels": ["animal"],
                  "labels_out": ["red_fox", "grey_wolf"], "taxonomy": {"red_fox": ["Canidae", "Vulpes vulpes"]}}
    tset = SimpleNamespace(model_name="md", model_version="5", filters_hash="h", labels=["animal"],
                           classifiers=[classifier], filter_specs=[],
                           metadata={"model": {"sha256": "m" * 64, "typical_detection_threshold": 0.2,
                                               "conservative_detection_threshold": 0.05}})
    doc = megadetector(images, dets, tset)
    assert set(doc) <= MD_FILE_KEYS and "classifier_metadata" not in doc
    info = doc["info"]
    assert info["classifier"] == "species 2" and info["classification_completion_time"] == "2025-11-25 03:00:00"
    assert info["classifier_metadata"]["classifiers"] == [
        {"name": "species", "version": "2", "sha256": "s" * 64, "labels": ["red_fox", "grey_wolf"],
         "taxonomy": {"red_fox": ["Canidae", "Vulpes vulpes"]}, "applied_to": ["animal"]}]
    assert info["detector_metadata"]["typical_detection_threshold"] == 0.2
    assert doc["classification_categories"] == {"1": "red_fox", "2": "grey_wolf"}
    assert doc["images"][0]["detections"][0]["classifications"] == [["1", 0.8], ["2", 0.15]]


def test_old_tables_without_thresholds_take_them_from_the_store_or_say_they_cannot(env, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    tables = tmp_path / "tables"
    shutil.copytree(env["out"], tables)
    for path in tables.rglob("*.parquet"):  # as written before the thresholds were recorded
        table = pq.read_table(path)
        meta = dict(table.schema.metadata)
        info = json.loads(meta[b"trapline"])
        for key in ("typical_detection_threshold", "conservative_detection_threshold", "score_threshold"):
            info.get("model", {}).pop(key, None)
        meta[b"trapline"] = json.dumps(info).encode()
        pq.write_table(table.replace_schema_metadata(meta), path)
    report = run_export(ExportOptions(tables=str(tables), format="megadetector", out=str(tmp_path / "md.json"),
                                      model="trapcam:2", store=env["store"].root))
    doc = json.loads((tmp_path / "md.json").read_text())
    assert doc["info"]["detector_metadata"]["typical_detection_threshold"] == 0.4 and report.notes == []
    report = run_export(ExportOptions(tables=str(tables), format="megadetector", out=str(tmp_path / "md.json"),
                                      model="trapcam:2", store=str(tmp_path / "elsewhere")))
    doc = json.loads((tmp_path / "md.json").read_text())
    assert "typical_detection_threshold" not in doc["info"]["detector_metadata"]
    assert len(report.notes) == 1 and "pass --store" in report.notes[0]
