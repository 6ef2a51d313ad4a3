"""Faults in the archive job: the inference actor is SIGKILLed mid-job; nothing is lost or duplicated.

The job runs in this process on the shared local Ray; its DetectorActor process is found by the
title Ray gives actor processes (`ray::MapWorker(MapBatches(DetectorActor))...`, or `ray::PoolDetectorActor` in the
job's own pool) and killed from the job's own progress callback, after the first part is committed and while images
remain.
"""

from __future__ import annotations

import os
import signal

import duckdb
import pytest

from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from model_store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from tests.fixtures.archive import PATH_PATTERN, brightness_config, brightness_model, build_archive, write_local
from tests.fixtures.processes import actor_pids

pytestmark = pytest.mark.ray

# One actor (so the kill hits the only one), small batches and parts so the job is still busy after part 1.
JOB = {"num_cpus": 0.5, "read_cpus": 0.25, "concurrency": "1", "rows_per_file": 2, "read_batch_size": 2,
       "batch_size": 2, "progress_interval_s": 0.5}


def assert_exactly_once(out: str, n: int, model: str = "trapcam", version: str = "1") -> None:
    """One images row per image; no detection row twice; every detections part has its images part.

    Works on local and S3 tables alike: the rows are read with pyarrow (Tables), counted with DuckDB.
    """
    tables = Tables(open_location(out))
    images = tables.read(IMAGES, model, version)  # noqa: F841 - queried by name below
    dets = tables.read(DETECTIONS, model, version)  # noqa: F841
    [(total, distinct)] = duckdb.sql("SELECT count(*), count(DISTINCT uri) FROM images").fetchall()
    assert (total, distinct) == (n, n)
    dupes = duckdb.sql("SELECT uri, content_id, filters_hash, detection_index, count(*) c FROM dets "
                       "GROUP BY ALL HAVING c > 1").fetchall()
    assert dupes == []
    assert set(tables.parts(DETECTIONS, model, version)) <= set(tables.parts(IMAGES, model, version))


@pytest.mark.parametrize("executor", ["data", "pool"])  # the Ray Data plan's actor pool, or the job's own pool
def test_inference_actor_killed_mid_job_the_job_finishes_exactly_once(ray_cluster, tmp_path, executor):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    spec = build_archive()
    archive, out, n = write_local(spec, tmp_path / "archive"), tmp_path / "out", len(spec.images)
    opts = ReprocessOptions(archive=str(archive), out=str(out), model="trapcam:1", store=store.root,
                            path_pattern=PATH_PATTERN, executor=executor, **JOB)
    killed: list[tuple[int, int]] = []

    def kill_actor(progress) -> None:
        if killed or progress.counts["images"] >= progress.total:
            return
        pids = actor_pids("DetectorActor")
        if pids:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed.append((pids[0], progress.counts["images"]))

    report = run_reprocess(opts, on_part=kill_actor)
    assert killed, "the actor was never killed: the job ended before its first part?"
    pid, done_at_kill = killed[0]
    assert done_at_kill < n
    print(f"\nactor {pid} killed after {done_at_kill}/{n} images; the job ended {report.status} "
          f"({report.processed} processed{', ' + report.error if report.error else ''})")
    if report.status != "succeeded":  # Ray could not finish it: a rerun must
        rerun = run_reprocess(opts)
        assert rerun.status == "succeeded", rerun.error
    else:
        assert report.processed == n and (report.ok, report.empty, report.failed) == (
            len(spec.good) - len(spec.blank), len(spec.blank), len(spec.failed))
        assert pid not in actor_pids("DetectorActor")
    assert_exactly_once(str(out), n)
    assert run_reprocess(opts).processed == 0  # and nothing is left to do
