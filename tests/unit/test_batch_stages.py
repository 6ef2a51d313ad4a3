"""The plan's stages called as plain functions (no Ray), the writer's commit protocol, and tables readers."""

from __future__ import annotations

import dataclasses
import os
import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest

from batch.reprocess.actor_settings import ClientSettings, DetectorSettings
from batch.reprocess.dataset import client_settings, detector_settings
from batch.reprocess.detect import DetectorActor, result_table
from batch.reprocess.job import _spec
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import plan_run
from batch.reprocess.read import read_and_prepare, read_files
from ground.errors import BatchError
from model_store import ModelStore
from model_store.tables.commit import write_results
from model_store.tables.listing import entries_table
from model_store.tables.locations import open_location
from model_store.tables.manifest import RunManifest, is_live, new_run_id, read_manifests, write_manifest
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, DETECTIONS_SCHEMA, IMAGES, IMAGES_SCHEMA, RESULT_SCHEMA
from model_store.tables.writer import METADATA_KEY, part_name
from tests.fixtures.archive import PATH_PATTERN, brightness_config, brightness_model, build_archive, write_local


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("stages")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(brightness_model(d / "m.onnx"), "trapcam", "1", brightness_config())
    spec = build_archive()
    return {"dir": d, "store": store, "spec": spec, "archive": write_local(spec, d / "archive")}


def plan_for(env, out, **kw):
    opts = ReprocessOptions(archive=str(env["archive"]), out=str(out), model="trapcam:1", store=env["store"].root,
                            path_pattern=PATH_PATTERN, **kw)
    return plan_run(opts)


def run_stages(plan, rows_per_file=7):
    """What the Ray Data plan does, stage by stage, in this process."""
    run_id = new_run_id()
    spec = _spec(plan, run_id, 1)
    actor = DetectorActor(DetectorSettings(spec.store_url, spec.ref, spec.filter_specs))
    table = entries_table(plan.selection.todo)
    stats = []
    for start in range(0, table.num_rows, rows_per_file):
        prepared = read_and_prepare(table.slice(start, rows_per_file), archive_url=spec.archive_url,
                                    config_json=spec.config_json)
        results = actor(prepared)
        stats.append(write_results(results, out_url=spec.out_url, model_name=spec.model_name,
                                   model_version=spec.model_version, model_sha256=spec.model_sha256,
                                   filters_hash=spec.filters_hash, run_id=run_id, metadata=spec.metadata))
    return run_id, stats


def test_a_fenced_write_commits_only_while_its_run_holds_the_lease(env, tmp_path):
    """A write task that outlives its run (or whose run lost the lease) commits nothing."""
    from model_store.tables.archive import open_location
    from model_store.tables.lease import LeaseLostError, RunLease

    plan = plan_for(env, tmp_path / "out")
    run_id = new_run_id()
    spec = _spec(plan, run_id, 1)
    table = entries_table(plan.selection.todo).slice(0, 3)
    results = DetectorActor(DetectorSettings(spec.store_url, spec.ref, spec.filter_specs))(
        read_and_prepare(table, archive_url=spec.archive_url, config_json=spec.config_json))
    kw = {"out_url": spec.out_url, "model_name": spec.model_name, "model_version": spec.model_version,
          "model_sha256": spec.model_sha256, "filters_hash": spec.filters_hash, "metadata": spec.metadata,
          "fenced": True}
    lease = RunLease(open_location(spec.out_url), spec.model_name, spec.model_version, run_id).acquire()
    other = "20240601T120000Z-other0"
    with pytest.raises(LeaseLostError, match=f"run {other} no longer holds .* \\(run {run_id} does\\)"):
        write_results(results, run_id=other, **kw)
    assert plan.tables.read(IMAGES, "trapcam", "1").num_rows == 0
    write_results(results, run_id=run_id, **kw)
    assert plan.tables.read(IMAGES, "trapcam", "1").num_rows == 3
    lease.release()
    with pytest.raises(LeaseLostError, match="nobody does"):
        write_results(results, run_id=run_id, **kw)
    assert plan.tables.read(IMAGES, "trapcam", "1").num_rows == 3


