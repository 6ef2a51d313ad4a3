"""Keep what the online door sees, on a real local Ray, a real S3-compatible server and real HTTP clients.

One service for the module (one detector `det`, recording into s3://BUCKET/archive and s3://BUCKET/tables,
flushed every second). In order:
1. four clients send 55 uploads: 45 distinct images, 5 retries of some of them, 5 corrupt files ->
   exactly 50 image rows (45 ok/empty, 5 failed) and 50 archive objects, more than one flush of rows; the
   cameras read back;
2. the replica is SIGKILLed during a stream of uploads; clients retry what got no 2xx; after the restart every
   2xx-answered image has exactly one row (what the dead replica answered is committed by its successor);
3. bad uploads get typed 4xx and keep nothing;
4. a `trapline reprocess` of the same version processes 0 images; promote det:2 and reprocess: every image
   has a det:2 row; `trapline tables compact` leaves the same rows in fewer files.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator

import boto3
import httpx
import pyarrow.compute as pc
import pytest
import s3fs

from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from model_store import ModelStore
from model_store.core.clip_settings import ClipSettings
from model_store.tables import journal
from model_store.tables.archive import open_location
from model_store.tables.maintenance import check, compact
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from serve.local import run_local
from serve.polling import wait_until
from tests.fixtures.archive import brightness_config, brightness_model, encode, picture
from tests.fixtures.processes import replica_pid
from tests.fixtures.serving import QUICK_STOP

pytestmark = [pytest.mark.ray, pytest.mark.s3]

CLIENT_TIMEOUT_S = 60.0
DISTINCT, RETRIES, CORRUPT = 45, 5, 5  # 50 rows: more than one flush of `flush_rows` 32
RECORDED = DISTINCT + CORRUPT
T0 = dt.datetime(2026, 5, 1, 6, 0)


def image(i: int) -> bytes:
    """A distinct 160x120 picture; every fifth is a night frame (no detection: status empty)."""
    return encode(picture(160, 120, night=i % 5 == 0, seed=i), exif_time=T0 + dt.timedelta(minutes=i))


@pytest.fixture(scope="module")
def bucket(s3_server) -> str:
    name = f"record-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    root = tmp_path_factory.mktemp("record-store")
    store = ModelStore(str(root / "store"), cache_dir=str(root / "cache"))
    onnx = brightness_model(root / "b.onnx")
    store.publish(onnx, "det", "1", brightness_config())
    store.publish(onnx, "det", "2", brightness_config(score_threshold=0.3))
    store.promote("det:1")
    return store


@pytest.fixture(scope="module")
def url(ray_cluster, store, bucket) -> Iterator[str]:
    config = {"store": store.root, "http": {"port": 0},
              "models": [{"name": "det", "num_cpus": 0.5, "max_batch_size": 4, "health_check_period_s": 1.0,
                          "alias_poll_interval_s": 0.5, **QUICK_STOP}],
              "record": {"archive": f"{bucket}/archive", "tables": f"{bucket}/tables", "flush_rows": 32,
                         "flush_interval_s": 1.0}}
    with run_local(config, environ={}) as base_url:
        yield base_url


async def send(client: httpx.AsyncClient, url: str, camera: str, data: bytes, retry: bool = False) -> httpx.Response:
    """One upload; with `retry`, sent again until it is answered 2xx or 4xx (a client that retries 5xx and
    connection errors, as the README's guarantee expects of it)."""
    while True:
        try:
            r = await client.post(f"{url}/v1/images", params={"camera": camera}, content=data)
        except httpx.HTTPError:
            if not retry:
                raise
            await asyncio.sleep(0.2)
            continue
        if retry and r.status_code >= 500:
            await asyncio.sleep(float(r.headers.get("retry-after", "0.2")))
            continue
        return r


def run_clients(url: str, requests: list[tuple[str, bytes]], clients: int = 4, retry: bool = False
                ) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        limit = asyncio.Semaphore(clients)
        async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S, trust_env=False) as client:
            async def one(camera: str, data: bytes) -> httpx.Response:
                async with limit:
                    return await send(client, url, camera, data, retry)
            return await asyncio.gather(*(one(c, d) for c, d in requests))
    return asyncio.run(go())


def wait_committed(url: str, image_ids: set[str], timeout_s: float = 60) -> None:
    def all_committed() -> bool:
        states = [httpx.get(f"{url}/v1/images/{i}", timeout=30, trust_env=False).json()["state"] for i in image_ids]
        return all(s == "committed" for s in states)
    wait_until(all_committed, timeout_s, "every recorded upload committed", interval_s=0.5)


