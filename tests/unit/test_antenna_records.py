"""What the Antenna door answered, recorded in trapline's tables (`antenna.record`), without Ray or Antenna: a real
store with the demo models, real ONNX detectors, images served over real HTTP, the online door's recorder writing
local tables. Checked: exactly one row per image URL and detector version however often Antenna sends the image
(a job run again, a task redelivered), a failed row for an image that cannot be decoded and none for one that could
not be fetched, camera and capture time from the URL, and `trapline report`, exports and occurrences (the track
filter) over those rows. (The same, through a real Antenna's jobs: tests/integration/test_antenna.py.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import warnings
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pyarrow.compute as pc
import pytest

from batch.export.options import ExportOptions
from batch.export.run import run_export
from batch.review import ReportOptions, build_report
from ground.errors import ServeConfigError
from ground.fetch_guard import PRIVATE_HOSTS_ENV
from model_store import ImageDetections, ModelStore, decode_image
from model_store.demo.photos import PHOTOS
from model_store.demo.publish import DEMO_NAME, SPECIES_NAME, publish_demo
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from serve.antenna.catalog import Catalog
from serve.antenna.fetch import ImageFetcher
from serve.antenna.process import Processor
from serve.antenna.protocol import PipelineRequest
from serve.antenna.records import DEFAULT_CAMERA, SourceRecorder, source_image_id, url_source
from serve.antenna_config import AntennaRecordConfig
from serve.config import ServeConfig, parse_serve_config
from tests.fixtures.files_server import serving_directory
from tests.fixtures.pictures import API, app_for
from tests.fixtures.postprocess import postprocess

with warnings.catch_warnings():  # starlette's TestClient warns about httpx; it is still what FastAPI ships
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

AUTH = {"Authorization": f"Bearer {API}"}

CAPTURES = "media/example_captures/12"  # as Antenna's uploads lay them out: <deployment>/<time>-snapshot.jpg


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    store = ModelStore(str(tmp_path_factory.mktemp("antenna-records-store")))
    publish_demo(store, with_torch=False)
    return store


@pytest.fixture
def site(tmp_path, monkeypatch) -> Iterator[str]:
    """Antenna's media over plain HTTP: two photos named by their capture time and a corrupt JPEG. On 127.0.0.1,
    allowed by name: in the door's config (`fetch.private_hosts`) and, for the batch commands, the environment."""
    monkeypatch.setenv(PRIVATE_HOSTS_ENV, "127.0.0.1")
    root = tmp_path / "site"
    (root / CAPTURES).mkdir(parents=True)
    photos = sorted(PHOTOS.glob("*.jpg"))
    (root / CAPTURES / "20241203222900-snapshot.jpg").write_bytes(photos[0].read_bytes())
    (root / CAPTURES / "20241203223900-snapshot.jpg").write_bytes(photos[1].read_bytes())
    (root / CAPTURES / "20241203224900-snapshot.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    with serving_directory(root) as url:
        yield url


def config_dict(store: ModelStore, tmp_path) -> dict:
    return {"store": store.root, "models": [{"name": DEMO_NAME, "classify": [{"model": SPECIES_NAME}]}],
            "classifiers": [{"name": SPECIES_NAME}],
            "record": {"archive": str(tmp_path / "archive"), "tables": str(tmp_path / "tables"),
                       "flush_interval_s": 3600},
            "antenna": {"pipelines": [{"slug": "demo", "detector": DEMO_NAME, "classifier": SPECIES_NAME}],
                        "record": {}, "fetch": {"private_hosts": ["127.0.0.1"]}}}


def serve_config(store: ModelStore, tmp_path) -> ServeConfig:
    return parse_serve_config(config_dict(store, tmp_path))


def record(config: ServeConfig, store: ModelStore, requests: list[PipelineRequest]) -> SourceRecorder:
    """Answer `requests` as the door does, recording them; the recorder, closed (its last flush done)."""
    recorder = SourceRecorder(config.antenna.record, config.record, store,
                              {DEMO_NAME: list(config.model(DEMO_NAME).classify)}, species_version)

    async def go():
        fetcher = ImageFetcher(config.antenna.fetch, config.antenna.fetch_guard())
        processor = Processor(Catalog(config, store), detect_with(store), fetcher, recorder.record)
        try:
            return [await processor.process(r) for r in requests]
        finally:
            await fetcher.aclose()

    try:
        asyncio.run(go())
    finally:
        recorder.close()
    return recorder


def detect_with(store: ModelStore):
    """The served detector of each pinned version (no classifier answers: the recorder asks the live version)."""
    detectors = {}

    async def detect(model: str, version: str, data: bytes, tiling=None) -> ImageDetections:
        key = f"{model}:{version}"
        detectors.setdefault(key, store.load_detector(key))
        [record] = detectors[key].predict_batch([decode_image(data)], tiling=tiling)
        return record

    return detect


async def species_version(name: str) -> str:
    assert name == SPECIES_NAME
    return "1"


def request(slug: str, images: list[tuple[str, str]]) -> PipelineRequest:
    return PipelineRequest(pipeline=slug, source_images=[{"id": i, "url": u} for i, u in images])


def test_an_image_answered_again_is_recorded_once_per_detector_version(tmp_path, store, site):
    config = serve_config(store, tmp_path)
    recorder = SourceRecorder(config.antenna.record, config.record, store,
                              {DEMO_NAME: list(config.model(DEMO_NAME).classify)}, species_version)
    good, other, corrupt = (f"{site}/{CAPTURES}/2024120322{m}900-snapshot.jpg" for m in (2, 3, 4))
    images = [("1", good), ("2", other), ("3", corrupt), ("4", f"{site}/{CAPTURES}/missing.jpg")]

    async def go():
        fetcher = ImageFetcher(config.antenna.fetch, config.antenna.fetch_guard())
        processor = Processor(Catalog(config, store), detect_with(store), fetcher, recorder.record)
        try:
            # two requests at once (a push retried while the first is still answered): the journal's claim decides
            first, _ = await asyncio.gather(processor.process(request("demo-v1", images)),
                                            processor.process(request("demo-v1", images)))
            again = await processor.process(request("demo-v1", images))  # Antenna runs the job again
            each = await processor.process_each(request("demo-v1", images))  # its tasks delivered again (pull)
            promoted = await processor.process(request("demo-v2", images[:1]))  # the next detector version
            return first, again, each, promoted
        finally:
            await fetcher.aclose()

    try:
        first, again, each, promoted = asyncio.run(go())
    finally:
        recorder.close()  # the door's shutdown: the last flush
    assert [i.id for i in first.source_images] == ["1", "2"] == [i.id for i in again.source_images]
    assert [e.split(":")[1].strip() for e in first.errors] == ["invalid_image", "image_fetch_failed"]
    assert [(i.id, i.error.type if i.error else None) for i in each.images] == [
        ("1", None), ("2", None), ("3", "invalid_image"), ("4", "image_fetch_failed")]
    # 3 images of version 1 and 1 of version 2 recorded; every other answer found its record
    assert (recorder.recorder.counts["recorded"], recorder.recorder.counts["replayed"]) == (4, 9)

    tables = Tables(open_location(str(tmp_path / "tables")))
    v1 = tables.read(IMAGES, DEMO_NAME, "1", dedupe=False).to_pylist()  # a row stored twice would show twice
    assert sorted(r["uri"] for r in v1) == sorted([good, other, corrupt])  # once each; the 404 has no row
    by_uri = {r["uri"]: r for r in v1}
    assert by_uri[corrupt]["status"] == "failed" and by_uri[corrupt]["error_reason"]
    row = by_uri[good]
    assert (row["camera_id"], row["capture_time"], row["capture_time_source"]) == (
        "12", dt.datetime(2024, 12, 3, 22, 29), "path")
    assert row["rel_path"] == f"{CAPTURES}/20241203222900-snapshot.jpg" and row["content_id"].startswith("sha256=")
    # the tables' kept detections are those Antenna was answered
    kept = tables.read(DETECTIONS, DEMO_NAME, "1", dedupe=False).filter(pc.field("kept")).to_pylist()
    assert first.detections
    for image_id, uri in (("1", good), ("2", other)):
        answered = [d.classifications[0].scores[0] for d in first.detections if d.source_image_id == image_id]
        assert sorted(answered) == pytest.approx(sorted(k["score"] for k in kept if k["uri"] == uri))
    assert [r["uri"] for r in tables.read(IMAGES, DEMO_NAME, "2", dedupe=False).to_pylist()] == [good]

    # what reads the tables reads Antenna's captures: the report (thumbnails fetched from the URLs) and an export
    report = build_report(ReportOptions(str(tmp_path / "tables"), str(tmp_path / "report"), model=f"{DEMO_NAME}:1",
                                        per_band=2))
    assert (report.images, report.failed, report.unreadable) == (3, 1, 0) and report.thumbnails > 0
    run_export(ExportOptions(tables=str(tmp_path / "tables"), format="megadetector", out=str(tmp_path / "md.json"),
                             model=f"{DEMO_NAME}:1"))
    exported = json.loads((tmp_path / "md.json").read_text())["images"]
    assert len(exported) == 3
    # and occurrences: the tracker links the station's detections across its captures, in the URLs' time order
    tracked = postprocess(str(tmp_path / "tables"), "track", {"appearance": "none"}, model=f"{DEMO_NAME}:1")
    assert tracked.occurrences >= 1 and tracked.detections_linked == len(kept)


def test_the_console_shows_recorded_captures_fetched_from_their_urls(tmp_path, store, site):
    """The console over the recorded tables: a capture recorded by its URL has a picture and a thumbnail, fetched by
    the service from that URL under the grant its answer carries (the thumbnail made once); a corrupt one is a typed
    404; a token alone does not make the service fetch a URL, nor does a grant signed for another URL."""
    good, corrupt = (f"{site}/{CAPTURES}/2024120322{m}900-snapshot.jpg" for m in (2, 4))
    record(serve_config(store, tmp_path), store, [request("demo-v1", [("1", good), ("3", corrupt)])])
    tables = str(tmp_path / "tables")
    with TestClient(app_for(config_dict(store, tmp_path))) as client:
        shown = client.get("/v1/pictures/capture", params={"uri": good}, headers=AUTH).json()
        full = client.get(shown["image_url"])  # the grant in the URL, no header: as an <img> asks
        assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
        assert full.content == sorted(PHOTOS.glob("*.jpg"))[0].read_bytes()
        thumb = client.get(shown["thumb_url"])
        assert thumb.status_code == 200 and max(decode_image(thumb.content).shape[:2]) <= 360
        [made] = (tmp_path / "tables" / "_thumbs").rglob("*.jpg")
        assert client.get(shown["thumb_url"]).content == made.read_bytes() == thumb.content
        bad = client.get("/v1/pictures/capture", params={"uri": corrupt}, headers=AUTH).json()
        r = client.get(bad["image_url"])
        assert r.status_code == 404 and r.json()["error"]["kind"] == "picture_unreadable", r.text
        r = client.get("/v1/pictures/file", params={"tables": tables, "uri": good}, headers=AUTH)
        assert r.status_code == 404 and r.json()["error"]["kind"] == "picture_not_found", r.text
        grant = {k: v[0] for k, v in parse_qs(urlsplit(shown["image_url"]).query).items()}
        forged = {**grant, "uri": f"{site}/{CAPTURES}/20241203223900-snapshot.jpg"}
        assert client.get("/v1/pictures/file", params=forged).status_code == 401
        assert client.get("/v1/pictures/file", params=forged, headers=AUTH).status_code == 404


def test_identity_camera_and_time_of_a_url():
    url = "http://antenna.example/media/example_captures/7/20240501101500-snapshot.jpg"
    assert source_image_id(url, "det", "1") == source_image_id(url, "det", "1") != source_image_id(url, "det", "2")
    source = url_source(url, AntennaRecordConfig(), b"x", "id")
    assert (source.camera, source.capture_time) == ("7", dt.datetime(2024, 5, 1, 10, 15))
    # a URL whose path names no camera nor time: the default camera; the time comes from EXIF or receipt
    bare = url_source("http://a/x.jpg?sig=1", AntennaRecordConfig(), b"x", "id")
    assert (bare.camera, bare.capture_time, bare.rel_path) == (DEFAULT_CAMERA, None, "x.jpg")
    custom = AntennaRecordConfig(path_pattern=r"captures/(?P<camera>[^/]+)/")
    assert url_source("http://a/captures/trap-3/a.jpg", custom, b"", "id").camera == "trap-3"


def test_recording_needs_the_tables_of_record(store):
    with pytest.raises(ServeConfigError, match="antenna.record writes"):
        parse_serve_config({"store": store.root, "models": [{"name": DEMO_NAME}],
                            "antenna": {"pipelines": [{"slug": "x", "detector": DEMO_NAME}], "record": {}}})
    with pytest.raises(ServeConfigError, match="unknown named groups"):
        parse_serve_config({"store": store.root, "models": [{"name": DEMO_NAME}],
                            "record": {"archive": "a", "tables": "t"},
                            "antenna": {"pipelines": [{"slug": "x", "detector": DEMO_NAME}],
                                        "record": {"path_pattern": "(?P<station>[^/]+)/"}}})