def test_read_stage_turns_bad_files_into_failed_rows(env):
    plan = plan_for(env, env["dir"] / "unused")
    spec = env["spec"]
    table = entries_table(plan.selection.todo)
    out = read_and_prepare(table, archive_url=str(env["archive"]), config_json=_spec(plan, "x", 1).config_json)
    assert out["image"].shape == (table.num_rows, 320, 320, 3) and out["image"].dtype == np.uint8
    reasons = {rel: r for rel, s, r in zip(out["rel_path"], out["status"], out["error_reason"], strict=True)
               if s == "failed"}
    assert reasons == spec.failed
    by_rel = dict(zip(out["rel_path"], range(len(out["rel_path"])), strict=True))
    i = by_rel["cam02/DSC_0006.JPG"]
    assert (out["width"][i], out["height"][i]) == (200, 150)  # original size travels with the letterbox meta
    assert out["capture_time_source"][i] == "exif"
    assert out["capture_time_source"][by_rel["cam03/PICT0001.JPG"]] == "mtime"


def test_decode_in_the_actors_gives_the_rows_decode_in_the_read_tasks_gives(env):
    plan = plan_for(env, env["dir"] / "unused")
    spec = _spec(plan, "x", 1)
    table = entries_table(plan.selection.todo)
    files = read_files(table, archive_url=spec.archive_url)
    assert "image" not in files and files["data"].dtype == object
    pending = [i for i, s in enumerate(files["status"]) if s == "pending"]
    assert pending and all(len(files["data"][i]) == files["size_bytes"][i] for i in pending)  # the file, not pixels
    two_threads = DetectorSettings(spec.store_url, spec.ref, spec.filter_specs, decode_threads=2)
    fused = DetectorActor(two_threads)(files).to_pylist()
    staged = DetectorActor(DetectorSettings(spec.store_url, spec.ref, spec.filter_specs))(
        read_and_prepare(table, archive_url=spec.archive_url, config_json=spec.config_json)).to_pylist()
    assert fused == staged
    reasons = {r["rel_path"]: r["error_reason"] for r in fused if r["status"] == "failed"}
    assert reasons == env["spec"].failed  # undecodable files fail in the actor with the read task's reasons
    assert sum(r["status"] == "ok" for r in fused) > 0
    # What the plan sends by default: listing rows only (numpy columns, as Ray Data hands them); the actor
    # reads the files on its I/O threads, EXIF capture times included.
    listing = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
    reading = DetectorActor(DetectorSettings(spec.store_url, spec.ref, spec.filter_specs, archive_url=spec.archive_url))
    assert reading(listing).to_pylist() == staged
    with pytest.raises(BatchError, match="no archive"):
        DetectorActor(DetectorSettings(spec.store_url, spec.ref, spec.filter_specs))(listing)


def test_each_actor_is_built_from_one_frozen_value_that_crosses_ray_pickled(env):
    """Issue 83: the plan hands each actor of a pool one settings value (`fn_constructor_kwargs`), made from the run's
    PlanSpec; Ray pickles it to every actor, and an actor built from the copy runs as one built from the original."""
    plan = plan_for(env, env["dir"] / "unused")
    spec = _spec(plan, "x", 1)
    table = entries_table(plan.selection.todo)
    listing = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
    settings = detector_settings(spec, spec.archive_url)
    assert (settings.ref, settings.archive_url, settings.clips_url, settings.clips) == (
        spec.ref, spec.archive_url, spec.archive_url, spec.clips)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.ref = "other:1"
    sent = pickle.loads(pickle.dumps(settings))  # what each actor of the pool is handed
    assert sent == settings
    assert DetectorActor(sent)(listing).to_pylist() == DetectorActor(settings)(listing).to_pylist()
    client = client_settings(spec, None)  # --decode tasks: the rows come read; clips are still opened in the archive
    assert pickle.loads(pickle.dumps(client)) == client
    assert (client.ref, client.archive_url, client.clips_url, client.config_json) == (
        spec.ref, None, spec.archive_url, spec.config_json)
    assert client.expected == {"version": spec.model_version, "sha256": spec.model_sha256,
                               "filters_hash": spec.filters_hash}


