"""A stop request ends a post-processing run after a whole part (no Ray): the manifest says interrupted, nothing is
half-written, and a rerun does the rest, each image once; over HTTP the job's source set is pinned at submit, so
Resume does the same. (The reprocess side runs on a real Ray job manager: tests/integration/test_jobs_http.py.)"""

from __future__ import annotations

import json

import pytest

from batch.jobs.control import JobControl
from ground.errors import DuplicateJobError, InvalidParameterError, RunStoppedError
from model_store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.manifest import read_manifests
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from model_store.tables.stop import request_stop, stop_requested
from model_store.tables.table_set import resolve_table_set
from serve.jobs_config import JobsConfig
from tests.fixtures.archive import (
    PATH_PATTERN,
    brightness_config,
    brightness_model,
    build_archive,
    process_without_ray,
    write_local,
)
from tests.fixtures.job_manager import JobManager
from tests.fixtures.postprocess import postprocess


def test_a_stopped_postprocess_ends_after_a_whole_part_and_a_rerun_does_the_rest(tmp_path, monkeypatch):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    spec = build_archive()
    out = tmp_path / "tables"
    process_without_ray(str(write_local(spec, tmp_path / "archive")), str(out), store.root, "trapcam:1",
                        path_pattern=PATH_PATTERN)
    tables = Tables(open_location(str(out)))
    # What the job supervisor hands a submitted job's driver: its submission id.
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"metadata": {"job_submission_id": "job-1"}}))
    request_stop(tables.storage, "job-1", by="test")
    with pytest.raises(RunStoppedError, match="stopped on request .* a rerun with --filters-hash"):
        postprocess(str(out), "score", {"min_score": 0.5}, rows_per_file=5)
    [manifest] = read_manifests(tables.storage)
    assert manifest.status == "interrupted" and manifest.ray_job_id == "job-1"
    new_set = manifest.filters["hash"]
    assert set(tables.parts(DETECTIONS, "trapcam", "1")) <= set(tables.parts(IMAGES, "trapcam", "1"))
    rows = tables.read(IMAGES, "trapcam", "1", ["uri", "filters_hash"]).to_pandas()
    assert (rows["filters_hash"] == new_set).sum() == 5  # one whole part
    assert stop_requested(tables.storage, "job-1")  # kept as the record of why it ended

    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"metadata": {"job_submission_id": "job-2"}}))
    source = manifest.filters["source_hash"]  # the newest set is now the partial one: name the source
    report = postprocess(str(out), "score", {"min_score": 0.5}, rows_per_file=5, filters_hash=source)
    assert report.skipped == 5 and report.images == len(spec.images) - 5
    rows = tables.read(IMAGES, "trapcam", "1", ["uri", "filters_hash"]).to_pandas()
    mine = rows[rows["filters_hash"] == new_set]["uri"]
    assert len(mine) == mine.nunique() == len(spec.images)


def test_a_postprocess_submitted_over_http_pins_its_source_so_that_resume_continues_it(tmp_path, monkeypatch):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    spec = build_archive()
    out = str(tmp_path / "tables")
    process_without_ray(str(write_local(spec, tmp_path / "archive")), out, store.root, "trapcam:1",
                        path_pattern=PATH_PATTERN)
    source = resolve_table_set(Tables(open_location(out))).filters_hash
    manager = JobManager()
    control = JobControl(JobsConfig(roots=[str(tmp_path)]).resolved(str(tmp_path)), store.root, client=manager)
    asked = {"tables": out, "filter": "score", "config": {"min_score": 0.5}, "rows_per_file": 5}
    job = control.submit("postprocess", asked)
    assert job["options"]["filters_hash"] == source  # named in the job itself, not left to "the newest"
    assert job["options"]["model"] == "trapcam:1"  # and the version: an alias may move before a Resume
    # The job runs (here: the driver it would start) and is stopped after its first part.
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"metadata": {"job_submission_id": job["id"]}}))
    request_stop(Tables(open_location(out)).storage, job["id"], by="test")
    with pytest.raises(RunStoppedError):
        postprocess(out, "score", {"min_score": 0.5}, rows_per_file=5, filters_hash=source)
    assert resolve_table_set(Tables(open_location(out))).filters_hash != source  # the newest set is now the partial one
    # The same request while the first still runs: a duplicate, though "the newest set" has moved.
    with pytest.raises(DuplicateJobError) as dup:
        control.submit("postprocess", asked)
    assert job["id"] in str(dup.value) and len(manager.jobs) == 1
    # Stopped; Resume sends the job's options as shown: the same source, so the rerun does the rest.
    manager.jobs[job["id"]].status = "STOPPED"
    shown = control.show(job["id"], progress=False)
    again = control.submit(shown["kind"], shown["options"])
    assert again["options"]["filters_hash"] == source and again["id"] != job["id"]
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"metadata": {"job_submission_id": again["id"]}}))
    report = postprocess(out, "score", {"min_score": 0.5}, rows_per_file=5, filters_hash=source)
    assert report.skipped == 5 and report.images == len(spec.images) - 5
    # Nothing to post-process: refused at submit, nothing submitted.
    with pytest.raises(InvalidParameterError, match="tables: no images table"):
        control.submit("postprocess", {**asked, "tables": str(tmp_path / "empty")})
    assert len(manager.jobs) == 2
