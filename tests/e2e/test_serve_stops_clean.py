"""Every stop of `trapline serve` leaves nothing behind (issue 67): the processes its local Ray started (GCS, raylet,
dashboard and its agents, replicas) and the ports they listened on are counted while it runs and after it stopped,
for a service stopped (SIGTERM) while it starts and one that stops itself because a replica cannot be placed. One
stopped (SIGTERM) once ready is tests/e2e/test_quiet_output.py's `trapline serve`: one start of the service for both.
The processes are told from any other Ray on the machine by a mark in their environment (tests/fixtures/processes.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from model_store import ModelStore
from serve.local import free_port
from serve.polling import wait_until
from tests.fixtures.onnx_models import fixture_config
from tests.fixtures.processes import MARK, listening, marked

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_models) -> ModelStore:
    d = tmp_path_factory.mktemp("stops")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.promote("fixture:1")
    return store


@pytest.mark.parametrize("when", ["starting", "cannot_be_placed"])
def test_a_stopped_service_leaves_no_process_and_no_port(tmp_path, store, when):
    mark = uuid.uuid4().hex
    model = {"name": "fixture", "num_cpus": 0.25, **({"num_gpus": 1} if when == "cannot_be_placed" else {})}
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump({"store": store.root, "models": [model]}))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {MARK: mark}
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trapline.cli", "serve", "--config", str(tmp_path / "serve.yaml"), "--port",
             str(free_port()), "--num-cpus", "2"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
            start_new_session=True)
    try:
        def started() -> dict[int, str] | None:
            assert proc.poll() is None or when == "cannot_be_placed", log.read_text()[-3000:]
            running = marked(mark)
            agents = [c for c in running.values() if "dashboard/agent.py" in c or "runtime_env/agent" in c]
            return running if any("raylet" in c for c in running.values()) and agents else None

        if when == "cannot_be_placed":
            assert proc.wait(120) == 2, log.read_text()[-3000:]
            text = log.read_text()
            assert "cannot be placed" in text and "each asks CPU 0.25, GPU 1" in text, text[-3000:]
        else:
            running = wait_until(started, 120, "Ray's processes, agents included", interval_s=0.2)
            ports = listening(set(running))
            assert len(running) >= 4 and len(ports) >= 2, (running, ports)  # GCS, raylet, dashboard, agents...
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)  # stopped while it starts, with any status: what it leaves behind is the point
        leftovers = marked(mark)  # at once: the stop ends what outlived Ray's shutdown before it exits
        assert leftovers == {} and listening(set(leftovers)) == set(), "\n".join(
            [f"{pid}: {cmd[:300]}" for pid, cmd in leftovers.items()] + [log.read_text()[-2000:]])
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in marked(mark):  # what a failed check leaves is this test's own
            os.kill(pid, signal.SIGKILL)