def test_stages_write_both_tables_with_documented_schemas(env, tmp_path):
    spec = env["spec"]
    plan = plan_for(env, tmp_path / "out")
    run_id, stats = run_stages(plan)
    assert sum(s["images"][0].as_py() for s in stats) == len(spec.images)
    tables = Tables(open_location(str(tmp_path / "out")))
    images = tables.read(IMAGES, "trapcam", "1")
    assert images.schema.equals(IMAGES_SCHEMA, check_metadata=False)
    rows = {r["rel_path"]: r for r in images.to_pylist()}
    assert len(rows) == len(spec.images)
    for rel, row in rows.items():
        expected = "failed" if rel in spec.failed else "empty" if rel in spec.blank else "ok"
        assert row["status"] == expected, rel
        assert row["run_id"] == run_id and row["filters_hash"] == plan.filters.hash
    assert rows["cam02/DSC_0099.JPG"]["error_reason"] == "truncated"
    assert rows["cam01/2024-05-01/IMG_20240501_080000.jpg"]["detection_count"] == 4
    dets = tables.read(DETECTIONS, "trapcam", "1")
    assert dets.schema.equals(DETECTIONS_SCHEMA, check_metadata=False)
    assert dets.num_rows == 4 * (len(spec.good) - len(spec.blank))
    first = tables.parts(IMAGES, "trapcam", "1")[0]
    meta = pq.read_schema(tmp_path / "out" / IMAGES / "model_name=trapcam" / "model_version=1" / first).metadata
    assert b"labels" in meta[METADATA_KEY] and tables.metadata("trapcam", "1")["model"]["labels"] == ["deer", "fox"]


def test_done_keys_skip_failed_but_retry_read_errors(env, tmp_path):
    plan = plan_for(env, tmp_path / "out")
    run_stages(plan)
    tables = Tables(open_location(str(tmp_path / "out")))
    done = tables.done_keys("trapcam", "1", plan.filters.hash)
    assert len(done) == len(env["spec"].images)
    assert tables.done_keys("trapcam", "1", "another-filter-set") == set()
    assert len(tables.done_keys("trapcam", "1", plan.filters.hash, retry_failed=True)) == len(env["spec"].good)
    again = plan_for(env, tmp_path / "out")
    assert (again.selection.already_done, again.selection.todo) == (len(env["spec"].images), [])


def test_orphaned_detections_are_ignored_by_readers_and_removed_when_their_run_is_dead(env, tmp_path):
    out = tmp_path / "out"
    plan = plan_for(env, out)
    run_id, _ = run_stages(plan, rows_per_file=100)
    tables = Tables(open_location(str(out)))
    part = tables.parts(IMAGES, "trapcam", "1")[0]
    # A crash between the two writes: the detections part exists, its images part does not.
    os.remove(out / IMAGES / "model_name=trapcam" / "model_version=1" / part)
    rerun = plan_for(env, out)
    assert len(rerun.selection.todo) == len(env["spec"].images)  # nothing counts as done
    images = tables.current_images("trapcam", "1", plan.filters.hash)
    assert images.empty and tables.committed_detections(images, "trapcam", "1", plan.filters.hash).empty

    manifest = RunManifest.start(run_id, "reprocess")
    write_manifest(tables.storage, manifest)
    assert is_live(manifest) is False  # our own pid: a leftover of this very process, not another driver
    assert tables.remove_orphans(live=lambda r: True) == []  # a live run's files are left alone
    removed = tables.remove_orphans()
    assert [os.path.basename(p) for p in removed] == [part]
    assert tables.parts(DETECTIONS, "trapcam", "1") == []


