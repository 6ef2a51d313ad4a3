"""Every stop of `trapline serve`, `trapline reprocess` and `trapline antenna work` by SIGTERM (systemd, `docker stop`,
`ray job stop`) or Ctrl-C (SIGINT) is a clean one, in whichever phase it comes (issues 67 and 81): the documented exit
code and last line, and nothing left running: the processes a local Ray started (GCS, raylet, dashboard and its
agents, replicas) and the ports they listened on are counted after it exited. Each phase is reached by waiting for
its own sign (a line said, a process started), never a sleep.

`trapline serve` (exit 0, `stopped`): waiting for a model (before Ray), Ray starting, replicas starting; ready and
draining (a second SIGTERM while it drains) are tests/e2e/test_quiet_output.py's service, one start for both.
`trapline reprocess` (Ctrl-C 130 `interrupted`, SIGTERM 143 `terminated`): Ray starting, running (its manifest closed as
interrupted). `trapline antenna work` (exit 0): asking the door for its sizing, and holding a batch (answered and
posted, then it exits). The processes are told from any other Ray on the machine by a mark in their environment
(tests/fixtures/processes.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from model_store import ModelStore
from serve.local import free_port
from serve.polling import wait_until
from tests.fixtures.archive import brightness_config, brightness_model
from tests.fixtures.images import encode, gradient
from tests.fixtures.onnx_models import fixture_config
from tests.fixtures.processes import MARK, listening, marked

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_models) -> ModelStore:
    d = tmp_path_factory.mktemp("stops")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.promote("fixture:1")
    store.publish(brightness_model(d / "bright.onnx"), "trapcam", "1", brightness_config())
    return store


class Command:
    """One `trapline` command line run as a user runs it, its output in a file, its processes marked."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.mark, self.log = uuid.uuid4().hex, tmp_path / f"{args[0]}-{uuid.uuid4().hex[:6]}.log"
        environ = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {MARK: self.mark} | (env or {})
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "trapline.cli", *args], stdout=out,
                                         stderr=subprocess.STDOUT, env=environ, cwd=REPO, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, sign: Callable[[], object], what: str) -> object:
        def seen() -> object:
            assert self.proc.poll() is None, f"exited {self.proc.returncode} before {what}:\n{self.text()[-3000:]}"
            return sign()

        return wait_until(seen, 240, what, interval_s=0.1)

    def ray(self, title: str) -> bool:
        """Whether one of its processes' command line has `title` (raylet, ServeReplica, ...)."""
        return any(title in cmd for cmd in marked(self.mark).values())

    def stop(self, signum: int, code: int, last: str, then: Callable[[], None] = lambda: None) -> None:
        """Send `signum` (then do `then`); the command exits `code`, its last line ends with `last`, and it leaves no
        process and no port."""
        self.proc.send_signal(signum)
        then()
        returned = self.proc.wait(120)
        leftovers = marked(self.mark)  # at once: the stop ends what outlived Ray's shutdown before it exits
        lines = [line for line in self.text().splitlines() if line.strip()]
        assert returned == code and lines[-1].endswith(last), self.text()[-3000:]
        assert leftovers == {} and listening(set(leftovers)) == set(), "\n".join(
            [f"{pid}: {cmd[:300]}" for pid, cmd in leftovers.items()] + [self.text()[-2000:]])

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        for pid in marked(self.mark):  # what a failed check leaves is this test's own
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def run(tmp_path):
    started: list[Command] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Command:
        started.append(Command(tmp_path, *args, env=env))
        return started[-1]

    yield start
    for command in started:
        command.end()


# -- trapline serve -------------------------------------------------------------------------------------------------
def test_serve_stopped_while_it_waits_for_a_model_exits_0(run, tmp_path):
    """Before Ray: a store with nothing to serve, `--wait-for-models` (the container's default); Ctrl-C."""
    serve = run("serve", "--store", str(tmp_path / "empty"), "--wait-for-models", "--port", str(free_port()))
    serve.wait_for(lambda: "Waiting for a model" in serve.text(), "the wait for a model")
    serve.stop(signal.SIGINT, 0, "stopped")


@pytest.mark.parametrize("phase", ["ray_starting", "replicas_starting"])
def test_serve_stopped_while_it_starts_exits_0_and_leaves_nothing(run, tmp_path, store, phase):
    """SIGTERM once the local Ray's raylet runs (Ray's start; once it had started, Ray's own handler ended the process
    with SIGABRT, exit 134), and once a replica's process runs (Serve deploying): exit 0, `stopped`, nothing left."""
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump({"store": store.root, "models": [
        {"name": "fixture", "num_cpus": 0.25}], "http": {"ingress_num_cpus": 0.1}}))
    serve = run("serve", "--config", str(tmp_path / "serve.yaml"), "--port", str(free_port()), "--num-cpus", "2")
    title = "raylet" if phase == "ray_starting" else "ray::ServeReplica"
    serve.wait_for(lambda: serve.ray(title), title)
    serve.stop(signal.SIGTERM, 0, "stopped")


