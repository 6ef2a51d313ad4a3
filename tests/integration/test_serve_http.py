"""The HTTP service on the shared local Ray: every route, the response schema, batching, bad input, 503.

One app is deployed for the whole module (run_local, real Serve proxy on a free port, real ONNX
sessions). `fixture` answers fast; `slowbatch` waits up to 1 s to fill a batch of 16, which
makes batching deterministic (fixed batch wait); `tinyqueue` does the same with room for 2 queued requests only.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from ground.errors import InvalidParameterError, NotFoundError
from model_store import ImageDetections, ModelStore
from model_store.core.imaging import DEFAULT_MAX_PIXELS, decode_image
from serve import get_detector_handle
from serve.local import run_local
from serve.polling import wait_until
from serve.protocol import unwrap_error
from tests.fixtures.images import encode, gradient, png_with_declared_size
from tests.fixtures.onnx_models import EXPECTED_640x480, fixture_config
from tests.fixtures.parity import IMAGES, image_names, publish_reference
from tests.fixtures.serving import QUICK_STOP

pytestmark = pytest.mark.ray

MAX_BODY = 200_000
MAX_CLIP = 300_000
IMAGE = encode(gradient(640, 480))
CONFIG = {
    "models": [
        # adaptive batch wait: a lone request runs at once although the limit is 0.25 s
        {"name": "fixture", "num_cpus": 0.25, "max_batch_size": 4, "batch_wait_timeout_s": 0.25, **QUICK_STOP,
         "alias_poll_interval_s": 0.5},
        {"name": "slowbatch", "num_cpus": 0.25, "max_batch_size": 16, "batch_wait_timeout_s": 1.0,
         "batch_wait_policy": "fixed", "max_ongoing_requests": 16, "max_queued_requests": -1,
         "alias_poll_interval_s": 0},
        {"name": "tinyqueue", "num_cpus": 0.2, "max_batch_size": 8, "batch_wait_timeout_s": 1.0,
         "batch_wait_policy": "fixed", "max_ongoing_requests": 8, "max_queued_requests": 2,
         "alias_poll_interval_s": 0},
        # admits 2 online requests, which then wait 1 s for company that the refused ones cannot bring
        {"name": "admission", "num_cpus": 0.1, "max_batch_size": 4, "batch_wait_timeout_s": 1.0,
         "batch_wait_policy": "fixed", "max_online_requests": 2, "alias_poll_interval_s": 0},
        # a real YOLOv8n export: a bulk batch of 16 takes ~1.5 s on one thread, long enough to preempt
        {"name": "yolov8n_dynamic", "num_cpus": 0.2, "max_batch_size": 16, "bulk_max_batch_size": 16,
         "batch_wait_timeout_s": 0.2, "batch_wait_policy": "fixed", "alias_poll_interval_s": 0},
    ],
    "http": {"port": 0, "max_body_bytes": MAX_BODY, "max_clip_bytes": MAX_CLIP, "ingress_num_cpus": 0.1},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_models) -> ModelStore:
    root = tmp_path_factory.mktemp("serve-http")
    store = ModelStore(str(root / "store"), cache_dir=str(root / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.publish(fixture_models["yolov5"], "fixture", "2", fixture_config("yolov5"))
    store.promote("fixture:1")
    for name in ("slowbatch", "tinyqueue", "admission"):
        store.publish(fixture_models["yolov8"], name, "1", fixture_config("yolov8"))
        store.promote(f"{name}:1")
    publish_reference(store, "yolov8n_dynamic")
    return store


@pytest.fixture(scope="module")
def url(ray_cluster, store) -> Iterator[str]:
    with run_local({**CONFIG, "store": store.root}, environ={}) as base_url:
        yield base_url


def post(url: str, content=IMAGE, path: str = "/v1/detect", **kw) -> httpx.Response:
    return httpx.post(url + path, content=content, timeout=30, **kw)


def burst(url: str, n: int, params: dict, content: bytes = IMAGE) -> list[httpx.Response]:
    async def go():
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=n)) as client:
            return await asyncio.gather(*(client.post(url + "/v1/detect", params=params, content=content)
                                          for _ in range(n)))

    return asyncio.run(go())


def expected_bboxes(w: int = 640, h: int = 480) -> list[tuple]:
    return [(lab, score, (x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h)) for lab, score, x1, y1, x2, y2 in
            EXPECTED_640x480]


def assert_error(r: httpx.Response, status: int, kind: str, **fields) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["type"] == kind and err["message"], err
    for key, value in fields.items():
        assert err[key] == value, err
    return err


def test_detect_raw_body_returns_the_documented_json(url, store):
    r = post(url, headers={"X-Request-ID": "req-123", "Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "req-123" and r.headers["x-model"] == "fixture:1"
    body = r.json()
    assert set(body) == {"model", "image", "detections", "filters", "timing_ms"}
    assert body["model"] == {"name": "fixture", "version": "1", "sha256": store.get("fixture:1").config.weights.sha256}
    assert body["image"] == {"width": 640, "height": 480}
    assert all(set(d) == {"label", "class_id", "score", "bbox"} for d in body["detections"])
    got = [(d["label"], d["score"], tuple(d["bbox"])) for d in body["detections"]]
    for (label, score, bbox), (elabel, escore, ebbox) in zip(got, expected_bboxes(), strict=True):
        assert label == elabel and score == pytest.approx(escore, abs=1e-5)
        assert bbox == pytest.approx(ebbox, abs=2e-3)
    assert set(body["filters"]) == {"names", "hash", "configs"}
    assert {"decode", "preprocess", "queue", "inference", "postprocess", "batch_size", "total"} <= set(
        body["timing_ms"])
    assert body["timing_ms"]["queue"] < 100  # adaptive batch wait: alone on an idle replica, it did not wait


def test_detect_multipart_upload(url):
    png = encode(gradient(640, 480), "PNG")
    for field in ("image", "file", "upload"):
        r = httpx.post(url + "/v1/detect", files={field: ("frame.png", png, "image/png")}, timeout=30)
        assert r.status_code == 200, r.text
        assert len(r.json()["detections"]) == 4
    r = httpx.post(url + "/v1/detect", files={"note": (None, "no file here")}, timeout=30)
    assert_error(r, 400, "bad_request")


def test_render_returns_a_decodable_jpeg_with_boxes(url):
    r = post(url, params={"render": "true"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-detections"] == "4" and r.headers["x-model"] == "fixture:1"
    drawn = decode_image(r.content)
    assert drawn.shape == (480, 640, 3)
    plain = decode_image(IMAGE)
    assert np.abs(drawn.astype(int) - plain.astype(int)).max() > 100  # boxes were drawn


def test_filter_overrides_json_and_shortcuts(url):
    def kept(**params):
        r = post(url, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    small = kept(filters=json.dumps({"min_size": {"min_area_fraction": 0.01}}), verbose="true")
    assert [(d["label"], d["score"]) for d in small["detections"]] == [("deer", 0.9), ("fox", 0.7), ("deer", 0.3)]
    assert [(d["label"], d["flags"]) for d in small["dropped"]] == [("fox", ["min_size"])]
    assert small["filters"]["names"] == ["min_size"]
    assert [d["score"] for d in kept(min_score=0.65)["detections"]] == [0.9, 0.7]
    assert {d["label"] for d in kept(labels="deer")["detections"]} == {"deer"}
    flagged = kept(filters=json.dumps({"score": {"min_score": 0.5, "action": "flag"}}), verbose="true")
    assert [d["flags"] for d in flagged["detections"]] == [[], [], [], ["score"]]


def test_models_route_lists_aliases_versions_and_batching(url, store):
    r = httpx.get(url + "/v1/models", timeout=30)
    assert r.status_code == 200
    models = {m["name"]: m for m in r.json()["models"]}
    assert set(models) == {"fixture", "slowbatch", "tinyqueue", "admission", "yolov8n_dynamic"}
    fx = models["fixture"]
    assert fx["deployment"] == "detector-fixture" and fx["ready"] and fx["default_alias"] == "production"
    assert fx["aliases"] == {"production": "1"} and fx["store_aliases"] == {"production": "1"}
    assert any(v["version"] == "1" and v["aliases"] == ["production"] for v in fx["versions"])
    assert fx["batching"] == {"max_batch_size": 4, "batch_wait_timeout_s": 0.25, "batch_wait_policy": "adaptive",
                              "bulk_max_batch_size": None, "preempt_bulk": True}
    assert len(fx["replicas"]) == 1 and fx["errors"] == []


def test_health_ready_docs_and_unknown_route(url):
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    r = httpx.get(url + "/readyz", timeout=30)
    assert r.status_code == 200 and r.json()["models"]["fixture"]["ready"]
    assert httpx.get(url + "/docs").status_code == 200
    assert "/v1/detect" in httpx.get(url + "/openapi.json").json()["paths"]
    assert_error(httpx.get(url + "/v1/nope"), 404, "not_found")
    assert_error(httpx.get(url + "/v1/detect"), 405, "method_not_allowed")


def test_two_versions_live_at_once(url):
    pinned = post(url, params={"version": "2"})
    assert pinned.status_code == 200 and pinned.json()["model"]["version"] == "2"
    assert [d["score"] for d in pinned.json()["detections"]] == pytest.approx([0.9, 0.7, 0.6, 0.3], abs=1e-5)
    assert post(url).json()["model"]["version"] == "1"  # production is still 1
    assert post(url, params={"alias": "production"}).json()["model"]["version"] == "1"
    fx = next(m for m in httpx.get(url + "/v1/models", timeout=30).json()["models"] if m["name"] == "fixture")
    assert {v["version"] for v in fx["versions"]} == {"1", "2"} and fx["aliases"] == {"production": "1"}


def test_concurrent_requests_share_a_batch(url):
    responses = burst(url, 5, {"model": "slowbatch"})
    assert [r.status_code for r in responses] == [200] * 5
    sizes = [r.json()["timing_ms"]["batch_size"] for r in responses]
    assert min(sizes) >= 2, sizes  # nobody ran alone: they met in @serve.batch
    sb = next(m for m in httpx.get(url + "/v1/models", timeout=30).json()["models"] if m["name"] == "slowbatch")
    assert sb["stats"]["max_batch_size_seen"] >= 2 and any(int(k) > 1 for k in sb["stats"]["batch_sizes"])


def test_bad_input_gets_clear_errors_and_the_replica_stays_healthy(url):
    truncated = IMAGE[: len(IMAGE) // 2]
    assert_error(post(url, content=b""), 400, "invalid_image", reason="empty")
    assert_error(post(url, content=b"this is not an image at all"), 422, "invalid_image", reason="not_image")
    assert_error(post(url, content=truncated), 422, "invalid_image", reason="truncated")
    assert_error(post(url, content=png_with_declared_size(20_000, 20_000)), 422, "invalid_image", reason="too_large")
    assert_error(post(url, content=b"\xff" * (MAX_BODY + 1)), 413, "payload_too_large")

    def chunks():  # no Content-Length: the limit is enforced on the bytes actually read
        for _ in range(5):
            yield b"\xff" * (MAX_BODY // 4)

    assert_error(post(url, content=chunks()), 413, "payload_too_large")
    assert_error(post(url, params={"model": "nope"}), 404, "not_found")
    assert_error(post(url, params={"version": "99"}), 404, "not_found")
    assert_error(post(url, params={"alias": "staging"}), 404, "not_found")
    assert_error(post(url, params={"version": "../1"}), 422, "invalid_parameter")
    assert_error(post(url, params={"version": "1", "alias": "production"}), 422, "invalid_parameter")
    assert_error(post(url, params={"filters": json.dumps({"min_size": {"min_area_fraction": 2}})}), 422,
                 "invalid_filter")
    assert_error(post(url, params={"filters": "{not json"}), 422, "invalid_filter")
    assert_error(post(url, params={"filters": json.dumps({"blur": {}})}), 422, "invalid_filter")
    assert_error(post(url, params={"labels": "wolf"}), 422, "invalid_filter")
    assert_error(post(url, params={"min_score": "high"}), 422, "invalid_parameter")
    ok = post(url)
    assert ok.status_code == 200 and len(ok.json()["detections"]) == 4
    assert httpx.get(url + "/readyz", timeout=30).status_code == 200


def test_queue_full_answers_503_with_retry_after(url):
    responses = burst(url, 40, {"model": "tinyqueue"})
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 503}, codes
    for r in responses:
        if r.status_code == 503:
            assert_error(r, 503, "overloaded")
            assert r.headers["retry-after"] == "1"
    assert post(url, params={"model": "tinyqueue"}).status_code == 200
    assert post(url).status_code == 200


def test_a_full_replica_refuses_online_requests_at_once_not_after_a_wait(url):
    async def go():
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=8)) as client:
            async def one():
                t0 = time.perf_counter()
                r = await client.post(url + "/v1/detect", params={"model": "admission"}, content=IMAGE)
                return r, time.perf_counter() - t0
            return await asyncio.gather(*(one() for _ in range(6)))

    results = asyncio.run(go())
    ok = [t for r, t in results if r.status_code == 200]
    refused = [(r, t) for r, t in results if r.status_code != 200]
    assert len(ok) == 2 and len(refused) == 4, [r.status_code for r, _ in results]
    for r, _ in refused:
        assert_error(r, 503, "overloaded")
        assert r.headers["retry-after"] == "1" and "already holds 2 online requests" in r.json()["error"]["message"]
    assert max(t for _, t in refused) < min(ok)  # refused before the admitted ones were answered
    assert post(url, params={"model": "admission"}).status_code == 200  # room again


def test_admin_routes_are_disabled_without_a_token(url):
    for route in ("/v1/admin/models/fixture/reload", "/v1/admin/models/fixture/promote?version=2",
                  "/v1/admin/models/fixture/rollback"):
        assert_error(httpx.post(url + route, headers={"Authorization": "Bearer guess"}), 403, "forbidden")


def test_detect_prepared_is_the_library_record(url, store):
    handle = get_detector_handle("fixture")
    rgb = decode_image(IMAGE)
    for ref, filters in ((None, None), ("fixture:2", {"score": {"min_score": 0.65}}), ("fixture@production", None)):
        det = store.load_detector(ref or "fixture")
        prepared, meta = det.prepare(rgb)
        got = handle.detect_prepared.remote(prepared, meta, ref, filters).result()
        assert isinstance(got, ImageDetections)  # typed across the handle, not a dict
        got = got.model_dump(mode="json")
        want = det.predict_batch([rgb], filters=filters)[0].model_dump(mode="json")
        assert {k: v for k, v in got.items() if k != "timing_ms"} == {k: v for k, v in want.items() if k != "timing_ms"}
        assert {"queue", "inference", "postprocess", "batch_size"} <= set(got["timing_ms"])
    with pytest.raises(Exception) as info:
        handle.detect_prepared.remote(prepared, meta, "other:1", None).result()
    assert isinstance(unwrap_error(info.value), NotFoundError)
    with pytest.raises(Exception) as info:
        handle.detect_prepared.remote(prepared[:10], meta, None, None).result()
    assert isinstance(unwrap_error(info.value), InvalidParameterError)


def test_several_archive_images_in_one_call_are_answered_each_on_its_own(url, store):
    """The batch job's call: each image answered as `detect_bytes` would, a bad one refused alone with its typed
    error; a call that does not make sense as a whole is refused as a whole."""
    handle = get_detector_handle("fixture")
    det = store.load_detector("fixture")
    want = det.predict_batch([decode_image(IMAGE)])[0].model_dump(mode="json", exclude={"timing_ms"})
    answers = handle.detect_bytes_many.remote([IMAGE, b"not a jpeg", IMAGE], None, None).result()
    assert [type(a).__name__ for a in answers] == ["ImageDetections", "ImageDecodeError", "ImageDetections"]
    for a in answers[::2]:
        assert a.model_dump(mode="json", exclude={"timing_ms"}) == want and "decode" in a.timing_ms
    assert answers[1].status == 422 and answers[1].extra["reason"] == "not_image"
    prepared, meta = det.prepare(decode_image(IMAGE))
    answers = handle.detect_prepared_many.remote([prepared, prepared[:10]], [meta, meta], None, None).result()
    assert answers[0].model_dump(mode="json", exclude={"timing_ms"}) == want
    assert isinstance(answers[1], InvalidParameterError)
    with pytest.raises(Exception) as info:  # not one image's fault: the whole call is refused
        handle.detect_prepared_many.remote([prepared], [], None, None).result()
    assert isinstance(unwrap_error(info.value), InvalidParameterError)


def test_online_requests_go_ahead_of_archive_images_and_never_share_their_batch(url, store):
    handle = get_detector_handle("slowbatch")  # fixed 1 s batch wait: a batch waits for company
    det = store.load_detector("slowbatch")
    prepared, meta = det.prepare(decode_image(IMAGE))
    handle.detect_prepared.remote(prepared, meta, None, None).result()  # warm the driver's router
    archive = [handle.detect_prepared.remote(prepared, meta, None, None),
               handle.detect_bytes.remote(IMAGE, None, None)]  # both archive entry points: the bulk lane
    time.sleep(0.3)  # the archive batch is open, waiting for company
    [http] = burst(url, 1, {"model": "slowbatch"})
    bulk = [r.result().model_dump(mode="json") for r in archive]
    assert http.status_code == 200
    online = http.json()["timing_ms"]
    assert online["batch_size"] == 1.0 and [b["timing_ms"]["batch_size"] for b in bulk] == [2.0, 2.0]
    # queued 0.3 s before the online request, the archive images still ran after it
    assert min(b["timing_ms"]["queue"] for b in bulk) > online["queue"] + 200
    boxes = [[(d["label"], d["bbox"]) for d in r["detections"]] for r in (*bulk, http.json())]
    assert boxes[0] == boxes[1] == boxes[2]


def test_an_online_request_preempts_a_running_archive_pass_and_no_archive_image_is_lost(url, store):
    name = "yolov8n_dynamic"
    handle = get_detector_handle(name)
    det = store.load_detector(name)
    photos = [(IMAGES / image).read_bytes() for image in image_names()]
    archive_images = [photos[i % len(photos)] for i in range(16)]

    def library(*images: bytes) -> list[dict]:  # one batch, as the replica runs them: the same arithmetic
        pairs = [det.prepare_bytes(data, DEFAULT_MAX_PIXELS) for data in images]
        records = det.run_prepared([p for p, _ in pairs], [m for _, m in pairs])
        return [r.model_dump(mode="json", exclude={"timing_ms"}) for r in records]

    def stats() -> dict:
        models = httpx.get(f"{url}/v1/models").json()["models"]
        return next(m for m in models if m["name"] == name)["stats"]

    want = library(*archive_images)
    before = stats()
    prepared = [det.prepare_bytes(data, DEFAULT_MAX_PIXELS) for data in archive_images]
    handle.detect_prepared.remote(*prepared[0], None, None).result()  # warm the driver's router
    # prepared inputs (nothing to decode): the 16 fill the bulk batch at once, and its passes take ~1.5 s
    archive = [handle.detect_prepared.remote(p, meta, None, None) for p, meta in prepared]
    time.sleep(0.5)
    t0 = time.perf_counter()
    online = post(url, photos[1], params={"model": name})
    online_s = time.perf_counter() - t0
    got = [r.result().model_dump(mode="json", exclude={"timing_ms"}) for r in archive]
    assert online.status_code == 200
    [alone] = library(photos[1])
    assert [(d["label"], d["score"], d["bbox"]) for d in online.json()["detections"]] == \
        [(d["label"], d["score"], d["bbox"]) for d in alone["detections"]]
    assert got == want  # every archive image answered once, with the records of an uninterrupted run
    after = stats()
    # counted only when a forward pass really stopped (ORT answered its terminate flag) ...
    assert after["bulk_preempted"] == before["bulk_preempted"] + 1
    # ... which a stopped batch does not count as run: the archive's one whole batch of 16, the online one alone
    assert after["batch_sizes"].get("16", 0) == before["batch_sizes"].get("16", 0) + 1
    timing = online.json()["timing_ms"]
    # it waited its own 0.2 s batch window, not the ~1 s left of the archive batch
    assert timing["batch_size"] == 1.0 and timing["queue"] < 1000
    print(f"online request during the archive batch: {online_s * 1000:.0f} ms, {timing}")
    assert wait_until(lambda: _metric("ray_trapline_bulk_preempted_total", name), 60,
                      "the preemption counter to be exported", interval_s=1.0) >= 1


def _metric(metric: str, model: str) -> float | None:
    """The value of a trapline counter for `model` on this node's Prometheus endpoint (None: not exported yet)."""
    import ray
    from prometheus_client.parser import text_string_to_metric_families

    port = ray._private.worker._global_node.metrics_export_port
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    values = [s.value for family in text_string_to_metric_families(text) for s in family.samples
              if s.name == metric and s.labels.get("model") == model]
    return sum(values) if values else None