def test_oversized_files_are_refused_without_reading_them(env, monkeypatch):
    import batch.reprocess.read as read

    plan = plan_for(env, env["dir"] / "unused")
    table = entries_table([e for e in plan.selection.todo if e.size_bytes > 10][:3])
    monkeypatch.setattr(read, "MAX_FILE_BYTES", 10)
    monkeypatch.setattr(read.cached_location(str(env["archive"])).fs, "cat_file",
                        lambda *a, **k: pytest.fail("read an oversized file"))
    out = read_and_prepare(table, archive_url=str(env["archive"]), config_json=_spec(plan, "x", 1).config_json)
    assert set(out["error_reason"]) == {"too_large"}
    files = read_files(table, archive_url=str(env["archive"]))
    assert set(files["error_reason"]) == {"too_large"} and list(files["data"]) == [None] * 3


def test_serve_answers_from_another_version_or_filter_set_are_refused():
    from batch.reprocess.detect import check_served
    from ground.errors import BatchError
    from model_store import ImageDetections

    res = ImageDetections.model_validate({"model": {"name": "m", "version": "2", "sha256": "a" * 64}, "width": 1,
                                          "height": 1, "detections": [],
                                          "filters": {"names": [], "hash": "f1", "configs": []}})
    check_served(res, {"version": "2", "sha256": "a" * 64, "filters_hash": "f1"})
    with pytest.raises(BatchError, match=r"version '2' \(expected '1'\)"):
        check_served(res, {"version": "1", "sha256": "a" * 64, "filters_hash": "f1"})
    with pytest.raises(BatchError, match="filters_hash"):
        check_served(res, {"version": "2", "sha256": "a" * 64, "filters_hash": "f2"})


class _FakeDeployment:
    """Stands in for the Serve handle (not under test): answers each `detect_bytes_many` call from a script, as the
    replica does: a typed error (one with an HTTP status) in its image's place, any other error for the whole call."""

    def __init__(self, script):
        self.script = script  # per payload: list of exceptions to meet before answering
        self.in_flight = self.most_in_flight = 0
        self.calls: list[int] = []  # images per call
        self.detect_bytes_many = self

    def remote(self, images, ref, filters, tiling=None):
        self.in_flight += len(images)
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.calls.append(len(images))
        return _FakeResponse(self, images)


class _FakeResponse:
    def __init__(self, owner, images):
        self.owner, self.images = owner, images

    def result(self):
        from model_store import ImageDetections

        self.owner.in_flight -= len(self.images)
        answers = []
        for data in self.images:
            failures = self.owner.script.get(data, [])
            exc = failures.pop(0) if failures else None
            if exc is not None and getattr(exc, "status", None) is None:
                raise exc  # not the image's fault: the call fails as a whole
            answers.append(exc or ImageDetections.model_validate(  # what the replica answers: the record, as it is
                {"model": {"name": "m", "version": "1", "sha256": "a" * 64}, "width": 4, "height": 3,
                 "detections": [], "filters": {"names": [], "hash": "f1", "configs": []}}))
        return answers


