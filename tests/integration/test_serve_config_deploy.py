"""The Ray Serve config-file path (`serve run serve.yaml` / `serve deploy`, `trapline serve --config`).

The app is built on the cluster by trapline.service:app_builder from the file's `args`, and a
`deployments:` override of a model's user_config retunes the live replica without restarting it.
"""

from __future__ import annotations

import threading

import httpx
import pytest

from model_store import ModelStore
from serve.local import deploy_config, run_config
from serve.polling import wait_until
from tests.fixtures.images import encode, gradient
from tests.fixtures.onnx_models import fixture_config
from tests.fixtures.serving import QUICK_STOP

pytestmark = pytest.mark.ray

IMAGE = encode(gradient(320, 240))


def serve_file(store_root: str, user_config: dict | None = None) -> dict:
    app = {"name": "trapline", "route_prefix": "/", "import_path": "trapline.service:app_builder", "args": {
        "store": store_root, "http": {"ingress_num_cpus": 0.1},
        "models": [{"name": "fixture", "num_cpus": 0.25, "max_batch_size": 4, "batch_wait_timeout_s": 0.01,
                    **QUICK_STOP}]}}
    if user_config is not None:
        app["deployments"] = [{"name": "detector-fixture", "user_config": user_config}]
    return {"http_options": {"host": "127.0.0.1", "port": 0}, "applications": [app]}


def fixture_model(url: str) -> dict:
    return httpx.get(f"{url}/v1/models", timeout=30).json()["models"][0]


def test_config_file_deploy_and_in_place_retune(ray_cluster, tmp_path, fixture_models):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.promote("fixture:1")
    with run_config(serve_file(store.root)) as url:
        r = httpx.post(f"{url}/v1/detect", content=IMAGE, timeout=30)
        assert r.status_code == 200 and r.json()["model"]["version"] == "1"
        before = fixture_model(url)
        assert before["batching"]["max_batch_size"] == 4

        statuses: list[int] = []
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(timeout=30) as c:
                while not stop.is_set():
                    statuses.append(c.post(f"{url}/v1/detect", content=IMAGE).status_code)

        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        try:
            deploy_config(serve_file(store.root, {"aliases": ["production"], "max_batch_size": 6,
                                                  "batch_wait_timeout_s": 0.02}))

            def retuned() -> dict | None:  # the replica list can be empty for an instant during the update
                model = fixture_model(url)
                return model if model["replicas"] and model["batching"]["max_batch_size"] == 6 else None

            after = wait_until(retuned, 60, "the new batch size")
        finally:
            stop.set()
            thread.join(30)
        assert after["replicas"][0]["replica"] == before["replicas"][0]["replica"]  # reconfigured, not restarted
        assert after["batching"] == {"max_batch_size": 6, "batch_wait_timeout_s": 0.02, "batch_wait_policy": "adaptive",
                                     "bulk_max_batch_size": None, "preempt_bulk": True}
        assert statuses and set(statuses) == {200}