# -- trapline reprocess ---------------------------------------------------------------------------------------------
@pytest.fixture
def archive(tmp_path) -> Path:
    """More images than a run gets through while its stop is on its way."""
    root = tmp_path / "archive" / "cam01"
    root.mkdir(parents=True)
    for i in range(120):
        (root / f"IMG_{i:04d}.JPG").write_bytes(encode(gradient(320 + i, 240)))
    return root.parent


@pytest.mark.parametrize("phase", ["ray_starting", "running"])
def test_reprocess_stopped_ends_interrupted_and_leaves_nothing(run, tmp_path, store, archive, phase):
    """Ctrl-C while its Ray starts: 130, `interrupted`. SIGTERM (`ray job stop`) once its run is under way: 143,
    `terminated`, the run's manifest closed as interrupted (a rerun resumes)."""
    out = tmp_path / "out"
    reprocess = run("reprocess", "--archive", str(archive), "--out", str(out), "--model", "trapcam:1", "--store",
                    store.root, "--progress-interval", "0.5")
    if phase == "ray_starting":
        reprocess.wait_for(lambda: reprocess.ray("raylet"), "its Ray's raylet")
        reprocess.stop(signal.SIGINT, 130, "interrupted")
        return
    reprocess.wait_for(lambda: "image(s) to process" in reprocess.text(), "its run's first line")
    reprocess.stop(signal.SIGTERM, 143, "terminated")
    [manifest] = [json.loads(p.read_text()) for p in (out / "_runs").glob("*.json")]
    assert manifest["status"] == "interrupted", manifest


# -- trapline antenna work ------------------------------------------------------------------------------------------
class FakeAntenna(ThreadingHTTPServer):
    """Antenna's task API and a trapline door in one: one job of 2 tasks; the door's sizing and its answer to a batch
    each wait for `release` once asked (`asked`), so a test holds the worker in that phase."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _AntennaHandler)
        self.asked = {"sizing": threading.Event(), "batch": threading.Event()}
        self.release = {"sizing": threading.Event(), "batch": threading.Event()}
        self.posted: list[dict] = []
        self.tasks = [{"id": i, "image_id": i, "image_url": f"http://127.0.0.1:9/{i}.jpg", "reply_subject": f"r{i}"}
                      for i in (1, 2)]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def held(self, step: str) -> None:
        self.asked[step].set()
        self.release[step].wait(60)


class _AntennaHandler(BaseHTTPRequestHandler):
    server: FakeAntenna

    def log_message(self, *args) -> None:
        pass

    def _answer(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/trapline/sizing":
            self.server.held("sizing")
            self._answer({"batch_size": 2})
        elif path == "/info":
            self._answer({"pipelines": [{"slug": "fake-v1", "name": "fake", "version": 1}]})
        elif path == "/trapline/slugs":
            self._answer(["fake-v1"])
        else:  # /jobs/
            self._answer({"results": [{"id": 7, "pipeline_slug": "fake-v1"}] if self.server.tasks else []})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/jobs/7/tasks/":
            tasks, self.server.tasks = self.server.tasks, []
            self._answer({"tasks": tasks})
        elif self.path == "/trapline/process/images":
            self.server.held("batch")
            self._answer({"images": [{"id": i["id"], "error": {"type": "fetch", "message": "gone"}}
                                     for i in body["source_images"]]})
        elif self.path == "/jobs/7/result/":
            self.server.posted += body["results"]
            self._answer({})
        else:  # registration
            self._answer({})


@pytest.mark.parametrize("phase", ["asking_the_door", "holding_a_batch"])
def test_antenna_work_stopped_exits_0_having_answered_what_it_held(run, phase):
    """SIGTERM while it asks the door for its batch size (before it takes any task): `stopped`. SIGTERM while the
    door works on a batch it took: the batch is answered and posted once, then its report (`stopped: SIGTERM`)."""
    fake = FakeAntenna()
    try:
        work = run("antenna", "work", "--api", fake.url, "--project", "3", "--service", fake.url,
                   "--poll-interval-s", "0.2", env={"ANTENNA_TOKEN": "t"})
        step = "sizing" if phase == "asking_the_door" else "batch"
        if step == "batch":
            fake.release["sizing"].set()
        work.wait_for(fake.asked[step].is_set, f"the door asked for the {step}")
        if step == "sizing":
            work.stop(signal.SIGTERM, 0, "stopped")
            assert fake.posted == []
            return
        work.stop(signal.SIGTERM, 0, "; stopped: SIGTERM", then=fake.release["batch"].set)
        assert "antenna project 3: 2 task(s) answered (2 as errors)" in work.text(), work.text()
        assert [r["reply_subject"] for r in fake.posted] == ["r1", "r2"], fake.posted
    finally:
        for event in fake.release.values():
            event.set()
        fake.shutdown()