def test_serve_client_waits_out_overload_keeps_a_window_and_records_refusals(monkeypatch):
    import batch.reprocess.detect as inference
    from ground.errors import ImageDecodeError, OverloadedError

    monkeypatch.setattr(inference.time, "sleep", lambda s: None)
    fake = _FakeDeployment({b"busy": [OverloadedError("full")] * 5,
                            b"junk": [ImageDecodeError("not_image", "not an image")]})
    monkeypatch.setattr(inference, "detector_handle", lambda *a: fake)
    client = inference.ServeClient(ClientSettings("m", "m:1", None, {"version": "1", "sha256": "a" * 64,
                                                                   "filters_hash": "f1"}, window=3))
    rows = client(_bytes_batch([b"ok%d" % i for i in range(6)] + [b"busy", b"junk"])).to_pylist()
    assert [r["status"] for r in rows] == ["empty"] * 7 + ["failed"]  # five 503s waited out, not failed
    assert rows[-1]["error_reason"] == "not_image"  # the decoder's reason, as a read task would record it
    assert fake.most_in_flight == 3
    assert fake.calls[:3] == [3, 3, 2]  # several images to a call, never more than the window in flight
    assert sum(fake.calls) == 8 + 5  # each 503 sent its image again, and nothing else went twice


def _bytes_batch(data: list[bytes]) -> dict[str, np.ndarray]:
    n = len(data)
    batch = {"uri": np.array([f"u{i}" for i in range(n)], dtype=object), "status": np.array(["pending"] * n, object),
             "error_reason": np.array([None] * n, object), "error": np.array([None] * n, object),
             "data": np.array(data, dtype=object), "capture_time_us": np.zeros(n, np.int64)}
    for k in ("rel_path", "content_id", "camera_id", "capture_time_source"):
        batch[k] = np.array(["x"] * n, dtype=object)
    batch["size_bytes"] = np.ones(n, np.int64)
    return batch


def test_serve_client_retries_a_dead_replica_but_not_a_bug(monkeypatch):
    """Only transient failures are sent again: a replica that died, one not ready yet; a bug is raised at once."""
    from ray.exceptions import ActorDiedError

    import batch.reprocess.detect as inference
    from ground.errors import NotReadyError

    monkeypatch.setattr(inference.time, "sleep", lambda s: None)
    expected = {"version": "1", "sha256": "a" * 64, "filters_hash": "f1"}
    fake = _FakeDeployment({b"restart": [ActorDiedError(), NotReadyError("warming up")]})
    monkeypatch.setattr(inference, "detector_handle", lambda *a: fake)
    client = inference.ServeClient(ClientSettings("m", "m:1", None, expected))
    rows = client(_bytes_batch([b"restart", b"ok"])).to_pylist()
    assert [r["status"] for r in rows] == ["empty", "empty"] and fake.script[b"restart"] == []

    bug = KeyError("detections")
    fake = _FakeDeployment({b"bug": [bug, bug, bug]})
    monkeypatch.setattr(inference, "detector_handle", lambda *a: fake)
    with pytest.raises(KeyError):
        inference.ServeClient(ClientSettings("m", "m:1", None, expected))(_bytes_batch([b"bug"]))
    assert len(fake.script[b"bug"]) == 2  # tried once, not three times


def test_run_summary_names_the_code_of_trapline_errors():
    from batch.reprocess.failures import describe_error
    from model_store import ModelRunError

    assert describe_error(ModelRunError("model m:1 failed on [1, 3, 9, 9]")) == \
        "model_error: model m:1 failed on [1, 3, 9, 9]"
    assert describe_error(OSError("disk full")) == "OSError: disk full"


