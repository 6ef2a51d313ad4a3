"""The reprocess job on real Ray Data (the shared 2-CPU test cluster) over a generated local archive."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from model_store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import IMAGES
from serve.polling import wait_until
from tests.fixtures.archive import PATH_PATTERN, brightness_config, brightness_model, build_archive, write_local
from tests.fixtures.processes import actor_pids

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
# Fractional CPUs so the job also fits next to whatever else the shared test cluster runs.
SMALL = {"num_cpus": 0.5, "read_cpus": 0.25, "rows_per_file": 5, "read_batch_size": 4, "batch_size": 8,
         "progress_interval_s": 0.5}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("reprocess")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    weights = brightness_model(d / "m.onnx")
    store.publish(weights, "trapcam", "1", brightness_config())
    store.publish(weights, "trapcam", "2", brightness_config(score_threshold=0.5))  # fewer boxes than v1
    store.promote("trapcam:1")
    spec = build_archive()
    return {"dir": d, "store": store, "spec": spec, "archive": write_local(spec, d / "archive")}


def options(env, out, **kw) -> ReprocessOptions:
    base = {"archive": str(env["archive"]), "out": str(out), "model": "trapcam@production",
            "store": env["store"].root, "path_pattern": PATH_PATTERN, **SMALL}
    return ReprocessOptions(**{**base, **kw})


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def image_rows(out: Path, version: str = "1") -> pd.DataFrame:
    return Tables(open_location(str(out))).read(IMAGES, "trapcam", version).to_pandas()


@pytest.fixture(scope="module")
def first_run(ray_cluster, env, tmp_path_factory) -> dict:
    """One run of trapcam@production (version 1) over the archive into new tables, with the images count after each
    part: the first test checks it, the promote test starts from a copy of its tables (one such run, not two)."""
    out, seen = tmp_path_factory.mktemp("first-run") / "out", []
    report = run_reprocess(options(env, out), on_part=lambda p: seen.append(p.counts["images"]))
    return {"out": out, "report": report, "seen": seen}


def test_run_writes_one_row_per_image_and_a_rerun_adds_nothing(env, first_run):
    spec, out, report, seen = env["spec"], first_run["out"], first_run["report"], first_run["seen"]
    assert report.status == "succeeded", report.error
    assert (report.found, report.processed, report.already_done) == (len(spec.images), len(spec.images), 0)
    assert (report.ok, report.empty, report.failed) == (len(spec.good) - len(spec.blank), len(spec.blank),
                                                        len(spec.failed))
    assert report.detections == 4 * report.ok and seen == sorted(seen) and seen[-1] == len(spec.images)

    # DuckDB and pandas read both tables straight from the files, hive partitions included.
    images_glob, dets_glob = f"{out}/images/**/*.parquet", f"{out}/detections/**/*.parquet"
    statuses = dict(duckdb.sql(f"SELECT status, count(*) FROM read_parquet('{images_glob}', hive_partitioning=true,"
                               " hive_types_autocast=false) WHERE model_version = '1' GROUP BY ALL").fetchall())
    assert statuses == {"ok": report.ok, "empty": report.empty, "failed": report.failed}
    joined = duckdb.sql(f"SELECT i.camera_id, count(*) FROM read_parquet('{dets_glob}') d JOIN "
                        f"read_parquet('{images_glob}') i USING (uri, content_id, filters_hash, run_id) "
                        "WHERE d.kept GROUP BY ALL ORDER BY 1").fetchall()
    assert sum(n for _, n in joined) == report.detections
    images = pd.read_parquet(out / "images")
    dets = pd.read_parquet(out / "detections")
    assert len(images) == len(spec.images) and images["uri"].is_unique and len(dets) == report.raw_detections
    assert set(images["model_name"].astype(str)) == {"trapcam"}
    failed = images[images.status == "failed"].set_index("rel_path")["error_reason"].to_dict()
    assert failed == spec.failed
    assert set(images[images.status == "empty"]["rel_path"]) == spec.blank

    manifest = json.loads(Path(report.manifest).read_text())
    assert manifest["status"] == "succeeded" and manifest["model"]["version"] == "1"
    assert manifest["model"]["sha256"] == env["store"].get("trapcam:1").config.weights.sha256
    assert manifest["counts"]["processed"] == len(spec.images) and manifest["filters"]["hash"] == report.filters_hash
    assert manifest["arguments"]["model"] == "trapcam@production" and manifest["ended_at"]
    # The report says where the run's time went, milestone after milestone, up to its whole wall time.
    steps = ["planned", "ray_ready", "plan_started", "first_part", "last_part", "finished"]
    assert list(report.timeline) == steps and report.timeline["finished"] == report.wall_s
    assert [report.timeline[k] for k in steps] == sorted(report.timeline.values())

    before = files_under(out / "images") + files_under(out / "detections")
    again = run_reprocess(options(env, out))
    assert (again.processed, again.already_done, again.status) == (0, len(spec.images), "succeeded")
    assert files_under(out / "images") + files_under(out / "detections") == before
    assert list(again.timeline) == ["planned", "finished"]  # a rerun only lists and reads the images table: no Ray

    # every row read through the Ray plan records its file's sha256; a `cp -r` copy (new mtimes) is confirmed by it
    digests = images.set_index("rel_path")["content_digest"].to_dict()
    assert digests == {rel: hashlib.sha256(spec.files[rel]).hexdigest() for rel in spec.images}
    copy = out.parent / "copied"
    shutil.copytree(env["archive"], copy, copy_function=shutil.copyfile)
    moved = run_reprocess(options(env, out, archive=str(copy)))
    assert (moved.processed, moved.confirmed_by_digest, moved.digest_files_read) == (0, len(spec.images),
                                                                                     len(spec.images))
    assert files_under(out / "images") + files_under(out / "detections") == before
    assert run_reprocess(options(env, out, archive=str(copy))).digest_files_read == 0  # the job kept the book


def test_dry_run_reports_and_writes_nothing(ray_cluster, env, tmp_path):
    out = tmp_path / "out"
    report = run_reprocess(options(env, out, dry_run=True))
    assert report.status == "dry-run" and report.to_process == len(env["spec"].images) and report.run_id is None
    assert report.estimate_s is not None and report.estimate_s >= 0 and "sample" in report.estimate_basis
    assert not out.exists()
    run_reprocess(options(env, out, limit=10))
    before = files_under(out)
    report = run_reprocess(options(env, out, dry_run=True))
    assert (report.already_done, report.to_process) == (10, len(env["spec"].images) - 10)
    assert files_under(out) == before


def test_promote_then_rerun_processes_only_what_the_new_version_lacks(ray_cluster, env, first_run, tmp_path):
    out, n = tmp_path / "out", len(env["spec"].images)
    shutil.copytree(first_run["out"], out)  # every image done by trapcam:1
    assert first_run["report"].processed == n and run_reprocess(options(env, out, model="trapcam:1")).processed == 0
    store = env["store"]
    store.promote("trapcam:2")
    try:
        v2 = run_reprocess(options(env, out))  # @production is now 2
        assert (v2.model, v2.processed, v2.already_done) == ("trapcam:2", n, 0)
        assert v2.detections < 4 * v2.ok or v2.ok < len(env["spec"].good) - len(env["spec"].blank)
        assert run_reprocess(options(env, out)).processed == 0
        assert run_reprocess(options(env, out, model="trapcam:1")).processed == 0
        assert len(image_rows(out, "1")) == len(image_rows(out, "2")) == n
        # A different filter set is a different result set: processed again, next to the first.
        refiltered = run_reprocess(options(env, out, filters={"score": {"min_score": 0.95}}))
        assert refiltered.processed == n and refiltered.ok == 0 and refiltered.filters_hash != v2.filters_hash
    finally:
        store.rollback("trapcam")


def test_selection_latest_per_camera_window_and_limit(ray_cluster, env, tmp_path):
    spec, out = env["spec"], tmp_path / "out"
    report = run_reprocess(options(env, out, select="latest-per-camera"))
    assert (report.selected, report.processed) == (3, 3)
    rows = image_rows(out)
    assert sorted(rows["rel_path"]) == sorted(spec.latest_per_camera().values())
    assert set(rows["capture_time_source"]) == {"path", "exif", "mtime"}

    report = run_reprocess(options(env, out, since="2024-05-10", until="2024-05-10", limit=3))
    assert (report.selected, report.processed, report.held_back) == (8, 3, 4)  # cam02's latest is already done
    report = run_reprocess(options(env, out, since="2024-05-10", until="2024-05-10"))
    assert (report.processed, report.already_done) == (4, 4)
    rows = image_rows(out)
    assert rows["uri"].is_unique and len(rows) == 3 + 7


def cpus_back_after_a_failed_run(timeout_s: float = 30.0) -> None:
    """A run that stopped half-way has given its actors' CPUs back (else the next run would wait for them)."""
    import ray

    from serve.polling import wait_until

    total = ray.cluster_resources()["CPU"]
    wait_until(lambda: ray.available_resources().get("CPU", 0.0) >= total - 1e-6, timeout_s,
               f"all {total:g} CPUs to be free after the failed run (free: {ray.available_resources().get('CPU')})")


