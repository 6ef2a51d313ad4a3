"""The Antenna door's own lifecycle on the session's Serve, without Antenna (Antenna itself: test_antenna.py): the
Antenna guide's config runs as written, its shared secret required before anything is fetched or recorded (a door
without one is open); a replica the cluster cannot place is said with its reason, on the waiting
side and in both doors' /readyz; a stopping service drains the door like the main door (a request inside is
answered, a new one gets 503 + Retry-After). One service, the guide's, for the last two."""

from __future__ import annotations

import base64
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
import requests
import yaml

from model_store import ModelStore
from model_store.demo.photos import PHOTOS
from model_store.demo.publish import publish_demo
from serve.local import client_url, free_port, run_local, running_http_options
from serve.polling import wait_until
from tests.fixtures.files_server import serving_directory
from tests.fixtures.images import garbage_after_header

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "antenna.md"
SECRET = "door-s3cret_-.~"  # URL-safe, as the guide asks (it travels in Antenna's endpoint_url)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> ModelStore:
    store = ModelStore(str(tmp_path_factory.mktemp("antenna-door") / "store"))
    publish_demo(store)
    return store


def guide_config() -> dict:
    """The serve config the Antenna guide shows (its first YAML block), as written."""
    block = re.search(r"^```yaml\n(.*?)^```", GUIDE.read_text(), re.S | re.M).group(1)
    return yaml.safe_load(block)


class StartEndedError(Exception):
    pass


def test_a_replica_the_cluster_cannot_place_is_said_with_its_reason_within_30_s(ray_cluster, demo_store):
    """A detector asking 3 CPUs of the session's 2-CPU Ray: the start says which deployment, what it asks, what the
    cluster has and the fix within 30 s, and both doors' /readyz answer it in their body meanwhile; once it ends, the
    app is gone in seconds."""
    port = free_port()
    cfg = {"store": demo_store.root, "http": {"port": 0, "one_hop": False, "ingress_num_cpus": 0.1},
           "models": [{"name": "demo-detector", "num_cpus": 3}],
           "antenna": {"port": port, "pipelines": [{"slug": "unplaced", "detector": "demo-detector"}]}}
    told: list[tuple[float, str]] = []
    said, checked = threading.Event(), threading.Event()
    ended: list[BaseException] = []

    def on_unplaced(reason: str) -> None:
        told.append((time.monotonic(), reason))
        said.set()
        checked.wait(120)
        raise StartEndedError  # ends the start: run_local deletes the app

    def start() -> None:
        try:
            with run_local(cfg, environ={}, app_name="unplaced", route_prefix="/unplaced", ready_timeout_s=120,
                           on_unplaced=on_unplaced):
                pass
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            ended.append(exc)

    began = time.monotonic()
    thread = threading.Thread(target=start)
    thread.start()
    try:
        assert said.wait(60), "nothing said about the replica that cannot be placed"
        [(at, reason)] = told
        assert at - began <= 30, f"said after {at - began:.0f} s"
        assert "deployment 'detector-demo-detector' (model 'demo-detector') of app 'unplaced'" in reason, reason
        assert "each asks CPU 3" in reason and "the cluster has CPU" in reason and "free of CPU 2" in reason, reason
        assert "a smaller `num_cpus` for model 'demo-detector'" in reason and "bigger node" in reason, reason

        def unready_body(url: str) -> str | None:
            try:
                r = httpx.get(url, timeout=30)
            except httpx.ConnectError:  # the door's server is starting
                return None
            return r.text if r.status_code == 503 and "cannot be placed" in r.text else None

        door = wait_until(lambda: unready_body(f"http://127.0.0.1:{port}/readyz"), 30, "the door's reason")
        assert "no pipeline's models serve yet; deployment 'detector-demo-detector'" in door
        main = wait_until(lambda: unready_body(f"{client_url(*running_http_options(), '/unplaced')}/readyz"), 30,
                          "the main door's reason")
        assert "each asks CPU 3" in main and "demo-detector" in main
        # no antenna.secret_env: the door is open (to whoever reaches its port: loopback, by default)
        info = httpx.get(f"http://127.0.0.1:{port}/info", timeout=30)
        assert info.status_code == 200 and [p["slug"] for p in info.json()["pipelines"]] == ["unplaced-v1"], info.text
    finally:
        checked.set()
        stopping = time.monotonic()
        thread.join(60)
    assert [type(e) for e in ended] == [StartEndedError]
    # the app deleted without Serve's 20 s grace for a replica that was never placed (serve/placement.py)
    assert time.monotonic() - stopping < 15, f"the start ended {time.monotonic() - stopping:.0f} s after"