def test_a_failed_stage_is_named_whether_a_task_or_an_actor_pool_ran_it():
    """Ray's remote traceback names a task's stage `ray::MapBatches(f)()` and an actor pool's
    `ray::MapWorker(MapBatches(Cls)).submit()` (the inference actors); the run's error names either."""
    from batch.reprocess.failures import describe_error

    class RayTaskError(Exception):  # what describe_error unwraps goes by its type's name, as Ray's does
        pass

    cause = "botocore.exceptions.ClientError: An error occurred (SlowDown) when calling the PutObject operation"
    for header, stage in (("ray::MapBatches(write_results)() (pid=1, ip=127.0.0.1)", "MapBatches(write_results)"),
                          ("ray::MapWorker(MapBatches(DetectorActor)).submit() (pid=2, ip=127.0.0.1, actor_id=0f59)",
                           "MapBatches(DetectorActor)")):
        error = describe_error(RayTaskError(f"{header}\n  File \"x.py\", line 1, in f\n{cause}"))
        assert error == f"{stage}: ClientError: An error occurred (SlowDown) when calling the PutObject operation"
    # the run's writer actor, driven by the driver: its own name and the storage error behind Ray's wrapper
    from batch.reprocess.writer import PartWriteError

    wrapped = RayTaskError(f"ray::PartWriter.write() (pid=3, ip=127.0.0.1)\n  File \"x.py\", line 1, in f\n{cause}")
    assert describe_error(PartWriteError("PartWriter(write_results)", wrapped)) == (
        "PartWriter(write_results): ClientError: An error occurred (SlowDown) when calling the PutObject operation")


def test_workers_get_the_drivers_s3_settings_only_when_there_are_some():
    from batch.reprocess.dataset import worker_env

    assert worker_env({"HOME": "/root"}) == {}
    env = worker_env({"TRAPLINE_S3_ENDPOINT_URL": "http://s3:9000", "AWS_REGION": "eu-west-1", "PATH": "/bin"})
    assert env == {"runtime_env": {"env_vars": {"TRAPLINE_S3_ENDPOINT_URL": "http://s3:9000",
                                                "AWS_REGION": "eu-west-1"}}}


def test_part_names_are_deterministic_per_batch():
    keys = [("s3://b/a.jpg", "etag=1"), ("s3://b/b.jpg", "etag=2")]
    run = "20240601T120000Z-abcdef"
    assert part_name(run, keys) == part_name(run, list(keys))
    assert part_name(run, keys) != part_name(run, keys[:1])
    assert part_name(run, keys).startswith(f"part-{run}-") and part_name(run, keys).endswith(".parquet")


def test_result_table_for_an_all_failed_batch_keeps_schema():
    batch = {"uri": np.array(["u"], object), "rel_path": np.array(["u"], object), "content_id": np.array(["c"], object),
             "size_bytes": np.array([0]), "camera_id": np.array([None], object), "capture_time_us": np.array([0]),
             "capture_time_source": np.array(["mtime"], object), "status": np.array(["failed"], object),
             "error_reason": np.array(["empty"], object), "error": np.array(["empty body"], object)}
    t = result_table(batch, {})
    assert t.schema.equals(RESULT_SCHEMA) and t["detections"].to_pylist() == [[]]
    assert t["status"].to_pylist() == ["failed"] and t["width"].to_pylist() == [None]


def test_manifests_round_trip_and_liveness(tmp_path):
    tables = Tables(open_location(str(tmp_path)))
    m = RunManifest.start(new_run_id(), "reprocess", counts={"found": 3})
    m.pid = 2 ** 22 + 12345  # no such process
    write_manifest(tables.storage, m)
    [back] = read_manifests(tables.storage)
    assert back.run_id == m.run_id and back.counts == {"found": 3} and back.status == "running"
    assert is_live(back) is False
    back.host, back.pid = "some-other-host", 1
    assert is_live(back) is True  # fresh heartbeat from a host we cannot check
    back.finish("succeeded")
    assert is_live(back) is False and back.ended_at


