"""The composed Serve app: detector + classifier deployments (real local Ray, real HTTP, real ONNX classifier).

`fixture` (constant detector: deer / fox boxes at known places) routes `deer` to `colour` (a torch-exported
ONNX classifier that answers by a crop's colour), painted red and blue where the deer boxes are. The
one-hop app (the detector deployment is the ingress) is deployed for the module; the multi-model layout
(a separate ingress) is deployed beside it in one test.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from model_store import CropOptions, ModelStore, Pipeline
from model_store.core.crops import snip_jpeg
from model_store.core.imaging import decode_image
from model_store.core.pipeline import resolve_routes
from serve.config import ServeConfigError
from serve.local import run_local
from serve.polling import wait_until
from tests.fixtures.classifiers import colour_config, painted
from tests.fixtures.images import encode
from tests.fixtures.load import LoadClient
from tests.fixtures.onnx_models import fixture_config
from tests.fixtures.serving import QUICK_STOP

pytestmark = pytest.mark.ray

ADMIN_TOKEN = "admin-token-for-classify-tests"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
RGB = painted(640, 480, [("red", (220, 180, 420, 300)), ("blue", (560, 80, 640, 160))])  # the two deer boxes
IMAGE = encode(RGB, "PNG")


def config(store: ModelStore, **http) -> dict:
    return {"store": store.root, "http": {"port": 0, "ingress_num_cpus": 0.1, "max_crops": 3, **http},
            "models": [{"name": "fixture", "num_cpus": 0.25, "max_batch_size": 4, "alias_poll_interval_s": 0.2,
                        "classify": [{"model": "colour", "labels": ["deer"]}], **QUICK_STOP}],
            "classifiers": [{"name": "colour", "num_cpus": 0.25, "max_batch_size": 4, "alias_poll_interval_s": 0.2,
                             **QUICK_STOP}]}


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_models, colour_onnx) -> ModelStore:
    root = tmp_path_factory.mktemp("serve-classify")
    store = ModelStore(str(root / "store"), cache_dir=str(root / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.promote("fixture:1")
    store.publish(colour_onnx, "colour", "1", colour_config())
    store.publish(colour_onnx, "colour", "2", colour_config(top_k=3))  # same geometry, another answer shape
    store.publish(colour_onnx, "colour", "3", colour_config(preprocess={"mean": [0, 0, 0], "std": [1, 1, 1],
                                                                        "resize": "stretch", "crop_padding": 0.2}))
    store.promote("colour:1")
    return store


@pytest.fixture(scope="module")
def url(ray_cluster, store) -> Iterator[str]:
    with run_local(config(store), environ={"TRAPLINE_ADMIN_TOKEN": ADMIN_TOKEN}) as base_url:
        yield base_url


@pytest.fixture
def colour_is_1(url, store):
    if store.resolve("colour").version != "1":
        store.promote("colour:1")
    wait_until(lambda: classifier_version(url) == "1", 30, "colour@production to serve version 1")


def detect(url: str, **params) -> httpx.Response:
    return httpx.post(f"{url}/v1/detect", content=IMAGE, params=params, timeout=60)


def classifier_version(url: str) -> str | None:
    r = detect(url)
    assert r.status_code == 200, r.text
    return r.json()["detections"][0]["classifications"][0]["model"]["version"]


def library_record(store: ModelStore, filters: dict | None = None):
    """What the library's pipeline says about the same image bytes."""
    det = store.load_detector("fixture@production")
    rgb = decode_image(IMAGE)
    fs = det.filters(filters)
    [record] = det.predict_batch([rgb], filters=fs)
    Pipeline.load(store, resolve_routes(store, ["colour@production=deer"], det.config.labels)).classify(
        [rgb], [record], fs)
    return record


def assert_same_classifications(http_dets: list[dict], record) -> None:
    assert len(http_dets) == len(record.detections)
    for got, want in zip(http_dets, record.detections, strict=True):
        assert (got["label"], got["bbox"]) == (want.label, pytest.approx(list(want.bbox)))
        expected = [c.model_dump(mode="json") for c in want.classifications]
        assert len(got["classifications"]) == len(expected)
        for g, e in zip(got["classifications"], expected, strict=True):
            assert {k: g.get(k) for k in ("model", "label", "rank", "taxon_path", "flags")} == \
                {k: e[k] for k in ("model", "label", "rank", "taxon_path", "flags")}
            assert [t["label"] for t in g["top"]] == [t["label"] for t in e["top"]]
            assert g["score"] == pytest.approx(e["score"], abs=1e-5)
            assert g["scores"] == pytest.approx(e["scores"], abs=1e-5)


def test_http_classifications_equal_the_library_pipeline(url, store, colour_is_1):
    r = detect(url, verbose="true")
    assert r.status_code == 200, r.text
    dets = r.json()["detections"]
    assert [(d["label"], d["classifications"][0]["label"] if d["classifications"] else None) for d in dets] == [
        ("deer", "red"), ("fox", None), ("fox", None), ("deer", "blue")]
    assert_same_classifications(dets, library_record(store))
    sha = store.get("colour:1").config.weights.sha256
    assert dets[0]["classifications"][0]["model"] == {"name": "colour", "version": "1", "sha256": sha}
    # Classifier-score filters are per request, as in batch: a mask renormalises over the allowed labels.
    mask = {"classifier_mask": {"allowed_labels": ["green", "blue"]}}
    r = detect(url, verbose="true", filters=json.dumps(mask))
    assert r.status_code == 200, r.text
    assert r.json()["detections"][0]["classifications"][0]["flags"] == ["classifier_mask"]
    assert_same_classifications(r.json()["detections"], library_record(store, mask))
    # Without verbose the probability vector is left out; classify=false skips the classifier.
    plain = detect(url).json()["detections"][0]["classifications"][0]
    assert "scores" not in plain and [t["label"] for t in plain["top"]] == ["red", "green"]
    assert all("classifications" not in d for d in detect(url, classify="false").json()["detections"])