@pytest.fixture(scope="module")
def guide_service(ray_cluster, demo_store, tmp_path_factory) -> Iterator[tuple[object, str, str, Path]]:
    """The Antenna guide's config as written (its port and paths made this test's, its secret set), started on the
    session's Serve: (the run_local block, not yet left, the door's URL with the secret in it as Antenna's
    endpoint_url holds it, the main door's URL, the directory of the recording's archive and tables)."""
    root = tmp_path_factory.mktemp("antenna-guide")
    cfg = guide_config()
    cfg["store"] = demo_store.root
    cfg["http"] = {"port": 0}
    cfg["antenna"]["port"] = free_port()
    # this test's pictures are served on 127.0.0.1, not from the guide's Antenna host: allowed by name (fetch guard)
    local = ["127.0.0.1"]
    cfg["antenna"]["fetch"] = {**cfg["antenna"]["fetch"], "allowed_hosts": local, "private_hosts": local}
    cfg["record"] = {**cfg["record"], "archive": str(root / "uploads"), "tables": str(root / "detections")}
    environ = {cfg["antenna"]["secret_env"]: SECRET}
    session = run_local(cfg, environ=environ, app_name="antenna-guide", route_prefix="/antenna-guide",
                        ready_timeout_s=120)
    base = session.__enter__()
    door = f"http://antenna:{SECRET}@127.0.0.1:{cfg['antenna']['port']}"  # httpx sends it as Basic, as Antenna does
    try:
        yield session, door, base, root
    finally:
        session.__exit__(None, None, None)  # a second leave is harmless: the app is gone after the first


def test_the_antenna_guides_config_runs_as_written_on_two_cores(guide_service):
    _, door, _, _ = guide_service
    ready = wait_until(lambda: (r := httpx.get(f"{door}/readyz", timeout=30)).status_code == 200 and r, 60, "door")
    assert ready.json() == {"status": ["trapline-demo-v1"]}
    info = httpx.get(f"{door}/info", timeout=30).json()
    assert [p["slug"] for p in info["pipelines"]] == ["trapline-demo-v1"]