def test_serve_run_fits_into_free_cpus():
    """--via serve on a cluster whose replicas hold most CPUs: shares shrink instead of stalling."""
    from batch.reprocess.dataset import PlanSpec
    from batch.reprocess.job import fit_to_free_cpus
    from ground.errors import BatchError

    options = ReprocessOptions(archive="a", out="o", model="m:1", via="serve", decode="tasks")
    spec = PlanSpec(options=options, archive_url="a", out_url="o", store_url="s", model_name="m", model_version="1",
                    model_sha256="0" * 64, ref="m:1", config_json="{}", filter_specs=[], filters_hash="h",
                    run_id="r", metadata={}, concurrency=1, num_cpus=0.25)
    logs = []
    fitted = fit_to_free_cpus(spec, {"CPU": 0.75}, logs.append)
    assert fitted.num_cpus + fitted.read_cpus + fitted.write_cpus <= 0.75
    assert logs and "0.75 free CPUs" in logs[0]
    assert fit_to_free_cpus(spec, {"CPU": 2.0}, logs.append) is spec
    # Decoding in the replica, the clients read the files themselves: no read tasks to make room for.
    reading = dataclasses.replace(spec, options=options.model_copy(update={"decode": "actors"}))
    assert fit_to_free_cpus(reading, {"CPU": 0.5}, logs.append) is reading
    fitted = fit_to_free_cpus(reading, {"CPU": 0.4}, logs.append)
    assert fitted.num_cpus + fitted.write_cpus <= 0.4 and "0.4 free CPUs" in logs[-1]
    with pytest.raises(BatchError, match="no free CPU"):
        fit_to_free_cpus(spec, {"CPU": 0.0}, logs.append)


class _RefusingBackend:
    """An ONNX Runtime stand-in that refuses every input the way ORT words it (the model is not under test)."""

    device, fixed_batch = "cpu", None

    def expects(self) -> str:
        return "images [1, 3, 320, 320] tensor(float)"

    def run(self, batch):
        raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: images\n"
                           "index: 0 Got: 4 Expected: 1")


def test_a_model_that_fails_on_a_batch_fails_its_rows_with_the_reason_not_the_job(env):
    plan = plan_for(env, env["dir"] / "unused")
    spec = _spec(plan, "x", 1)
    actor = DetectorActor(DetectorSettings(spec.store_url, spec.ref, spec.filter_specs))
    actor.detector.backend = _RefusingBackend()
    prepared = read_and_prepare(entries_table(plan.selection.todo), archive_url=spec.archive_url,
                                config_json=spec.config_json)
    statuses = list(prepared["status"])
    rows = actor(prepared).to_pylist()
    pending = [r for r, s in zip(rows, statuses, strict=True) if s == "pending"]
    assert pending and all(r["status"] == "failed" and r["error_reason"] == "model_error" for r in pending)
    msg = pending[0]["error"]
    assert msg.startswith("model trapcam:1 failed on an input of shape [") and "\n" not in msg
    assert "the graph expects images [1, 3, 320, 320] tensor(float): [ONNXRuntimeError]" in msg
    earlier = {r["rel_path"]: r["error_reason"] for r in rows if r["error_reason"] != "model_error"}
    assert earlier == env["spec"].failed  # files that failed to read/decode keep their own reason


def test_progress_reports_the_rate_after_the_first_part_and_the_summary_says_it(monkeypatch):
    """Start-up (Ray Data, actors loading the model) counts in the overall rate, not in the steady one."""
    from batch.reprocess import progress as pipeline
    from batch.reprocess.summary import RunReport, apply_progress, format_report

    now = [10.0]
    monkeypatch.setattr(pipeline.time, "perf_counter", lambda: now[0])
    progress = pipeline.Progress(total=400, started=0.0)
    part = {"images": 100, "ok": 100, "empty": 0, "failed": 0, "detections": 5, "raw_detections": 7}
    assert progress.steady_rate == 0.0  # nothing yet
    now[0] = 12.0
    progress.add_part(part)  # 100 images after a 12 s start
    assert progress.steady_rate == 100 / 12  # one part: only the overall rate is known
    now[0] = 14.0
    progress.add_part(part)
    assert progress.first_part == (12.0, 100) and progress.steady_rate == 200 / 14  # the first part is half
    for t in (16.0, 18.0):
        now[0] = t
        progress.add_part(part)
    assert progress.first_part == (12.0, 100) and progress.steady_rate == 300 / 6  # a quarter: from it on
    report = RunReport(run_id="r", status="succeeded", model="m:1", filters_hash="h", archive="a", out="o")
    apply_progress(report, progress)
    assert report.images_per_s == round(400 / 18, 3) and report.steady_images_per_s == 50.0
    assert "22.2 images/s (50.0 after the first part)" in format_report(report)


