"""The online door's recorder without Ray: a real store, a real ONNX detector, local archive and tables.

Checked here: what an upload keeps (bytes once, rows once, the record), idempotency (same bytes, same key,
a key reused with other bytes), failed rows for undecodable bytes, capture times and their sources, the skip
key a reprocess of the same version uses, and the journal's recovery of a recorder that died before its flush.
The same flows over HTTP on a real Ray (and S3, and a SIGKILLed replica) are in tests/integration/test_recording.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import plan_run
from ground.errors import ConflictError, ImageDecodeError, InvalidParameterError, StorageUnavailableError
from model_store import ModelStore, decode_image
from model_store.tables import journal, writer
from model_store.tables.locations import open_location
from model_store.tables.maintenance import check, compact
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from serve.config import RecordConfig
from serve.recording.recorder import Recorder, Upload
from serve.recording.uploads import capture_time
from tests.fixtures.archive import brightness_config, brightness_model, encode, picture, process_without_ray


@pytest.fixture
def store(tmp_path) -> ModelStore:
    s = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    s.publish(brightness_model(tmp_path / "b.onnx"), "det", "1", brightness_config())
    s.promote("det:1")
    return s


def detect_with(store: ModelStore):
    detector = store.load_detector("det@production")

    async def detect(data: bytes):
        [record] = detector.predict_batch([decode_image(data)])
        return record, record.model_dump(mode="json")

    return detect


def make_recorder(tmp_path, store, **cfg) -> Recorder:
    return Recorder(RecordConfig(archive=str(tmp_path / "archive"), tables=str(tmp_path / "tables"),
                                 flush_interval_s=3600, **cfg), store)


def record(recorder, store, upload: Upload):
    return asyncio.run(recorder.record(upload, "det@production", detect_with(store), [], _no_classifier))


async def _no_classifier(name: str) -> str:
    raise AssertionError("no classifier is served here")


def day(seed: int, when: dt.datetime | None = None) -> bytes:
    return encode(picture(160, 120, night=False, seed=seed), exif_time=when)


def test_uploads_are_kept_once_and_recorded_once(tmp_path, store):
    rec = make_recorder(tmp_path, store)
    try:
        first, created = record(rec, store, Upload("cam01", day(1)))
        assert created and first.status == "ok" and first.model == {"name": "det", "version": "1"}
        again, created = record(rec, store, Upload("cam01", day(1)))
        assert not created and again == first  # the first record, nothing stored twice
        other_camera, created = record(rec, store, Upload("cam02", day(1)))
        assert created and other_camera.image_id != first.image_id
        night, created = record(rec, store, Upload("cam01", encode(picture(160, 120, night=True, seed=2))))
        assert created and night.status == "empty"
        broken, created = record(rec, store, Upload("cam01", b"\xff\xd8\xff\xe0 not really a jpeg"))
        assert created and broken.status == "failed" and broken.http_status == 422
        assert broken.answer["error"]["type"] == "invalid_image"
        assert rec.flush_all() == 4
    finally:
        rec.close()

    tables = Tables(open_location(str(tmp_path / "tables")))
    images = tables.read(IMAGES, "det", "1")
    assert images.num_rows == 4  # one row per distinct upload
    assert sorted(images["status"].to_pylist()) == ["empty", "failed", "ok", "ok"]
    failed = images.filter(pc.equal(images["status"], "failed")).to_pylist()[0]
    assert failed["error_reason"] != "" and failed["width"] is None
    kept = tables.read(DETECTIONS, "det", "1").filter(pc.field("kept"))
    assert kept.num_rows > 0 and set(kept["uri"].to_pylist()) <= set(images["uri"].to_pylist())
    archived = sorted(p for p in (tmp_path / "archive").rglob("*") if p.is_file())
    assert len(archived) == 4  # the same bytes from the same camera are one object
    assert {p.relative_to(tmp_path / "archive").parts[0] for p in archived} == {"cam01", "cam02"}
    assert journal.writers(tables.storage) == [] or all(
        not journal.markers(tables.storage, w) for w in journal.writers(tables.storage))
    manifest = json.loads((tmp_path / "tables" / "_runs" / f"{rec.writer}.json").read_text())
    assert manifest["kind"] == "record" and manifest["status"] == "succeeded"
    # A reprocess of the same version and filters finds every recorded upload done.
    plan = plan_run(ReprocessOptions(archive=str(tmp_path / "archive"), out=str(tmp_path / "tables"),
                                     model="det", store=store.root))
    assert plan.selection.found == 4 and plan.selection.todo == []


def test_idempotency_keys_and_bad_input(tmp_path, store):
    rec = make_recorder(tmp_path, store)
    try:
        doc, created = record(rec, store, Upload("cam01", day(1), idempotency_key="k-1"))
        assert created
        same, created = record(rec, store, Upload("cam01", day(1), idempotency_key="k-1"))
        assert not created and same.image_id == doc.image_id
        with pytest.raises(ConflictError, match="other bytes") as info:
            record(rec, store, Upload("cam01", day(2), idempotency_key="k-1"))
        assert info.value.status == 409
        with pytest.raises(InvalidParameterError, match="camera"):
            record(rec, store, Upload("../etc", day(3)))
        with pytest.raises(InvalidParameterError, match="captured_at"):
            record(rec, store, Upload("cam01", day(3), captured_at="yesterday"))
        with pytest.raises(ImageDecodeError) as empty:
            record(rec, store, Upload("cam01", b""))
        assert empty.value.status == 400
    finally:
        rec.close()
    # nothing of the refused requests was kept: one object, one row
    assert len([p for p in (tmp_path / "archive").rglob("*") if p.is_file()]) == 1
    assert Tables(open_location(str(tmp_path / "tables"))).read(IMAGES).num_rows == 1


def test_capture_time_sources():
    received = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.timezone.utc)
    exif = dt.datetime(2024, 5, 1, 6, 30)
    assert capture_time("2024-05-01T06:30:00", b"", received) == (exif, "upload")
    assert capture_time("2024-05-01T08:30:00+02:00", b"", received) == (exif, "upload_utc")
    assert capture_time(None, day(1, exif), received) == (exif, "exif")
    assert capture_time(None, day(1), received) == (dt.datetime(2026, 11, 25, 8, 0), "received")


def test_answered_uploads_of_a_dead_recorder_are_committed_once(tmp_path, store):
    """A recorder that answered and died before its flush: its uploads are pending (a reprocess skips them)
    until the next recorder or reprocess takes over its stale lease and commits them, once."""
    dead = make_recorder(tmp_path, store)
    docs = [record(dead, store, Upload("cam01", day(i)))[0] for i in range(3)]
    dead._stop.set()  # it dies: no flush, no release, heartbeat stopped
    dead._lease._stop.set()
    tables = Tables(open_location(str(tmp_path / "tables")))
    assert set(journal.markers(tables.storage, dead.writer)) == {d.image_id for d in docs}
    options = ReprocessOptions(archive=str(tmp_path / "archive"), out=str(tmp_path / "tables"), model="det",
                               store=store.root)
    assert plan_run(options).selection.todo == []  # pending: not processed a second time
    assert journal.recover(tables.storage) == 0  # its lease is fresh: it might still flush
    retry = make_recorder(tmp_path, store)  # a client that saw no answer retries on another replica
    try:
        again, created = record(retry, store, Upload("cam01", day(0)))
        assert not created and again.image_id == docs[0].image_id  # the first record, no second claim
    finally:
        retry.close()
    lease_file = tmp_path / "tables" / "_leases" / f"online@{dead.writer}.json"
    holder = json.loads(lease_file.read_text())
    lease_file.write_text(json.dumps({**holder, "heartbeat_at": 0.0}))  # as after ttl without a heartbeat
    assert journal.recover(tables.storage) == 3
    assert journal.recover(tables.storage) == 0
    images = tables.read(IMAGES, "det", "1")
    assert sorted(images["uri"].to_pylist()) == sorted(d.stored.uri for d in docs)
    assert journal.markers(tables.storage, dead.writer) == {} and not lease_file.exists()
    assert {journal.state(tables.storage, journal.read(tables.storage, d.image_id)) for d in docs} == {"committed"}


def _rows(tables: Tables, table: str):
    t = tables.read(table, "det", "1")
    return sorted(map(str, t.to_pylist()))


def test_compact_keeps_the_rows_and_check_finds_copies_and_orphans(tmp_path, store, monkeypatch):
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 3)  # row groups of 3 rows, as of 10,000 at scale
    rec = make_recorder(tmp_path, store, flush_rows=3)
    try:
        for i in range(10):
            record(rec, store, Upload(f"cam{i % 2}", day(i)))
            rec.flush()  # as many small parts as online recording makes between compactions
    finally:
        rec.close()
    tables = Tables(open_location(str(tmp_path / "tables")))
    before = {t: _rows(tables, t) for t in (IMAGES, DETECTIONS)}
    assert len(tables.parts(IMAGES, "det", "1")) == 10
    assert check(str(tmp_path / "tables")).clean

    report = compact(str(tmp_path / "tables"), target_rows=4)
    assert (report.parts_before, report.parts_after, report.images_rows) == (10, 3, 10)
    assert len(tables.parts(IMAGES, "det", "1")) == 3
    assert {t: _rows(tables, t) for t in before} == before
    assert compact(str(tmp_path / "tables"), target_rows=4).parts_after == 3  # nothing small left: unchanged

    # A compaction interrupted after writing its merged part: every row is in two files. Readers see each once;
    # check reports the copies; the next compaction merges them away.
    part_dir = tmp_path / "tables" / "images" / "model_name=det" / "model_version=1"
    first = sorted(part_dir.iterdir())[0]
    (part_dir / first.name.replace("part-", "part-20000101T000000Z-abcdef-")).write_bytes(first.read_bytes())
    assert {t: _rows(tables, t) for t in before} == before
    found = check(str(tmp_path / "tables"))
    assert found.exact_copies == pq.read_metadata(first).num_rows and not found.clean
    # ... and a detections file whose part never committed
    orphan = tmp_path / "tables" / "detections" / "model_name=det" / "model_version=1" / "part-x.parquet"
    orphan.write_bytes(next(orphan.parent.iterdir()).read_bytes())
    assert check(str(tmp_path / "tables")).uncommitted_files == ["detections/det:1/part-x.parquet"]
    orphan.unlink()
    compact(str(tmp_path / "tables"), target_rows=100)
    assert check(str(tmp_path / "tables")).clean
    assert len(tables.parts(IMAGES, "det", "1")) == 1 and {t: _rows(tables, t) for t in before} == before
    merged = pq.ParquetFile(part_dir / tables.parts(IMAGES, "det", "1")[0])  # in uri order, in small row groups:
    uris = merged.read(columns=["uri"])["uri"].to_pylist()  # a filtered read skips groups by their statistics
    assert uris == sorted(uris) and merged.metadata.num_row_groups == 4


def test_a_new_version_keeps_the_capture_time_only_the_upload_said(tmp_path, store):
    """The file says nothing of `captured_at` or the time of receipt: a reprocess takes them from the recorded row."""
    rec = make_recorder(tmp_path, store)
    try:
        given, _ = record(rec, store, Upload("cam01", day(1), captured_at="2024-05-01T06:30:00"))
        received, _ = record(rec, store, Upload("cam01", day(2)))
    finally:
        rec.close()
    store.publish(tmp_path / "b.onnx", "det", "2", brightness_config(score_threshold=0.3))
    store.promote("det:2")
    process_without_ray(str(tmp_path / "archive"), str(tmp_path / "tables"), store.root, "det")
    v2 = {r["uri"]: r for r in Tables(open_location(str(tmp_path / "tables"))).read(IMAGES, "det", "2").to_pylist()}
    assert (v2[given.stored.uri]["capture_time"], v2[given.stored.uri]["capture_time_source"]) == (
        dt.datetime(2024, 5, 1, 6, 30), "upload")
    assert (v2[received.stored.uri]["capture_time"], v2[received.stored.uri]["capture_time_source"]) == (
        received.capture_time, "received")


def test_snips_of_recorded_uploads_are_written_and_rowed_like_reprocess_crops(tmp_path, store):
    rec = make_recorder(tmp_path, store, crops={"padding": 0.1, "square": True, "min_size": 0})
    try:
        doc, _ = record(rec, store, Upload("cam01", day(1)))
        rec.flush_all()
    finally:
        rec.close()
    kept = doc.answer["detections"]
    assert kept and len(doc.snips) == len(kept)
    tables = Tables(open_location(str(tmp_path / "tables")))
    snips = tables.read("snips", "det", "1").to_pylist()
    assert sorted(s["crop_uri"] for s in snips) == sorted(s["crop_uri"] for s in doc.snips)
    for s in snips:
        path = s["crop_uri"]
        assert path.startswith(str(tmp_path / "tables" / "crops")) and open(path, "rb").read(3) == b"\xff\xd8\xff"
        assert s["crop_width"] == s["crop_height"]  # square
    assert tables.metadata("det", "1")["crops"]["square"] is True


def test_an_archive_that_cannot_be_written_answers_503_and_keeps_nothing(tmp_path, store):
    (tmp_path / "not-a-dir").write_text("a file where the archive should be")
    rec = Recorder(RecordConfig(archive=str(tmp_path / "not-a-dir" / "archive"), tables=str(tmp_path / "tables"),
                                flush_interval_s=3600), store)
    try:
        with pytest.raises(StorageUnavailableError, match="nothing was kept") as info:
            record(rec, store, Upload("cam01", day(1)))
        assert info.value.status == 503
    finally:
        rec.close()
    tables = Tables(open_location(str(tmp_path / "tables")))
    assert tables.read(IMAGES).num_rows == 0
    assert all(not journal.markers(tables.storage, w) for w in journal.writers(tables.storage))
    assert not (tmp_path / "tables" / "_online" / "images").exists()