def test_failure_mid_run_is_recorded_and_the_rerun_completes(ray_cluster, env, tmp_path):
    out, n = tmp_path / "out", len(env["spec"].images)

    def crash(progress):
        if progress.parts == 2:
            raise RuntimeError("injected crash after two parts")

    # One image per block and per part: the crash comes after 2 of 27 parts, far from the end, however
    # far ahead the write tasks run (with 3 rows per part they could all finish before the driver saw 2).
    report = run_reprocess(options(env, out, rows_per_file=1, read_batch_size=1, batch_size=1), on_part=crash)
    assert report.status == "failed" and "injected crash" in report.error
    assert json.loads(Path(report.manifest).read_text())["status"] == "failed"
    cpus_back_after_a_failed_run()
    done = len(image_rows(out))
    assert 0 < done < n
    resumed = run_reprocess(options(env, out))
    assert resumed.already_done >= done and resumed.already_done + resumed.processed == n
    rows = image_rows(out)
    assert len(rows) == n and rows["uri"].is_unique


def test_killed_driver_resumes_with_exactly_one_row_per_image(ray_cluster, env, tmp_path):
    import ray

    out, n = tmp_path / "out", len(env["spec"].images)
    parts_dir = out / "images" / "model_name=trapcam" / "model_version=1"
    cmd = [sys.executable, "-m", "batch.reprocess", "--archive", str(env["archive"]), "--out", str(out),
           "--model", "trapcam:1", "--store", env["store"].root, "--path-pattern", PATH_PATTERN,
           "--address", ray.get_runtime_context().gcs_address, "--num-cpus", "0.5", "--read-cpus", "0.25",
           "--rows-per-file", "1", "--read-batch-size", "1", "--batch-size", "1"]
    log = tmp_path / "driver.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ})
        deadline = time.monotonic() + 120
        while len(list(parts_dir.glob("part-*.parquet"))) < 3:
            assert proc.poll() is None, f"driver exited early:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no parts after 120 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    # Ray stops the dead driver's actors within moments: their writes still pass the lease check (the lease names the
    # dead run until the rerun takes it over), so wait until they are gone, then until no more parts appear.
    wait_until(lambda: not actor_pids("PartWriter") and not actor_pids("DetectorActor"), 60.0,
               "the killed driver's actors to end")
    count, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 2.0:
        now = len(list(parts_dir.glob("part-*.parquet")))
        if now != count:
            count, stable_since = now, time.monotonic()
        time.sleep(0.1)
    done_at_kill = len(image_rows(out))
    assert 0 < done_at_kill < n, f"the job was not interrupted half-way ({done_at_kill}/{n} done)"
    killed = Tables(open_location(str(out))).manifests()[0]
    assert killed.status == "running"  # nobody could close it

    resumed = run_reprocess(options(env, out, model="trapcam:1"))
    assert resumed.status == "succeeded" and resumed.already_done == done_at_kill
    assert resumed.processed == n - done_at_kill
    rows = image_rows(out)
    assert len(rows) == n and rows["uri"].is_unique
    # No stray detections either: every detections file has its images file, no duplicate boxes.
    dets = duckdb.sql(f"SELECT uri, detection_index, count(*) c FROM read_parquet('{out}/detections/**/*.parquet') "
                      "GROUP BY ALL HAVING c > 1").fetchall()
    assert dets == []
    tables = Tables(open_location(str(out)))
    assert set(tables.parts("detections", "trapcam", "1")) <= set(tables.parts(IMAGES, "trapcam", "1"))
    manifests = {m.run_id: m for m in tables.manifests()}
    assert manifests[killed.run_id].status == "failed" and "abandoned" in manifests[killed.run_id].error


