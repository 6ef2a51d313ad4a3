"""The Antenna door's own lifecycle on the session's Serve, without Antenna: a stopping service drains it like the
main door (a request inside is answered, a new one gets 503 + Retry-After). Antenna itself is in test_antenna.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx

from serve.local import free_port, run_local, wait_until


def test_a_stopping_service_drains_the_antenna_door_like_the_main_door(ray_cluster, promoted_store):
    """The end of `run_local` (what SIGTERM runs in `trapline serve`) closes the Antenna door's gate with the
    ingress's: a /process whose request is inside (here: its body still arriving) is answered, a request that
    comes after gets the typed 503 + Retry-After, not a closed connection."""
    store = promoted_store("antenna-door")
    port = free_port()
    cfg = {"store": store.root, "http": {"port": 0, "ingress_num_cpus": 0.1, "retry_after_s": 2},
           "models": [{"name": "fixture", "num_cpus": 0.1, "graceful_shutdown_wait_loop_s": 0.2}],
           "antenna": {"port": port, "pipelines": [{"slug": "fixture-pipeline", "detector": "fixture"}]}}
    session = run_local(cfg, environ={}, app_name="antenna-door", route_prefix="/antenna-door")
    session.__enter__()
    door = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{door}/readyz", timeout=10).status_code == 200, 60, "the Antenna door")
    first_part, release = threading.Event(), threading.Event()

    def body() -> Iterator[bytes]:
        yield b'{"pipeline": "fixture-pipeline-v1", '
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
    assert r.status_code == 503 and r.headers["retry-after"] == "2", r.text
    assert r.json()["error"]["type"] == "not_ready" and "shutting down" in r.json()["error"]["message"]
    release.set()
    inside.join(30)
    stopping.join(60)
    assert not stopping.is_alive()
    [answer] = held
    assert answer.status_code == 200 and answer.json()["pipeline"] == "fixture-pipeline-v1", answer.text