def rows_per_image(bucket: str, version: str = "1") -> collections.Counter:
    images = Tables(open_location(f"{bucket}/tables")).read(IMAGES, "det", version, dedupe=False)
    return collections.Counter(images["uri"].to_pylist())


def test_four_clients_55_uploads_give_50_rows_and_50_objects(url, bucket, s3_server):
    distinct = [(f"cam{i % 4 + 1:02d}", image(i)) for i in range(DISTINCT)]
    corrupt = [("cam01", b"\xff\xd8\xff\xe0" + random.Random(i).randbytes(300)) for i in range(CORRUPT)]
    retries = random.Random(1).sample(distinct, RETRIES)
    requests = distinct + corrupt + retries
    random.Random(2).shuffle(requests)
    responses = run_clients(url, requests)
    statuses = collections.Counter(r.status_code for r in responses)
    assert statuses == {201: DISTINCT, 200: RETRIES, 422: CORRUPT}, statuses
    for r in responses:
        if r.status_code == 422:  # what /v1/detect answers, plus where the kept upload is
            body = r.json()
            assert body["error"]["type"] == "invalid_image" and body["image"]["status"] == "failed"
    replays = [r.json() for r in responses if r.status_code == 200]
    assert all(b["duplicate"] for b in replays)
    ids = {(r.json().get("image") or r.json())["image_id"] for r in responses}
    assert len(ids) == RECORDED

    wait_committed(url, ids)
    per_image = rows_per_image(bucket)
    assert len(per_image) == RECORDED and set(per_image.values()) == {1}  # exactly one row each
    images = Tables(open_location(f"{bucket}/tables")).read(IMAGES, "det", "1")
    assert collections.Counter(images["status"].to_pylist())["failed"] == CORRUPT
    assert pc.sum(pc.equal(images["capture_time_source"], "exif")).as_py() == DISTINCT
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server})
    assert len(fs.find(f"{bucket}/archive")) == RECORDED

    cameras = httpx.get(f"{url}/v1/cameras", timeout=30, trust_env=False).json()
    assert [c["camera"] for c in cameras["cameras"]] == ["cam01", "cam02", "cam03", "cam04"]
    assert sum(c["images"] for c in cameras["cameras"]) == RECORDED
    newest = max(i for i in range(DISTINCT) if i % 4 == 1)  # cam02's newest capture
    latest = httpx.get(f"{url}/v1/cameras/cam02/latest", timeout=30, trust_env=False).json()
    assert latest["image"]["capture_time"].startswith((T0 + dt.timedelta(minutes=newest)).isoformat())
    assert len(latest["detections"]) == (0 if newest % 5 == 0 else 4)
    assert httpx.get(f"{url}/v1/cameras/nope/latest", timeout=30, trust_env=False).status_code == 404


def test_bad_uploads_get_typed_4xx_and_keep_nothing(url, bucket, s3_server):
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server})
    objects = len(fs.find(f"{bucket}/archive"))

    def post(**kw) -> httpx.Response:
        return httpx.post(f"{url}/v1/images", timeout=30, trust_env=False, **kw)

    def error(r: httpx.Response, status: int, kind: str) -> str:
        assert r.status_code == status, r.text
        assert r.json()["error"]["type"] == kind, r.text
        return r.json()["error"]["message"]

    assert "camera" in error(post(content=image(500)), 422, "invalid_parameter")  # no camera
    assert "camera" in error(post(params={"camera": "../up"}, content=image(500)), 422, "invalid_parameter")
    assert "captured_at" in error(post(params={"camera": "cam09", "captured_at": "noon"}, content=image(500)),
                                  422, "invalid_parameter")
    error(post(params={"camera": "cam09"}, content=b""), 400, "invalid_image")
    first = post(params={"camera": "cam09"}, content=image(501), headers={"Idempotency-Key": "k-9"})
    assert first.status_code == 201
    assert "other bytes" in error(post(params={"camera": "cam09"}, content=image(502),
                                       headers={"Idempotency-Key": "k-9"}), 409, "conflict")
    form = post(data={"camera": "cam09", "captured_at": "2026-05-02T07:00:00"},
                files={"image": ("x.jpg", image(503), "image/jpeg")})
    assert form.status_code == 201 and form.json()["capture_time_source"] == "upload"
    assert httpx.get(f"{url}/v1/images/{'0' * 32}", timeout=30, trust_env=False).status_code == 404
    assert httpx.get(f"{url}/v1/images/not-an-id", timeout=30, trust_env=False).status_code == 422
    assert len(fs.find(f"{bucket}/archive")) == objects + 2  # only the two accepted uploads were kept