def test_two_concurrent_runs_process_every_image_exactly_once(ray_cluster, env, tmp_path):
    """The run lease: a second run on the same table and version waits (--wait) or refuses, never doubles up."""
    import threading

    from model_store.tables.lease import LeaseHeldError

    spec, out = env["spec"], tmp_path / "out"
    reports, errors = {}, {}

    def run(key: str, **kw) -> None:
        try:
            reports[key] = run_reprocess(options(env, out, **kw))
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors[key] = exc

    threads = [threading.Thread(target=run, args=(k,), kwargs={"wait_s": 300}) for k in ("a", "b")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while not (out / "_leases" / "trapcam@1.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    run("c")  # no --wait while one of them holds the lease: refused with one line
    for t in threads:
        t.join(timeout=300)
    assert isinstance(errors.pop("c"), LeaseHeldError) and not errors, errors
    assert reports["a"].status == reports["b"].status == "succeeded"
    assert sorted(r.processed for r in reports.values()) == [0, len(spec.images)]  # the waiter found it all done
    images = image_rows(out)
    assert len(images) == len(spec.images) and images["uri"].is_unique
    assert not (out / "_leases" / "trapcam@1.json").exists()  # released


def test_a_redo_through_the_job_is_read_once_whole_and_a_stopped_one_resumes(ray_cluster, env, first_run, tmp_path):
    """Issue 59: `--redo --reason` makes a new result set of the same version; stopped, readers keep the old set and
    `--redo` again resumes it; whole, readers take it, and a plain rerun finds nothing new."""
    from model_store.core.provenance import CORE_VERSION
    from model_store.tables.set_records import read_record
    from model_store.tables.table_set import resolve_table_set

    out, n = tmp_path / "out", len(env["spec"].images)
    shutil.copytree(first_run["out"], out)
    old = first_run["report"].filters_hash

    def current() -> str:
        return resolve_table_set(Tables(open_location(str(out))), "trapcam:1").filters_hash

    def crash(progress):
        if progress.parts == 2:
            raise RuntimeError("injected crash after two parts")

    stopped = run_reprocess(options(env, out, redo=True, reason="letterbox fix", rows_per_file=3), on_part=crash)
    new = stopped.filters_hash
    assert stopped.status == "failed" and new != old and f"redo of {old} (letterbox fix)" in stopped.result_set
    manifest = json.loads(Path(stopped.manifest).read_text())
    assert manifest["result_set"] == new and manifest["provenance"]["core_version"] == CORE_VERSION
    assert (
        read_record(Tables(open_location(str(out))).storage, "trapcam", "1", new).state == "building"
        and current() == old
    )
    cpus_back_after_a_failed_run()
    resumed = run_reprocess(options(env, out, redo=True))
    assert resumed.status == "succeeded" and resumed.filters_hash == new
    assert resumed.already_done + resumed.processed == n and "resumes the redo" in resumed.result_set
    assert current() == new
    rows = image_rows(out)
    assert (rows["filters_hash"] == new).sum() == n and rows[rows["filters_hash"] == new]["uri"].is_unique
    again = run_reprocess(options(env, out))
    assert (again.filters_hash, again.processed, again.already_done) == (new, 0, n)


def test_own_pool_writes_what_the_plan_writes_stops_with_a_failed_run_and_resumes(ray_cluster, env, first_run,
                                                                                  tmp_path):
    """`executor: pool` (the job's own inference actors, no Ray Data plan): the same rows as the plan's run, and the
    plan's guarantees: a failed run's writes stop with it, and the rerun makes one row per image."""
    out, n = tmp_path / "out", len(env["spec"].images)
    seen: list[tuple[int, int]] = []

    def crash(progress):
        if progress.parts == 2:  # the pool's actors are there (the second may still be waiting for a CPU: the
            # pool goes on with those that are up), no Ray Data map worker
            seen.append((len(actor_pids("PoolDetectorActor")), len(actor_pids("MapWorker"))))
            raise RuntimeError("injected crash after two parts")

    pool = {"via": "actors", "executor": "pool", "concurrency": 2}
    failed = run_reprocess(options(env, out, rows_per_file=1, batch_size=1, **pool), on_part=crash)
    assert failed.status == "failed" and "injected crash" in failed.error
    assert len(seen) == 1 and seen[0][0] in (1, 2) and seen[0][1] == 0, seen
    wait_until(lambda: not actor_pids("PoolDetectorActor"), 30.0, "the pool's actors to end with the failed run")
    done = files_under(out / "images")
    time.sleep(2.0)  # the writer and the actors were killed with the run: nothing lands after it
    assert files_under(out / "images") == done and 0 < len(image_rows(out)) < n
    cpus_back_after_a_failed_run()
    resumed = run_reprocess(options(env, out, **pool))
    assert resumed.status == "succeeded" and resumed.already_done + resumed.processed == n
    assert resumed.parts == -(-resumed.processed // SMALL["rows_per_file"])  # full parts, the last one what is left
    rows, plans = image_rows(out), image_rows(first_run["out"])
    assert len(rows) == n and rows["uri"].is_unique
    keep = ["rel_path", "status", "error_reason", "detection_count", "raw_detection_count", "max_score"]
    assert (rows[keep].sort_values("rel_path").reset_index(drop=True)
            .equals(plans[keep].sort_values("rel_path").reset_index(drop=True)))


@pytest.mark.parametrize("executor", ["pool", "data"])
def test_a_stop_at_the_next_part_writes_what_the_writer_holds_and_leaves_nothing_half_written(
        ray_cluster, env, tmp_path, monkeypatch, executor):
    """A stop asked for while parts are still on their way to the writer: those parts are written and counted (a
    stop at the next part, not a kill half-way through a part: that left a detections file without its images
    file), the manifest's count is what the tables hold, and the rerun does the rest once."""
    from ground.errors import RunStoppedError
    from model_store.tables.manifest import read_manifests
    from model_store.tables.schema import DETECTIONS
    from model_store.tables.stop import request_stop

    out, n = tmp_path / "out", len(env["spec"].images)
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"metadata": {"job_submission_id": "job-stop"}}))
    tables = Tables(open_location(str(out)))
    request_stop(tables.storage, "job-stop", by="test")  # seen after the first committed part
    small = {"via": "actors", "executor": executor, "concurrency": 2, "rows_per_file": 1, "batch_size": 1}
    with pytest.raises(RunStoppedError, match="stopped on request"):
        run_reprocess(options(env, out, **small))
    [manifest] = read_manifests(tables.storage)
    committed = len(image_rows(out))
    assert manifest.status == "interrupted" and 0 < committed < n
    assert manifest.counts["processed"] == committed  # every part handed to the writer was written and counted
    assert set(tables.parts(DETECTIONS, "trapcam", "1")) <= set(tables.parts(IMAGES, "trapcam", "1"))
    assert not [f for f in files_under(out) if ".tmp" in f]
    cpus_back_after_a_failed_run()
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"metadata": {"job_submission_id": "job-again"}}))
    resumed = run_reprocess(options(env, out, **small))
    assert resumed.status == "succeeded" and resumed.already_done == committed
    rows = image_rows(out)
    assert len(rows) == n and rows["uri"].is_unique
