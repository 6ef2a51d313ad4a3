"""`trapline serve --config FILE` as a user runs it with direct ingress: its own Ray, real HTTP, Ctrl-C shuts it
down. The repo's serve.yaml as a user runs it (answers, a hot swap, Ctrl-C) is tests/e2e/test_quiet_output.py's
`trapline serve`: one start of the service for both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from model_store import ModelStore
from serve.local import free_port
from serve.polling import wait_until
from tests.fixtures.images import encode, gradient
from tests.fixtures.onnx_models import fixture_config

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-admin-token"


def test_direct_ingress_serves_without_the_proxy_hop_and_keeps_auth_errors_and_hot_swap(tmp_path, fixture_models):
    """`http.direct_ingress: true`: the replica answers on a port of its own (no Serve proxy in the path) with
    everything the proxied door has: the API token, typed 4xx, admin hot swap. The proxy keeps answering."""
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.publish(fixture_models["yolov5"], "fixture", "2", fixture_config("yolov5"))
    store.promote("fixture:1")
    port = free_port()
    config = {"store": store.root, "models": [{"name": "fixture", "num_cpus": 0.25, "alias_poll_interval_s": 0.5}],
              "http": {"port": port, "direct_ingress": True}, "api_token_env": "TRAPLINE_API_TOKEN"}
    (tmp_path / "trapline.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {
        "TRAPLINE_ADMIN_TOKEN": TOKEN, "TRAPLINE_API_TOKEN": "api-token"}
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trapline.cli", "serve", "--config", str(tmp_path / "trapline.yaml"),
             "--num-cpus", "2"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True)
    try:
        def up() -> bool:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            return "Ctrl-C to stop" in log_path.read_text()

        wait_until(up, 240, "trapline serve to come up", interval_s=0.5)
        said = log_path.read_text()
        # the start-up lines come from the service's state, not from a /v1/models call the API token would refuse
        assert "serving fixture: production -> 1" in said and "admin routes enabled" in said, said
        lines = [line for line in said.splitlines() if line.startswith("direct ingress")]
        assert len(lines) == 1, said
        direct = lines[0].split()[-1]
        proxied = f"http://127.0.0.1:{port}"
        assert direct.startswith("http://127.0.0.1:") and direct != proxied
        api = {"Authorization": "Bearer api-token"}
        image = encode(gradient(640, 480))

        assert httpx.post(f"{direct}/v1/detect", content=image, timeout=30).status_code == 401  # no token, no answer
        r = httpx.post(f"{direct}/v1/detect", content=image, headers=api, timeout=30)
        assert r.status_code == 200 and r.json()["model"]["version"] == "1"
        via_proxy = httpx.post(f"{proxied}/v1/detect", content=image, headers=api, timeout=30).json()
        assert r.json()["detections"] == via_proxy["detections"] and len(via_proxy["detections"]) == 4
        bad = httpx.post(f"{direct}/v1/detect", content=b"not a jpeg", headers=api, timeout=30)
        assert bad.status_code == 422 and bad.json()["error"]["type"] == "invalid_image"

        r = httpx.post(f"{direct}/v1/admin/models/fixture/promote", params={"version": "2"},
                       headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        assert r.status_code == 200, r.text
        for url in (direct, proxied):
            assert httpx.post(f"{url}/v1/detect", content=image, headers=api, timeout=30).json()["model"][
                "version"] == "2"

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, log_path.read_text()[-3000:]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{direct}/healthz", timeout=5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
