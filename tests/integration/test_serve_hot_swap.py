"""Hot swap under load: promote / rollback through the store and the admin route, broken versions refused.

A background client keeps sending requests through every swap; the tests assert that none of
them failed and that the version in the responses switched exactly when it should.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from model_store import ModelStore
from serve.local import run_local
from serve.polling import wait_until
from tests.fixtures.images import encode, gradient
from tests.fixtures.load import LoadClient as _LoadClient
from tests.fixtures.onnx_models import fixture_config, plant_corrupt_version
from tests.fixtures.serving import QUICK_STOP

pytestmark = pytest.mark.ray

ADMIN_TOKEN = "admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
IMAGE = encode(gradient(320, 240))


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_models) -> ModelStore:
    root = tmp_path_factory.mktemp("serve-swap")
    store = ModelStore(str(root / "store"), cache_dir=str(root / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.publish(fixture_models["yolov5"], "fixture", "2", fixture_config("yolov5"))
    store.promote("fixture:1")
    return store


@pytest.fixture(scope="module")
def url(ray_cluster, store) -> Iterator[str]:
    config = {"store": store.root, "http": {"port": 0, "ingress_num_cpus": 0.1}, "models": [
        {"name": "fixture", "num_cpus": 0.25, "max_batch_size": 4, "batch_wait_timeout_s": 0.01,
         "alias_poll_interval_s": 0.2, "failed_retry_s": 3600, **QUICK_STOP}]}
    with run_local(config, environ={"TRAPLINE_ADMIN_TOKEN": ADMIN_TOKEN}) as base_url:
        yield base_url


@pytest.fixture
def production_is_1(url, store):
    """Each test starts with production -> 1 being served."""
    if store.resolve("fixture").version != "1":
        store.promote("fixture:1")
    wait_until(lambda: version_of(url) == "1", 30, "production to serve version 1")


def version_of(url: str, **params) -> str:
    r = httpx.post(f"{url}/v1/detect", content=IMAGE, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["model"]["version"]


def LoadClient(url: str) -> _LoadClient:  # noqa: N802 - reads as the class it builds
    return _LoadClient(url, IMAGE)


def test_promote_and_rollback_through_the_store_under_load(url, store, production_is_1):
    with LoadClient(url) as load:
        store.promote("fixture:2")  # what `trapline models promote fixture:2` does
        load.wait_for("2")
        store.rollback("fixture")
        load.wait_for("1")
    load.assert_all_ok()
    for i in range(len(load.results)):
        assert load.version_runs(i) == ["1", "2", "1"], load.version_runs(i)


def test_promote_and_rollback_through_the_admin_route_under_load(url, store, production_is_1):
    with LoadClient(url) as load:
        r = httpx.post(f"{url}/v1/admin/models/fixture/promote", params={"version": "2"}, headers=AUTH, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json() | {"serving": None, "gate": None} == {"model": "fixture", "alias": "production", "version": "2",
                                                               "previous": "1", "serving": None, "gate": None}
        assert r.json()["gate"]["ran"] is False  # no tables of people's reviews here: the gate says it did not run
        assert r.json()["serving"] == [{"production": "2"}]  # every replica switched before the answer
        assert version_of(url) == "2" and store.resolve("fixture").version == "2"
        r = httpx.post(f"{url}/v1/admin/models/fixture/rollback", headers=AUTH, timeout=120)
        assert r.status_code == 200 and r.json()["version"] == "1" and r.json()["previous"] == "2"
        assert version_of(url) == "1"
        load.wait_for("1")
    load.assert_all_ok()
    for i in range(len(load.results)):
        assert load.version_runs(i) in (["1", "2", "1"], ["1"]), load.version_runs(i)


def test_admin_routes_need_the_token(url):
    route = f"{url}/v1/admin/models/fixture/reload"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}):
        r = httpx.post(route, headers=headers, timeout=30)
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(route, headers=AUTH, timeout=60)
    assert r.status_code == 200 and r.json()["replicas"][0]["aliases"] == {"production": store_alias(r)}
    assert httpx.post(f"{url}/v1/admin/models/nope/reload", headers=AUTH).status_code == 404
    r = httpx.post(f"{url}/v1/admin/models/fixture/promote", params={"version": "42"}, headers=AUTH, timeout=60)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"


def store_alias(r: httpx.Response) -> str:
    return r.json()["replicas"][0]["store_aliases"]["production"]


def test_broken_versions_are_refused_and_the_old_keeps_serving(url, store, production_is_1, fixture_models, tmp_path):
    plant_corrupt_version(store, "fixture", "3", tmp_path)
    # The admin route loads the version on every replica before moving the alias: refused, alias untouched.
    r = httpx.post(f"{url}/v1/admin/models/fixture/promote", params={"version": "3"}, headers=AUTH, timeout=120)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["type"] == "version_refused" and r.json()["error"]["reason"] == "model_load_failed"
    assert store.resolve("fixture").version == "1"

    # Through the store (or a file corrupted after promote), each replica refuses on its own.
    store.publish(fixture_models["yolov8"], "fixture", "4", fixture_config("yolov8"))
    with open(store.storage.path("fixture", "4", "model.onnx"), "wb") as f:
        f.write(b"tampered")
    store.publish(fixture_models["yolov8"], "fixture", "5", fixture_config("yolov8"))
    cfg_path = store.storage.path("fixture", "5", "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    with open(cfg_path, "w") as f:
        json.dump({**cfg, "score_threshold": 7}, f)
    alias_file = store.storage.path("fixture", "_aliases", "production.json")
    with LoadClient(url) as load:
        store.promote("fixture:3")  # passes the store's checks: its checksum matches the corrupt bytes
        for version, kind in (("3", "model_load_failed"), ("4", "checksum_mismatch"), ("5", "invalid_config")):
            if version != "3":
                with open(alias_file, "w") as f:
                    json.dump({"version": version, "history": ["1"]}, f)
            wait_until(lambda v=version, k=kind: refused(url).get(v) == k, 30, f"version {version} to be refused")
        served = load.total()
        wait_until(lambda: load.total() > served + 20, 30, "more requests after the refusals")
    load.assert_all_ok()
    assert {v for thread in load.results for _, v in thread} == {"1"}
    model = httpx.get(f"{url}/v1/models", timeout=30).json()["models"][0]
    assert model["aliases"] == {"production": "1"} and model["store_aliases"] == {"production": "5"}


def refused(url: str) -> dict[str, str]:
    model = httpx.get(f"{url}/v1/models", timeout=30).json()["models"][0]
    return {e["version"]: e["type"] for e in model["errors"]}
