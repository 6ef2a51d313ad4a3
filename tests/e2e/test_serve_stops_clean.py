"""Every stop of `trapline serve` leaves nothing behind (issue 67): the processes its local Ray started (GCS, raylet,
dashboard and its agents, replicas) and the ports they listened on are counted while it runs and after it stopped,
for a service stopped (SIGTERM) while it starts, one stopped once ready, and one that stops itself because a replica
cannot be placed. The processes are told from any other Ray on the machine by a mark in their environment."""

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

REPO = Path(__file__).resolve().parents[2]
MARK = "TRAPLINE_TEST_STOP_MARK"


def marked(mark: str) -> dict[int, str]:
    """PID -> command line of the live processes whose environment carries `mark` (zombies have ended)."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if f"{MARK}={mark}".encode() not in (d / "environ").read_bytes().split(b"\0"):
                continue
            if (d / "stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                continue
            found[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def listening(pids: set[int]) -> set[int]:
    """The TCP ports in LISTEN state held by `pids`."""
    inodes = set()
    for pid in pids:
        try:
            inodes |= {os.readlink(fd)[8:-1] for fd in Path(f"/proc/{pid}/fd").iterdir()
                       if os.readlink(fd).startswith("socket:[")}
        except OSError:
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] == "0A" and cols[9] in inodes:
                ports.add(int(cols[1].split(":")[1], 16))
    return ports


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_models) -> ModelStore:
    d = tmp_path_factory.mktemp("stops")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.promote("fixture:1")
    return store


@pytest.mark.parametrize("when", ["starting", "ready", "cannot_be_placed"])
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
            if when == "ready":
                wait_until(lambda: "Ctrl-C to stop" in log.read_text(), 180, "the service to be ready")
                running = marked(mark)
            ports = listening(set(running))
            assert len(running) >= 4 and len(ports) >= 2, (running, ports)  # GCS, raylet, dashboard, agents...
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(120)
            assert code == 0 or when == "starting", log.read_text()[-3000:]
        leftovers = marked(mark)  # at once: the stop ends what outlived Ray's shutdown before it exits
        assert leftovers == {} and listening(set(leftovers)) == set(), "\n".join(
            [f"{pid}: {cmd[:300]}" for pid, cmd in leftovers.items()] + [log.read_text()[-2000:]])
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in marked(mark):  # what a failed check leaves is this test's own
            os.kill(pid, signal.SIGKILL)
