"""A stop request ends a post-processing run after a whole part (no Ray): the manifest says interrupted, nothing is
half-written, and a rerun does the rest, each image once. (The reprocess side runs on a real Ray job manager:
tests/integration/test_jobs_http.py.)"""

from __future__ import annotations

import json

import pytest

from batch.refilter.postprocess import run_postprocess
from batch.tables.manifest import read_manifests
from batch.tables.reader import Tables
from batch.tables.schema import DETECTIONS, IMAGES
from batch.tables.stop import request_stop, stop_requested
from model_store import ModelStore
from tests.fixtures.archive import (
    PATH_PATTERN,
    brightness_config,
    brightness_model,
    build_archive,
    process_without_ray,
    write_local,
)
from trapline.errors import RunStoppedError


def test_a_stopped_postprocess_ends_after_a_whole_part_and_a_rerun_does_the_rest(tmp_path, monkeypatch):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    spec = build_archive()
    out = tmp_path / "tables"
    process_without_ray(str(write_local(spec, tmp_path / "archive")), str(out), store.root, "trapcam:1",
                        path_pattern=PATH_PATTERN)
    tables = Tables(str(out))
    # What the job supervisor hands a submitted job's driver: its submission id.
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"metadata": {"job_submission_id": "job-1"}}))
    request_stop(tables.storage, "job-1", by="test")
    with pytest.raises(RunStoppedError, match="stopped on request .* a rerun with --filters-hash"):
        run_postprocess(str(out), "score", {"min_score": 0.5}, rows_per_file=5)
    [manifest] = read_manifests(tables.storage)
    assert manifest.status == "interrupted" and manifest.ray_job_id == "job-1"
    new_set = manifest.filters["hash"]
    assert set(tables.parts(DETECTIONS, "trapcam", "1")) <= set(tables.parts(IMAGES, "trapcam", "1"))
    rows = tables.read(IMAGES, "trapcam", "1", ["uri", "filters_hash"]).to_pandas()
    assert (rows["filters_hash"] == new_set).sum() == 5  # one whole part
    assert stop_requested(tables.storage, "job-1")  # kept as the record of why it ended

    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"metadata": {"job_submission_id": "job-2"}}))
    source = manifest.filters["source_hash"]  # the newest set is now the partial one: name the source
    report = run_postprocess(str(out), "score", {"min_score": 0.5}, rows_per_file=5, source_filters=source)
    assert report.skipped == 5 and report.images == len(spec.images) - 5
    rows = tables.read(IMAGES, "trapcam", "1", ["uri", "filters_hash"]).to_pandas()
    mine = rows[rows["filters_hash"] == new_set]["uri"]
    assert len(mine) == mine.nunique() == len(spec.images)