def test_replica_killed_during_uploads_loses_and_doubles_nothing(url, bucket):
    old = wait_until(lambda: replica_pid("detector-det"), 30, "one detector replica")
    requests = [("cam05", image(1000 + i)) for i in range(60)]

    async def stream() -> list[httpx.Response]:
        limit = asyncio.Semaphore(2)
        answered = 0
        async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S, trust_env=False) as client:
            async def one(camera: str, data: bytes) -> httpx.Response:
                nonlocal answered
                async with limit:
                    r = await send(client, url, camera, data, retry=True)
                    answered += 1
                    if answered == 20:
                        os.kill(old, signal.SIGKILL)  # mid-stream: some answered and not flushed, some in flight
                    return r
            return await asyncio.gather(*(one(c, d) for c, d in requests))

    killed_at = time.monotonic()
    responses = asyncio.run(stream())
    assert all(r.status_code in (200, 201) for r in responses), collections.Counter(r.status_code for r in responses)
    assert replica_pid("detector-det") not in (None, old)
    ids = {r.json()["image_id"] for r in responses}
    assert len(ids) == 60
    wait_committed(url, ids, timeout_s=90)  # the new replica's recorder commits what the dead one answered
    per_image = rows_per_image(bucket)
    uris = {r.json()["uri"] for r in responses}
    assert {u: per_image[u] for u in uris} == dict.fromkeys(uris, 1)
    took = time.monotonic() - killed_at
    print(f"\nreplica killed after 20 answers: all 60 uploads answered 2xx within {took:.1f} s, one row each")


def test_reprocess_skips_recorded_uploads_then_a_new_version_covers_them_and_compact_keeps_rows(
        url, store, bucket, tmp_path):
    tables = f"{bucket}/tables"
    assert not any(journal.markers(open_location(tables), w) for w in journal.writers(open_location(tables)))
    opts = {"archive": f"{bucket}/archive", "out": tables, "store": store.root, "via": "actors",
            "num_cpus": 0.5, "read_cpus": 0.25, "progress_interval_s": 1}
    same = run_reprocess(ReprocessOptions(model="det:1", **opts))
    found = RECORDED + 2 + 60  # the two bad-upload test's accepted uploads, the killed replica's 60
    assert (same.found, same.processed) == (found, 0)

    store.promote("det:2")
    v2 = run_reprocess(ReprocessOptions(model="det", **opts))
    assert (v2.found, v2.processed) == (found, found)
    assert set(rows_per_image(bucket, "2").values()) == {1} and len(rows_per_image(bucket, "2")) == found

    t = Tables(open_location(tables))
    before = {(v, tb): sorted(map(str, t.read(tb, "det", v).to_pylist())) for v in ("1", "2")
              for tb in (IMAGES, DETECTIONS)}
    parts = len(t.parts(IMAGES, "det", "1"))
    report = compact(tables)
    assert len(t.parts(IMAGES, "det", "1")) < parts and report.parts_after < report.parts_before
    assert {k: sorted(map(str, t.read(k[1], "det", k[0]).to_pylist())) for k in before} == before
    assert check(tables).clean


def test_a_recorded_clip_is_one_row_with_its_frames_detections(url, bucket, tmp_path):
    from tests.fixtures.clips import day_night_clip

    data = day_night_clip(tmp_path / "visit.mp4", "NDDDN", fps=10, created=T0).read_bytes()
    r = httpx.post(f"{url}/v1/images", params={"camera": "clipcam"}, content=data, timeout=CLIENT_TIMEOUT_S,
                   trust_env=False)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["uri"].endswith(".mp4") and (got["capture_time_source"], got["status"]) == ("container", "ok")
    wait_committed(url, {got["image_id"]})
    version = got["model"]["version"]  # the one that answered: an earlier test of this module promotes det:2
    [row] = [x for x in Tables(open_location(f"{bucket}/tables")).read(IMAGES, "det", version).to_pylist()
             if x["camera_id"] == "clipcam"]
    assert (row["kind"], row["frames_sampled"], row["capture_time"]) == ("video", 5, T0)
    assert row["max_per_frame"] >= 3 and row["detection_count"] == 3 * row["max_per_frame"]
    assert row["clip_animals"] == 2  # tracks, not 3x; a double is one animal, an unsure still box none
    assert row["clip_settings"] == ClipSettings.of().hash  # 1 s, the model's tracking: a reprocess at those skips it
    dets = Tables(open_location(f"{bucket}/tables")).read(DETECTIONS, "det", version).to_pandas()
    assert sorted(set(dets[(dets["uri"] == row["uri"]) & dets["kept"]]["frame_number"])) == [10, 20, 30]