def test_crops_come_with_the_detections_bounded(url, colour_is_1):
    r = detect(url, crops="true", crop_padding=0.1, crop_square="true")
    assert r.status_code == 200, r.text
    body = r.json()
    with_crop = [d for d in body["detections"] if "crop" in d]
    assert len(with_crop) == 3 and body["crops_truncated"] is True  # 4 kept detections, http.max_crops 3
    assert [d["crop"] for d in body["detections"][:3]] == [d["crop"] for d in with_crop]  # best scores first
    first = with_crop[0]["crop"]
    jpeg = base64.b64decode(first["jpeg_base64"])
    assert decode_image(jpeg).shape == (first["height"], first["width"], 3)
    box = (220.0, 180.0, 420.0, 300.0)  # the best deer: the same snip as batch's --crops would write
    assert jpeg == snip_jpeg(decode_image(IMAGE), box, CropOptions(padding=0.1, square=True))
    assert with_crop[0]["classifications"][0]["label"] == "red"
    assert "crops_truncated" not in detect(url).json()


def test_bad_inputs_are_typed_4xx(url, colour_is_1):
    cases = [
        ({"crops": "true", "crop_padding": 5}, 422, "invalid_parameter"),
        ({"crops": "true", "render": "true"}, 422, "invalid_parameter"),
        ({"filters": json.dumps({"classifier_mask": {"allowed_labels": ["purple"]}})}, 422, "invalid_filter"),
        ({"filters": json.dumps({"rank_rollup": {"threshold": 2}})}, 422, "invalid_filter"),
        ({"model": "colour"}, 404, "not_found"),
    ]
    for params, status, kind in cases:
        r = detect(url, **params)
        assert r.status_code == status and r.json()["error"]["type"] == kind, (params, r.text)
    assert "is a classifier" in detect(url, model="colour").json()["error"]["message"]
    r = httpx.post(f"{url}/v1/detect", content=b"not an image", timeout=30)
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_image"


def best_deer_classifier(r: httpx.Response) -> str:
    return r.json()["detections"][0]["classifications"][0]["model"]["version"]


def test_classifier_hot_swap_under_load_fails_no_request(url, store, colour_is_1):
    with LoadClient(url, IMAGE, version_of=best_deer_classifier) as load:
        r = httpx.post(f"{url}/v1/admin/models/colour/promote", params={"version": "2"}, headers=AUTH, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["version"] == "2" and r.json()["serving"] == [{"production": "2"}]
        load.wait_for("2")
        store.rollback("colour")  # through the store, as `trapline models rollback colour` does
        load.wait_for("1")
        # A version that cuts its crops differently (crop_padding 0.2): the ingress learns it, no failure.
        store.promote("colour:3")
        load.wait_for("3")
    load.assert_all_ok()
    for i in range(len(load.results)):
        assert load.version_runs(i) == ["1", "2", "1", "3"], load.version_runs(i)
    # The detector never moved; the classifier is listed and swapped on its own.
    models = {m["name"]: m for m in httpx.get(f"{url}/v1/models", timeout=30).json()["models"]}
    assert models["fixture"]["aliases"] == {"production": "1"} and models["fixture"]["kind"] == "detector"
    assert models["fixture"]["classify"] == [{"model": "colour", "labels": ["deer"], "min_crop_px": 8}]
    assert models["colour"]["kind"] == "classifier" and models["colour"]["deployment"] == "classifier-colour"
    assert models["colour"]["aliases"] == {"production": "3"}
    # A classifier record of version 3 is still the library's (crops cut with its padding).
    r = detect(url, verbose="true")
    assert_same_classifications(r.json()["detections"], library_record(store))


def test_the_multi_model_layout_classifies_the_same(url, store, colour_is_1):
    cfg = config(store, one_hop=False)
    with run_local(cfg, app_name="trapline-two-hop", route_prefix="/two", environ={}) as two_hop:
        r = httpx.post(f"{two_hop}/v1/detect", content=IMAGE, params={"verbose": "true"}, timeout=60)
        assert r.status_code == 200, r.text
        assert_same_classifications(r.json()["detections"], library_record(store))
        r = httpx.post(f"{two_hop}/v1/detect", content=IMAGE, params={"crops": "true"}, timeout=60)
        assert sum("crop" in d for d in r.json()["detections"]) == 3


def test_routes_are_checked_when_the_app_is_built(store):
    from serve.app import build_app

    bad_label = config(store)
    bad_label["models"][0]["classify"] = [{"model": "colour", "labels": ["cat"]}]
    with pytest.raises(ServeConfigError, match=r"model 'fixture', classify: .*routed detector labels \['cat'\]"):
        build_app(bad_label, environ={})
    unknown = config(store)
    unknown["models"][0]["classify"] = [{"model": "species"}]
    with pytest.raises(ServeConfigError, match="routes to classifiers \\['species'\\] that `classifiers` does not"):
        build_app(unknown, environ={})
    detector_as_classifier = config(store)
    detector_as_classifier["classifiers"] = [{"name": "fixture2"}]
    detector_as_classifier["models"][0]["classify"] = [{"model": "fixture2"}]
    with pytest.raises(ServeConfigError, match="not found|no alias|fixture2"):
        build_app(detector_as_classifier, environ={})
    assert np.array_equal(decode_image(IMAGE), RGB)  # PNG: the library and the service see the same pixels