def test_prometheus_metrics_carry_model_and_version(url):
    import ray
    from prometheus_client.parser import text_string_to_metric_families

    port = ray._private.worker._global_node.metrics_export_port  # this node's Prometheus endpoint
    assert post(url).status_code == 200
    assert post(url, params={"version": "2"}).status_code == 200  # a pinned version: its own series

    def samples() -> dict[str, list[dict]] | None:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        found: dict[str, list[dict]] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name.startswith("ray_trapline_") and s.labels.get("model") == "fixture":
                    found.setdefault(s.name, []).append({**s.labels, "value": s.value})
        wanted = ("ray_trapline_images_total", "ray_trapline_detections_total", "ray_trapline_batch_size_count",
                  "ray_trapline_inference_latency_ms_count")
        return found if all(name in found for name in wanted) else None

    found = wait_until(samples, 60, "trapline metrics to be exported", interval_s=1.0)
    images = {s["version"]: s["value"] for s in found["ray_trapline_images_total"]}
    assert images["1"] > 0 and images.get("2", 0) > 0  # both versions served images
    labels = {(s["version"], s["label"]) for s in found["ray_trapline_detections_total"]}
    assert {("1", "deer"), ("1", "fox")} <= labels
    assert all(s["deployment"] == "detector-fixture" for s in found["ray_trapline_batch_size_count"])


