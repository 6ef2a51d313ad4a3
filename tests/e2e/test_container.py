"""The image as a user runs it: built from the Dockerfile with podman, started with compose.yaml (podman-compose),
on an empty ./models from the host, then a model published and swapped from the host under load, tables made on the
host over the archive volume read in the container (and the container's on the host), then stopped.

One setup for the module (the build and one container): building costs minutes cold, seconds cached
(BENCHMARKS.md, "The container image"). Podman, buildah, runc, debootstrap and podman-compose come from Debian
(`deploy/container/debian-base.sh`, as `.ci/run` would install them); no container registry is reachable here, so the
Dockerfile's `FROM ${BASE}` is built on a local stand-in for python:3.11-slim-bookworm made from Debian's packages
(`--build-arg BASE=localhost/debian-python:bookworm-slim --pull=never`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from model_store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.roots import relocate
from model_store.tables.schema import IMAGES
from serve.local import free_port
from serve.polling import wait_until
from tests.fixtures.images import encode, gradient
from tests.fixtures.load import LoadClient
from tests.fixtures.onnx_models import fixture_config

REPO = Path(__file__).resolve().parents[2]
BASE = "localhost/debian-python:bookworm-slim"
IMAGE = "localhost/trapline:test"
TOKEN = "container-admin-token"
CONTAINER_UID = "1000"


def _run(*cmd: str, timeout: float = 120, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def _podman_ready() -> str | None:
    """Install podman & co. and the local base image if missing; None when usable, else why not."""
    if os.name != "posix" or not Path("/etc/debian_version").exists():
        return "the container test builds its base image from Debian's packages: needs a Debian host"
    if os.geteuid() != 0:
        return "the container test installs podman and builds a base image with debootstrap: needs root"
    r = subprocess.run(["bash", str(REPO / "deploy/container/debian-base.sh"), BASE], capture_output=True, text=True,
                       timeout=900)
    if r.returncode != 0:
        return f"deploy/container/debian-base.sh failed: {r.stderr[-1500:] or r.stdout[-1500:]}"
    return None


@pytest.fixture(scope="module")
def image() -> str:
    why = _podman_ready()
    if why:
        pytest.skip(why)
    env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}
    started = time.monotonic()
    _run("podman", "build", "--format", "docker", "--pull=never", "--build-arg", f"BASE={BASE}",
         "--build-arg", "VERSION=test", "-t", IMAGE, str(REPO), timeout=1800, env=env)
    print(f"image built in {time.monotonic() - started:.0f} s")
    return IMAGE


class Compose:
    """`podman-compose` on the repository's compose.yaml, with a project, a port and a ./models of the test's."""

    def __init__(self, models: Path, port: int, files: tuple[str, ...] = ("compose.yaml",)) -> None:
        self.project = f"trapline-test-{uuid.uuid4().hex[:8]}"
        self.files = [a for f in files for a in ("-f", str(REPO / f))]
        self.port, self.models = port, models
        self.env = {**os.environ, "TRAPLINE_IMAGE": IMAGE, "TRAPLINE_PORT": str(port), "TRAPLINE_MODELS": str(models),
                    "TRAPLINE_ADMIN_TOKEN": TOKEN, "TRAPLINE_SEED_DEMO": "0"}

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        return _run("podman-compose", *self.files, "-p", self.project, *args, timeout=timeout,
                    check=check, env=self.env, cwd=REPO)

    def name(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    @property
    def container(self) -> str:
        return self.name("trapline")

    def volume(self, name: str) -> Path:
        """Where a named volume of the project is on the host."""
        return Path(_run("podman", "volume", "inspect", f"{self.project}_{name}", "--format",
                         "{{.Mountpoint}}").stdout.strip())

    def down(self) -> None:
        self("down", "-v", check=False)
        _run("podman", "volume", "rm", "-f", f"{self.project}_archive", f"{self.project}_tables", check=False)
        _run("podman", "network", "rm", "-f", f"{self.project}_default", check=False)  # podman-compose 1.0 leaves it

    def inspect(self) -> dict:
        return json.loads(_run("podman", "inspect", self.container).stdout)[0]

    def logs(self) -> str:
        r = _run("podman", "logs", self.container, check=False)
        return r.stdout + r.stderr


@pytest.fixture(scope="module")
def compose(image, tmp_path_factory) -> Iterator[Compose]:
    """The compose file's `trapline` service on an empty ./models (its named volumes are the project's)."""
    models = tmp_path_factory.mktemp("models")
    models.chmod(0o755)  # pytest makes it 0700: the container's user (uid 1000) reads the host's models
    c = Compose(models, free_port())
    # the service alone: compose.yaml holds nothing else (the cluster is compose.cluster.yaml)
    c("up", "-d", "--no-build", "trapline")
    try:
        yield c
    finally:
        print(c.logs()[-4000:])
        c.down()


def _url(c: Compose) -> str:
    return f"http://127.0.0.1:{c.port}"


def test_the_image_serves_a_model_published_from_the_host_swaps_under_load_and_stops_cleanly(compose, fixture_models):
    c = compose
    # An empty ./models: the service says how to publish a model and waits, running, not restarting.
    wait_until(lambda: "nothing to serve yet" in c.logs(), 120, "the empty-store message")
    logs = c.logs()
    assert "trapline models publish WEIGHTS.onnx --name NAME --version 1 --store /models" in logs, logs
    assert "TRAPLINE_SEED_DEMO=1" in logs
    state = c.inspect()["State"]
    started_at = state["StartedAt"]
    assert state["Running"] and state.get("Restarts", state.get("RestartCount", 0)) == 0
    # non-root, and the image's labels carry the version it was built with
    assert _run("podman", "exec", c.container, "id", "-u").stdout.strip() == CONTAINER_UID
    labels = json.loads(_run("podman", "image", "inspect", IMAGE).stdout)[0]["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == "test"

    # Publish and promote from the host, into the mounted directory: the waiting service starts serving it.
    store = ModelStore(str(c.models))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.publish(fixture_models["yolov5"], "fixture", "2", fixture_config("yolov5"))
    published = time.monotonic()
    store.promote("fixture:1")

    def ready() -> bool:
        try:
            return httpx.get(f"{_url(c)}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 180, "the container's /readyz", interval_s=0.5)
    print(f"promote on the host to ready in the container: {time.monotonic() - published:.1f} s")
    image = encode(gradient(640, 480))
    r = httpx.post(f"{_url(c)}/v1/detect", content=image, timeout=60)
    assert r.status_code == 200 and r.json()["model"] == {**r.json()["model"], "name": "fixture", "version": "1"}
    assert len(r.json()["detections"]) == 4
    assert httpx.get(f"{_url(c)}/console", timeout=30).status_code == 200
    # the admin token from the environment (.env) reaches the service, and only that token opens the admin routes
    reload = f"{_url(c)}/v1/admin/models/fixture/reload"
    assert httpx.post(reload, headers={"Authorization": "Bearer ${TRAPLINE_ADMIN_TOKEN:-}"}, timeout=60).status_code \
        in (401, 403)
    assert httpx.post(reload, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120).status_code == 200

    # Hot swap from the host under load: the replicas poll the store's alias files (they are the mounted ones). Each
    # replica (two here, one per core) swaps on its own poll, so for up to one poll interval answers come from both.
    with LoadClient(_url(c), image) as load:
        store.promote("fixture:2")
        promoted = time.monotonic()
        wait_until(lambda: all(len(r) > 5 and {v for _, v in r[-5:]} == {"2"} for r in load.results), 60,
                   "every replica answering version 2")
        swapped_s = time.monotonic() - promoted
    load.assert_all_ok()
    print(f"swap in the container: {load.total()} requests, 0 failed, only version 2 answering {swapped_s:.1f} s "
          "after the promote")
    for i in range(len(load.results)):
        runs = load.version_runs(i)
        assert runs[0] == "1" and runs[-1] == "2" and set(runs) == {"1", "2"}, runs
    assert c.inspect()["State"]["StartedAt"] == started_at  # no restart

    _tables_made_on_one_side_are_read_on_the_other(c, image)

    # An upload kept (POST /v1/images): its picture goes to the archive volume, its row to the tables volume.
    r = httpx.post(f"{_url(c)}/v1/images", params={"camera": "cam-1"}, content=encode(gradient(320, 240)), timeout=60)
    assert r.status_code == 201 and r.json()["state"] == "pending", r.text  # answered; its row committed later

    # SIGTERM (podman stop): what is in flight is answered, then the service exits 0.
    # (when the request was sent, its status (0: no HTTP answer), its Retry-After)
    sent: list[tuple[float, int, str | None]] = []
    stop_load = threading.Event()

    def keep_sending() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop_load.is_set():
                t = time.monotonic()
                try:
                    r = client.post(f"{_url(c)}/v1/detect", content=image)
                    sent.append((t, r.status_code, r.headers.get("retry-after")))
                except httpx.HTTPError:
                    sent.append((t, 0, None))
                    time.sleep(0.05)

    senders = [threading.Thread(target=keep_sending) for _ in range(2)]
    for t in senders:
        t.start()
    wait_until(lambda: len(sent) >= 6, 60, "requests before the stop")
    stop_sent = time.monotonic()
    _run("podman", "stop", "-t", "60", c.container, timeout=120)
    stop_load.set()
    for t in senders:
        t.join(60)
    before = [status for t, status, _ in sent if t < stop_sent]
    after = [(status, retry) for t, status, retry in sent if t >= stop_sent]
    assert before and set(before) == {200}, before  # every request sent before the stop was answered
    # What came after is answered, or refused with the draining service's 503 + Retry-After (retry elsewhere), then
    # no connection once the proxy is gone: never Serve's 404 (its route gone while its proxy still listened), never
    # a 5xx that says something broke.
    assert set(after) <= {(200, None), (503, "1"), (0, None)}, after
    state = c.inspect()["State"]
    lines = [line.strip() for line in c.logs().splitlines()]
    assert state["ExitCode"] == 0, c.logs()[-3000:]
    assert "shutting down..." in lines and "stopped" in lines, c.logs()[-3000:]
    # the recorder committed the upload's row and released its lease on the way out: the host reads the table
    tables = c.volume("tables") / "uploads"
    [row] = Tables(open_location(str(tables))).read(IMAGES, "fixture", "2").to_pylist()
    assert row["camera_id"] == "cam-1", row
    assert not list(tables.glob("_leases/*.json")), list(tables.glob("_leases/*"))

    # Recreated from the image, it loses nothing: ./models is the host's, serving resumes on version 2.
    c("down")
    c("up", "-d", "--no-build", "trapline")
    wait_until(ready, 180, "the recreated container's /readyz", interval_s=0.5)
    r = httpx.post(f"{_url(c)}/v1/detect", content=image, timeout=60)
    assert r.status_code == 200 and r.json()["model"]["version"] == "2"


def _tables_made_on_one_side_are_read_on_the_other(c: Compose, image: bytes) -> None:
    """An archive is a root plus relative paths (model_store/tables/roots.py): the same folder seen at the archive
    volume's path on the host and at /archive in the container is one archive. Tables the host made over it are read
    in the container (the console shows their pictures, a rerun there finds nothing new), and rows the container adds
    are read on the host (a dry run there finds nothing new, the pictures are found)."""
    archive, tables = c.volume("archive"), c.volume("tables") / "detections"
    (archive / "cam-h").mkdir()
    for i in range(3):
        (archive / "cam-h" / f"{i}.jpg").write_bytes(encode(gradient(320 + 16 * i, 240)))
    host = [sys.executable, "-m", "trapline.cli", "reprocess", "--archive", str(archive), "--out", str(tables),
            "--model", "fixture", "--store", str(c.models)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # the host's own local Ray
    made = _run(*host, "--via", "actors", "--num-cpus", "1", timeout=600, cwd=REPO, env=env)
    assert "processed 3: ok 3" in made.stdout, made.stdout[-3000:]
    for path in [tables, *tables.rglob("*")]:  # the container's user (uid 1000) adds to them: its lease, its runs
        os.chown(path, int(CONTAINER_UID), int(CONTAINER_UID))
    container = ["podman", "exec", c.container, "trapline", "reprocess", "--archive", "/archive", "--out",
                 "/tables/detections", "--model", "fixture"]
    rerun = _run(*container, timeout=300)
    assert "3 already done (skipped), 0 to process" in rerun.stdout, rerun.stdout[-3000:]
    assert f"processed at {archive}" in rerun.stdout, rerun.stdout[-3000:]
    # the console's pictures (the tables /tables/detections, over /archive by serve.yaml) show the host's captures
    page = httpx.get(f"{_url(c)}/v1/pictures/captures", params={"tables": "/tables/detections"},
                     headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert page.status_code == 200 and len(page.json()["captures"]) == 3, page.text
    for capture in page.json()["captures"]:
        assert capture["uri"].startswith(str(archive)), capture["uri"]  # as the host wrote it
        picture = httpx.get(f"{_url(c)}{capture['image_url']}", timeout=60)
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg", picture.text[:300]
        assert picture.content == Path(capture["uri"].removeprefix("file://")).read_bytes()

    # The reverse: a new camera run in the container (through its service); on the host, nothing is new.
    (archive / "cam-c").mkdir()
    for i in range(2):
        (archive / "cam-c" / f"{i}.jpg").write_bytes(encode(gradient(400, 240 + 16 * i)))
    run = _run(*container, timeout=600)
    assert "processed 2: ok 2" in run.stdout, run.stdout[-3000:]
    dry = _run(*host, "--dry-run", timeout=300, cwd=REPO, env=env)
    assert "5 already done (skipped), 0 to process" in dry.stdout and "processed at /archive" in dry.stdout, dry.stdout
    rows = Tables(open_location(str(tables))).read(IMAGES, "fixture", "2").to_pylist()
    inside = sorted(r["uri"] for r in rows if "cam-c" in r["uri"])
    assert [relocate(str(archive), uri) for uri in inside] == [str(archive / "cam-c" / f"{i}.jpg") for i in range(2)]


def test_the_cluster_file_reprocesses_the_mounted_archive_through_the_running_deployment(image, tmp_path,
                                                                                        fixture_models):
    """compose.cluster.yaml: a Ray head (the service's driver) and a worker; `ray job submit` in the head sends an
    archive run through the deployment, its tables land in the `tables` volume and the host reads them."""
    models = tmp_path / "models"
    models.mkdir(mode=0o755)
    store = ModelStore(str(models))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.promote("fixture:1")
    c = Compose(models, free_port(), ("compose.yaml", "compose.cluster.yaml"))
    port = free_port()
    c.env.update(TRAPLINE_CLUSTER_PORT=str(port), RAY_AUTH_TOKEN=uuid.uuid4().hex, RAY_HEAD_CPUS="1")
    head = c.name("ray-head")
    try:
        c("up", "-d", "--no-build", "ray-head", "ray-worker")

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 300, "the cluster's /readyz", interval_s=1)
        wait_until(lambda: _run("podman", "exec", head, "ray", "status", check=False).stdout.count("node_") >= 2, 120,
                   "the worker to join the head")
        archive = tmp_path / "cam-a"
        archive.mkdir()
        for i in range(3):
            (archive / f"{i}.jpg").write_bytes(encode(gradient(320 + 16 * i, 240)))
        _run("podman", "cp", str(archive), f"{head}:/archive/cam-a")
        job = _run("podman", "exec", head, "ray", "job", "submit", "--", "trapline", "reprocess", "--archive",
                   "/archive", "--out", "/tables/detections", "--model", "fixture", "--via", "serve", timeout=600)
        assert "via serve" in job.stdout and "succeeded" in job.stdout, job.stdout[-3000:]
        rows = Tables(open_location(str(c.volume("tables") / "detections"))).read(IMAGES, "fixture", "1").to_pylist()
        assert sorted(r["uri"] for r in rows) == [f"/archive/cam-a/{i}.jpg" for i in range(3)]
        assert {r["status"] for r in rows} == {"ok"}
    finally:
        print(_run("podman", "logs", head, check=False).stdout[-3000:])
        c.down()