def listing(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*"))


def test_the_door_with_its_secret_refuses_a_request_without_it_before_fetching_or_recording(guide_service):
    """antenna.secret_env set (the guide's config): /process, the pull route and /info without the secret, or with
    a wrong one, get the typed 401 (with Antenna's `detail`); no image is fetched (a listening socket is never
    connected to) and nothing is recorded (the recording's directory as it was). The probes stay open; the
    secret sent as Antenna sends it (requests, urljoin of an endpoint_url with user info) or as Bearer passes."""
    _, door, _, root = guide_service
    bare = door.replace(f"antenna:{SECRET}@", "")
    wait_until(lambda: httpx.get(f"{bare}/readyz", timeout=30).status_code == 200, 60, "the door, open for probes")
    assert httpx.get(f"{bare}/livez", timeout=10).status_code == 200
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    ask = {"pipeline": "trapline-demo-v1",
           "source_images": [{"id": "1", "url": f"http://127.0.0.1:{listener.getsockname()[1]}/cam/a.jpg"}]}
    before = listing(root)
    wrong = {"no header": {}, "wrong Bearer": {"Authorization": "Bearer nope"},
             "wrong Basic": {"Authorization": "Basic " + base64.b64encode(b"antenna:nope").decode()}}
    for said, headers in wrong.items():
        for method, path in (("POST", "/process"), ("POST", "/trapline/process/images"), ("GET", "/info"),
                             ("GET", "/trapline/sizing")):
            r = httpx.request(method, f"{bare}{path}", json=ask if method == "POST" else None, headers=headers,
                              timeout=30)
            assert r.status_code == 401, (said, path, r.text)
            assert r.json()["error"]["type"] == "unauthorized" and "shared secret" in r.json()["detail"], r.text
            assert r.headers["www-authenticate"].startswith("Basic")
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody came for the image
    listener.close()
    assert listing(root) == before
    # Antenna's own call (ami/ml/models/pipeline.py): a requests session posts to urljoin(endpoint_url, "/process")
    empty = {"pipeline": "trapline-demo-v1", "source_images": []}
    as_antenna = requests.Session().post(urljoin(f"{door}/", "/process"), json=empty, timeout=60)
    assert as_antenna.status_code == 200 and as_antenna.json()["pipeline"] == "trapline-demo-v1", as_antenna.text
    bearer = httpx.get(f"{bare}/info", headers={"Authorization": f"Bearer {SECRET}"}, timeout=30)
    assert bearer.status_code == 200 and [p["slug"] for p in bearer.json()["pipelines"]] == ["trapline-demo-v1"]


@pytest.fixture
def pictures(tmp_path) -> Iterator[str]:
    """A plain HTTP server with a good JPEG and one whose data is garbage after a valid header (the 404 is its own)."""
    (tmp_path / "good.jpg").write_bytes(next(PHOTOS.glob("*.jpg")).read_bytes())
    (tmp_path / "garbage.jpg").write_bytes(garbage_after_header())
    with serving_directory(tmp_path) as url:
        yield url


def test_failures_reach_antenna_and_a_corrupt_jpeg_is_no_empty_image(guide_service, pictures):
    """Push mode: a request none of whose images can be read is answered with one error naming each (Antenna logs
    an error answer's `detail` and counts the images failed; a 200's `errors` reach neither). A JPEG whose data is
    garbage after its header is the typed `corrupt` error on every door, not an image with no animal."""
    _, door, base, _ = guide_service
    garbage = {"id": "7", "url": f"{pictures}/garbage.jpg"}
    missing = {"id": "8", "url": f"{pictures}/missing.jpg"}
    push = httpx.post(f"{door}/process", json={"pipeline": "trapline-demo-v1", "source_images": [garbage, missing]},
                      timeout=60)
    assert push.status_code == 422, push.text
    body = push.json()
    assert body["error"]["type"] == "images_failed" and body["detail"] == body["error"]["message"]
    assert "2 of 2 images could not be answered" in body["detail"] and "image 7: invalid_image: corrupt JPEG" in \
        body["detail"] and "image 8: image_fetch_failed" in body["detail"]
    assert [(i["id"], i["reason"]) for i in body["error"]["images"]] == [("7", "corrupt"), ("8", "status")]
    mixed = httpx.post(f"{door}/process", json={"pipeline": "trapline-demo-v1", "source_images": [
        {"id": "1", "url": f"{pictures}/good.jpg"}, garbage]}, timeout=60).json()  # the default: the rest answered
    assert [i["id"] for i in mixed["source_images"]] == ["1"] and "image 7: invalid_image" in mixed["errors"][0]
    each = httpx.post(f"{door}/trapline/process/images", json={"pipeline": "trapline-demo-v1",
                                                               "source_images": [garbage]}, timeout=60).json()
    assert each["images"][0]["error"]["type"] == "invalid_image" and "corrupt JPEG" in each["images"][0]["error"][
        "message"]
    detect = httpx.post(f"{base}/v1/detect", content=garbage_bytes(pictures), timeout=60)
    assert detect.status_code == 422 and detect.json()["error"]["reason"] == "corrupt", detect.text


def garbage_bytes(pictures: str) -> bytes:
    return httpx.get(f"{pictures}/garbage.jpg", timeout=10).content


def test_a_stopping_service_drains_the_antenna_door_like_the_main_door(guide_service):
    """The end of `run_local` (what SIGTERM runs in `trapline serve`) closes the Antenna door's gate with the
    ingress's: a /process whose request is inside (here: its body still arriving) is answered, a request that
    comes after gets the typed 503 + Retry-After, not a closed connection."""
    session, door, _, _ = guide_service
    wait_until(lambda: httpx.get(f"{door}/readyz", timeout=10).status_code == 200, 60, "the Antenna door")
    first_part, release = threading.Event(), threading.Event()

    def body() -> Iterator[bytes]:
        yield b'{"pipeline": "trapline-demo-v1", '
        first_part.set()
        release.wait(60)
        yield b'"source_images": []}'

    held: list[httpx.Response] = []
    inside = threading.Thread(target=lambda: held.append(
        httpx.post(f"{door}/process", content=body(), headers={"content-type": "application/json"}, timeout=60)))
    inside.start()
    assert first_part.wait(30)
    time.sleep(0.3)  # the request's head reached the door: it is inside, its body still coming
    stopping = threading.Thread(target=session.__exit__, args=(None, None, None))
    stopping.start()

    def refused() -> httpx.Response | None:
        r = httpx.get(f"{door}/livez", timeout=10)
        return r if r.status_code != 200 else None

    r = wait_until(refused, 20, "the stopping Antenna door to refuse a request", interval_s=0.05)
    assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
    assert r.json()["error"]["type"] == "not_ready" and "shutting down" in r.json()["error"]["message"]
    release.set()
    inside.join(30)
    stopping.join(60)
    assert not stopping.is_alive()
    [answer] = held
    assert answer.status_code == 200 and answer.json()["pipeline"] == "trapline-demo-v1", answer.text