def test_a_success_logs_no_line_of_ours_and_a_refusal_logs_its_request_id(url):
    """Per-request logging is off the hot path: a served request writes no trapline line at INFO (it is at
    DEBUG; Serve's access line and the metrics count it), while a refused one still names its request id."""
    import uuid
    from pathlib import Path

    import ray

    rid = f"log-{uuid.uuid4().hex[:12]}"
    assert post(url, headers={"X-Request-ID": rid}).status_code == 200
    assert post(url, content=b"junk", headers={"X-Request-ID": f"{rid}-bad"}).status_code == 422
    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"

    def lines() -> list[str]:
        files = logs.glob("replica_trapline_detector-fixture_*.log")
        return [line for f in files for line in f.read_text().splitlines() if rid in line]

    # the refusal comes after the success on the same replica, so once it is written the success's would be too
    wait_until(lambda: any(f"request_id={rid}-bad" in x and "invalid_image" in x for x in lines()), 30,
               "the refusal's log line")
    assert not [x for x in lines() if f"request_id={rid} " in x], lines()


def test_a_short_clip_answers_per_frame_detections_and_its_summary(url, tmp_path):
    from tests.fixtures.clips import day_night_clip

    clip = day_night_clip(tmp_path / "c.mp4", "DDD", fps=10).read_bytes()
    r = post(url, content=clip, params={"model": "fixture"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "video" and body["status"] == "ok" and body["clip"]["frames_sampled"] == 3
    assert [f["frame_number"] for f in body["frames"]] == [0, 10, 20] and body["clip"]["sampling"] == "1s"
    summary = body["summary"]
    # the fixture's 4 boxes: the deer and the fox boxed on one spot are one animal, and of the two that never move
    # the one it is unsure of (0.3) is still background (model_store.core.clip_counting)
    assert summary["max_per_frame"] == len(body["frames"][0]["detections"]) == 4 and summary["animals"] == 2
    assert post(url, content=clip, params={"model": "fixture", "sampling": "5f"}).json()["clip"]["frames_sampled"] == 6
    assert_error(post(url, content=clip, params={"sampling": "often"}), 422, "invalid_parameter")
    assert_error(post(url, content=clip[:12] + b"\0" * 2000), 422, "invalid_clip", reason="truncated")
    big = clip[:12] + b"\0" * (MAX_CLIP + 1)
    assert_error(post(url, content=big, headers={"content-type": "video/mp4"}), 413, "payload_too_large")


def test_a_stopping_service_answers_what_it_holds_and_refuses_new_requests_with_a_typed_503(ray_cluster, store):
    """The end of `run_local` (what SIGTERM runs in `trapline serve`): the replicas that handle HTTP close their gate
    first, so a request already inside is answered and one that comes after gets 503 + Retry-After (retry elsewhere)
    until the app is gone. An app of its own on the session's Serve (one replica): `slowbatch` waits out its 1 s
    batch."""
    cfg = {"store": store.root, "http": {"port": 0, "ingress_num_cpus": 0.1},
           "models": [{"name": "slowbatch", "num_cpus": 0.1, "max_batch_size": 16, "batch_wait_timeout_s": 1.0,
                       "batch_wait_policy": "fixed", "alias_poll_interval_s": 0, **QUICK_STOP}]}
    session = run_local(cfg, environ={}, app_name="draining", route_prefix="/draining")
    base = session.__enter__()
    held: list[httpx.Response] = []
    inside = threading.Thread(target=lambda: held.append(post(base)))
    inside.start()
    time.sleep(0.4)  # the request is in the replica, waiting out its batch
    stopping = threading.Thread(target=session.__exit__, args=(None, None, None))
    stopping.start()

    def refused() -> httpx.Response | None:
        r = httpx.get(f"{base}/healthz", timeout=10)
        return r if r.status_code != 200 else None

    r = wait_until(refused, 20, "the stopping app to refuse a request", interval_s=0.05)
    err = assert_error(r, 503, "not_ready")
    assert r.headers["retry-after"] == "1" and "shutting down" in err["message"], r.text
    inside.join(30)
    stopping.join(60)
    assert not stopping.is_alive()
    [answer] = held
    assert answer.status_code == 200 and len(answer.json()["detections"]) == 4, answer.text
