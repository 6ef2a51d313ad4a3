"""trapline as an Antenna processing service, against the real Antenna (`../shared/antenna/`, beside the repo's
clone: Django, PostgreSQL, Redis, NATS, Celery; no Docker), driven as a user would by its `run_job.py`: a project,
captures, the service registered, an ML job, and what Antenna saved counted in its database.

One shared setup: the session's harness (tests/fixtures/antenna.py: `setup.sh`, apt packages as root and Antenna's
venv the first time, ~2 min, then `start.sh`, ~10 s, in the background while the service starts) and one trapline
service with the demo detector routed to the demo species classifier and the
Antenna door on a port of its own, recording what it answers into trapline's tables (`antenna.record`). Push mode
and pull mode each run one job; in pull mode the detector is promoted mid-run and `trapline antenna work` is killed
hard (SIGKILL) holding tasks and started again: Antenna redelivers what it held after its NATS_TASK_TTR, which the
harness sets short when it starts Antenna (an Antenna already running keeps its own, 300 s by default: slower, same
checks). After both jobs the tables hold one row per image URL per detector version, with the detections Antenna
saved. The door's per-image errors are checked on the same service without Antenna.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from model_store import ModelStore
from model_store.demo.photos import PHOTOS
from model_store.demo.publish import ASSETS, DEMO_NAME, SPECIES_NAME, demo_config, publish_demo
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import IMAGES as IMAGES_TABLE
from serve.local import free_port, run_local
from serve.polling import wait_until
from tests.fixtures.antenna import HARNESS, REPO
from tests.fixtures.files_server import serving_directory
from tests.fixtures.proxy import FaultProxy

IMAGES = 6  # the demo detector was trained on rendered mammals: on Antenna's synthetic moths it finds a few boxes
MOTH_SCORE_THRESHOLD = 0.15

pytestmark = pytest.mark.skipif(not (HARNESS / "run_job.py").exists(),
                                reason=f"the Antenna harness is not at {HARNESS} (set TRAPLINE_ANTENNA_HARNESS)")


def _env() -> dict[str, str]:
    # this checkout first, for the worker's `python -m trapline.cli`
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(":")}


@pytest.fixture(scope="module")
def door(antenna, ray_cluster, tmp_path_factory) -> Iterator[tuple[str, ModelStore, Path]]:
    root = tmp_path_factory.mktemp("antenna")
    store = ModelStore(str(root / "store"))
    for version in ("1", "2"):  # Antenna's synthetic moths are not the rendered mammals the demo detector learnt:
        # below its default threshold (0.25) it finds a few boxes on every series of them (0.25: on 3 series in 5)
        store.publish(ASSETS / f"v{version}" / "model.onnx", DEMO_NAME, version,
                      {**demo_config("onnx-yolo", version), "score_threshold": MOTH_SCORE_THRESHOLD})
    publish_demo(store)  # the species classifier; demo-detector@production -> 1
    port = free_port()
    config = {"store": store.root, "http": {"port": 0, "ingress_num_cpus": 0.1},
              "models": [{"name": DEMO_NAME, "num_cpus": 0.5, "max_batch_size": 4, "batch_wait_timeout_s": 0.01,
                          "classify": [{"model": SPECIES_NAME}]}],
              "classifiers": [{"name": SPECIES_NAME, "num_cpus": 0.25}],
              "record": {"archive": str(root / "archive"), "tables": str(root / "tables"), "flush_interval_s": 1},
              "antenna": {"port": port, "record": {}, "fetch": {"private_hosts": ["127.0.0.1"]},
                          "pipelines": [{"slug": "trapline-demo", "name": "trapline demo", "detector": DEMO_NAME,
                                         "classifier": SPECIES_NAME}]}}
    with run_local(config, environ={}):
        antenna.wait()  # the harness started in the background while the service started
        yield f"http://127.0.0.1:{port}", store, root / "tables"


def run_job(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HARNESS / "run_job.py"), *args], text=True,
                            stdout=subprocess.PIPE, **popen)


def summary(proc: subprocess.Popen, timeout_s: float = 600) -> dict:
    out, _ = proc.communicate(timeout=timeout_s)
    return json.loads(out.strip().splitlines()[-1])


def assert_saved(result: dict, images: int) -> None:
    assert result["ok"], result["errors"]
    assert result["job_status"] == "SUCCESS" and result["images_with_saved_results"] == images
    assert result["detections_saved"] >= 1 and result["classifications_saved"] >= 1
    assert result["detections_from_pipeline_algorithms"] == result["detections_saved"]


class Worker:
    """`trapline antenna work` as a subprocess, its progress lines read as they come."""

    def __init__(self, given: dict[str, str], door: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trapline.cli", "antenna", "work", "--api", given["ANTENNA_API"],
             "--project", given["ANTENNA_PROJECT_ID"], "--service", door, "--poll-interval-s", "0.5", "--json", *args],
            env={**_env(), "ANTENNA_TOKEN": given["ANTENNA_TOKEN"]}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.lines: list[str] = []
        self.done = False
        self._seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._seen:
                self.lines.append(line.strip())
                self._seen.notify_all()
        with self._seen:  # exited: whoever waits stops waiting
            self.done = True
            self._seen.notify_all()

    def wait_until(self, what: str, condition: Callable[[], bool], timeout_s: float = 300) -> None:
        with self._seen:
            self._seen.wait_for(lambda: self.done or condition(), timeout_s)
            assert condition(), f"{what}: not seen from the worker ({'exited' if self.done else 'timed out'}): " \
                                f"{self.lines[-20:]}"

    def wait_for(self, text: str) -> None:
        self.wait_until(repr(text), lambda: any(text in line for line in self.lines))

    def tasks(self, what: str) -> int:
        """Tasks the progress lines say were `taken` / `answered`."""
        return sum(int(m.group(1)) for line in self.lines if (m := re.search(rf"(\d+) task\(s\) {what}", line)))

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)  # stops taking tasks, answers what it holds, exits
        out, _ = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, self.lines[-20:]
        return json.loads(out)


def start_pull_job() -> subprocess.Popen:
    """run_job.py in pull mode: it makes its project and captures, prints what a worker needs (`pull_job_given`)
    and waits for a worker to register before it creates the job, so it can start while the push job runs."""
    return run_job("trapline", "--mode", "pull-native", "--images", str(IMAGES), "--pipeline", "trapline-demo-v1",
                   stderr=subprocess.PIPE)


def pull_job_given(job: subprocess.Popen) -> dict[str, str]:
    """The ANTENNA_* values the pull job printed for its worker."""
    given: dict[str, str] = {}
    for line in job.stderr:
        given.update(w.split("=", 1) for w in line.split() if w.startswith("ANTENNA_") and "=" in w)
        if "ANTENNA_PROJECT_ID" in given:
            break
    threading.Thread(target=job.stderr.read, daemon=True).start()  # drain the rest
    return given


def recorded(tables: Path, count: int, timeout_s: float = 60) -> list[dict]:
    """The version 1 image rows once `count` are committed (the recorder flushes every second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        # dedupe off: a row stored twice must show twice (readers otherwise read a row key once)
        rows = Tables(open_location(str(tables))).read(IMAGES_TABLE, DEMO_NAME, "1", dedupe=False).to_pylist()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def assert_recorded_once(rows: list[dict], result: dict) -> None:
    """One row per image URL of the job's captures (their camera is their Antenna station), with the detections
    Antenna saved."""
    assert len(rows) == len({r["uri"] for r in rows}) == IMAGES, [r["uri"] for r in rows]
    assert {r["status"] for r in rows} <= {"ok", "empty"}
    assert sum(r["detection_count"] for r in rows) == result["detections_saved"]


def test_push_and_pull_jobs_through_the_served_models(door, request):
    door, store, tables = door
    info = httpx.get(f"{door}/info", timeout=6).json()
    [pipeline] = info["pipelines"]
    assert pipeline["slug"] == "trapline-demo-v1"

    # the pull job's project and captures are made while the push job runs (its job waits for a worker)
    job = start_pull_job()
    request.addfinalizer(lambda: job.poll() is None and job.kill())  # a check failed before its worker came
    # push: Antenna's Celery worker POSTs the captures to the door's /process
    push = summary(run_job(door, "--images", str(IMAGES), "--batch-size", "3"))
    assert_saved(push, IMAGES)
    assert push["dispatch_mode"] == "sync_api" and push["pipelines_registered"] == ["trapline-demo-v1"]
    push_rows = recorded(tables, IMAGES)
    assert_recorded_once(push_rows, push)

    # pull: `trapline antenna work` registers with the project run_job.py made and takes the tasks; the detector is
    # promoted once it has registered: the worker registers the new pipeline (trapline-demo-v2), and the job Antenna
    # runs on trapline-demo-v1 is answered by version 1 to the end. The worker is killed hard holding tasks and
    # started again: the new one finds the v1 job (the door answers it) and Antenna redelivers what the dead one held.
    given = pull_job_given(job)
    # small batches, one at a time, through a gate that holds its calls to the door: its first batch is held until
    # the promotion shows in /info; then one call goes through, the worker registers the new pipeline before its
    # next batch, and that batch is held: the worker is killed in the door's call for it
    with FaultProxy(door) as gate:
        gate.rule = lambda method, path: "hold" if path == "/trapline/process/images" else "pass"
        first = Worker(given, gate.url, "--batch-size", "2", "--streams", "1")
        first.wait_for("registered trapline-demo-v1")
        first.wait_for("task(s) taken")
        store.promote(f"{DEMO_NAME}:2")
        wait_until(lambda: httpx.get(f"{door}/info", timeout=6).json()["pipelines"][0]["slug"] == "trapline-demo-v2",
                   120, "the promotion in the door's /info")
        gate.release(1)
        first.wait_for("registered trapline-demo-v2")  # a running worker re-registers when /info changes
        first.wait_until("a second batch taken and held",
                         lambda: (first.tasks("taken"), first.tasks("answered")) == (4, 2))
        first.proc.kill()  # SIGKILL: nothing of what it holds is posted
        first.proc.wait(timeout=30)
    taken, answered = first.tasks("taken"), first.tasks("answered")
    assert taken > answered, first.lines  # it died holding tasks it had not answered
    second = Worker(given, door)
    try:
        pull = summary(job)
    finally:
        report = second.stop()
    assert_saved(pull, IMAGES)
    assert pull["dispatch_mode"] == "async_api"
    # every task answered exactly once over the two workers: none lost, none answered twice, none failed
    assert (pull["images_sent"], pull["images_failed"]) == (IMAGES, 0)
    assert (answered + report["tasks_answered"], report["tasks_failed"], report["tasks_left"]) == (IMAGES, 0, 0)
    assert report["stopped_by"] == "SIGTERM"
    assert report["pipelines"] == ["trapline-demo-v2"] and report["registrations"] == 1
    # every detection Antenna saved is the v1 pipeline's detector's (the job's), though v2 serves by then
    assert pull["detections_from_pipeline_algorithms"] == pull["detections_saved"]
    assert httpx.get(f"{door}/info", timeout=6).json()["pipelines"][0]["slug"] == "trapline-demo-v2"

    # the tables: one row per image URL of each job under detector version 1, whichever worker answered (the dead
    # worker's images were answered by the door twice), with the detections Antenna saved
    rows = recorded(tables, 2 * IMAGES)
    push_cameras = {r["camera_id"] for r in push_rows}
    assert_recorded_once([r for r in rows if r["camera_id"] not in push_cameras], pull)
    assert len(push_cameras) == 1 and len(rows) == 2 * IMAGES


@pytest.fixture
def pictures(tmp_path) -> Iterator[str]:
    """A plain HTTP server with one good JPEG and one corrupt one (the 404 is its own)."""
    (tmp_path / "good.jpg").write_bytes(next(PHOTOS.glob("*.jpg")).read_bytes())
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    with serving_directory(tmp_path) as url:
        yield url


def test_each_image_that_cannot_be_read_is_its_own_typed_error(door, pictures):
    door, _, _ = door
    images = [{"id": "1", "url": f"{pictures}/good.jpg"}, {"id": "2", "url": f"{pictures}/missing.jpg"},
              {"id": "3", "url": f"{pictures}/corrupt.jpg"}]
    push = httpx.post(f"{door}/process", json={"pipeline": "trapline-demo-v1", "source_images": images,
                                                "config": {"request_source_image_batch_size": 3}}, timeout=60).json()
    assert [i["id"] for i in push["source_images"]] == ["1"]  # the others are not marked processed
    assert [e.split(":")[0:2] for e in push["errors"]] == [["image 2", " image_fetch_failed"],
                                                          ["image 3", " invalid_image"]]
    each = httpx.post(f"{door}/trapline/process/images", json={"pipeline": "trapline-demo-v1",
                                                               "source_images": images}, timeout=60).json()
    assert [(i["id"], (i["error"] or {}).get("type")) for i in each["images"]] == [
        ("1", None), ("2", "image_fetch_failed"), ("3", "invalid_image")]