def test_the_steady_rate_leaves_out_the_parts_made_alongside_the_first(monkeypatch):
    """Two parts at a time (two actors, or the inline path through a deployment), 20 images/s in all: each pair
    lands within a second, so the second part was almost done when the first landed. Counted, it made the rate
    800 / 41 + 100 / 41 (22 images/s); left out, the rate errs low by the part of the second made after 19 s."""
    from batch.reprocess import progress as pipeline

    now = [0.0]
    monkeypatch.setattr(pipeline.time, "perf_counter", lambda: now[0])
    progress = pipeline.Progress(total=1000, in_flight=2, started=0.0)
    part = {"images": 100, "ok": 100, "empty": 0, "failed": 0, "detections": 0, "raw_detections": 0}
    for t in (19.0, 20.0, 29.0, 30.0, 39.0, 40.0, 49.0, 50.0, 59.0, 60.0):  # pairs of parts, 200 images / 20 s
        now[0] = t
        progress.add_part(part)
        if progress.parts == 2:
            assert progress.steady_rate == 200 / 20  # nothing begun after the first part has landed yet
    assert progress.steady_rate == 800 / (60 - 19)  # 19.5 images/s: of the truth, 20, it misses part of one part
    assert progress.rate == 1000 / 60


def test_a_stop_at_one_part_counts_the_parts_the_writer_answered_with_it():
    """The writer answers the parts it has written so far, two at once when the driver was slow; a stop seen at
    the first is raised only once the second, committed too, is counted (CI: a manifest of 2 over 3 committed)."""
    from batch.reprocess.progress import Progress
    from ground.errors import RunStoppedError

    progress, told = Progress(total=10), []

    def on_part(p: Progress) -> None:
        told.append(p.counts["images"])
        raise RunStoppedError("stopped on request")

    part = {"images": 2, "ok": 2}
    with pytest.raises(RunStoppedError, match="stopped on request"):
        progress.add_parts([part, part], on_part)
    assert (progress.parts, progress.counts["images"], told) == (2, 4, [2, 4])


def test_a_plan_looks_done_images_up_by_keys_relative_to_its_archive(env, tmp_path):
    import shutil

    from model_store.tables.done import relative_key

    plan = plan_for(env, tmp_path / "out")
    run_stages(plan)
    tables = Tables(open_location(str(tmp_path / "out")))
    root = plan.listing.entries.table["uri"][0].as_py()
    prefix = root[:len(root) - len(plan.listing.entries.table["rel_path"][0].as_py())]
    keys = tables.done_under("trapcam", "1", plan.filters.hash, prefix).keys
    assert len(keys) == len(env["spec"].images) and keys[0].as_py().count("\x00") == 1
    assert set(keys.to_pylist()) == set(relative_key(plan.listing.entries.table["rel_path"],
                                                     plan.listing.entries.table["content_id"]).to_pylist())
    retried = tables.done_under("trapcam", "1", plan.filters.hash, prefix, retry_failed=True)
    assert len(retried.keys) == len(env["spec"].good)
    assert len(tables.done_under("trapcam", "1", plan.filters.hash, "/elsewhere/").keys) == 0
    # the same files under another root are the same archive, moved (issue 59: model_store/tables/roots.py): done
    copy = tmp_path / "copy"
    shutil.copytree(plan.options.archive, copy)
    other = plan_for({**env, "archive": str(copy)}, tmp_path / "out")
    assert other.selection.already_done == len(plan.listing.entries) and len(other.selection.todo) == 0
    assert other.moved_from == [prefix]
