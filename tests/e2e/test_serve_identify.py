"""Online re-identification as a user runs it (docs/guide/individuals.md, "Online"): tables with a finished
`trapline identify` run, a store with a detector and an identifier, and `trapline serve --config FILE` whose model
has an `identify` route and records into those tables. Real HTTP, its own Ray, Ctrl-C at the end.

The detector is a real ONNX graph whose answer is one `zebra` box (tests/fixtures/onnx_models.py `constant_model`):
each picture puts a coat (benchmarks/reid_scenes.py) in that box, so what is identified is the coat alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import cv2
import httpx
import numpy as np
import pytest
import yaml

from batch.identify.run import run_identify
from benchmarks.reid_scenes import sightings
from model_store import ModelStore
from model_store.tables.identities import SIGHTINGS, read_result
from serve.local import free_port, wait_until
from tests.fixtures.onnx_models import constant_model, fixture_config
from tests.fixtures.reid_tables import write_identity_tables

pytestmark = pytest.mark.ray

W, H = 480, 360  # the pictures' size, as the tables' own (tests/fixtures/reid_tables.py)
BOX = (120, 105, 360, 255)  # where the detector's one box lands on a W x H picture (240 x 150)
# ... in its 320-px letterboxed input (scale 2/3, 40 px of padding above): centre (160, 160), 160 x 100
ZEBRA = np.array([[160.0], [160.0], [160.0], [100.0], [0.9]], dtype=np.float32)
API = {"Authorization": "Bearer e2e-api-token"}


def picture(snip: np.ndarray) -> bytes:
    """A JPEG of the coat in the detector's box on a plain field."""
    canvas = np.full((H, W, 3), (90, 110, 70), np.uint8)
    x0, y0, x1, y1 = BOX
    canvas[y0:y1, x0:x1] = cv2.resize(snip, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return jpeg.tobytes()


def individual(body: dict) -> dict:
    [det] = body["detections"]
    assert det["label"] == "zebra", body
    return det["individual"]


def test_trapline_serve_answers_which_individual_and_a_recorded_upload_joins_the_gallery(tmp_path):
    tables, truth = write_identity_tables(tmp_path, individuals=4, views=3)
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(constant_model(ZEBRA, tmp_path / "zebra.onnx"), "trapcam", "1",
                  fixture_config("yolov8", labels=["zebra"]))
    store.promote("trapcam:1")
    store.publish(None, "coats", "1", {"backend": "keypoints", "applies_to": ["zebra"]})
    store.promote("coats:1")
    run_identify(tables, "coats@production", store.root)
    by_uri = {t["uri"]: t["individual"] for t in truth}
    known = {by_uri[r.uri]: r.individual_id for r in read_result(tables, SIGHTINGS).itertuples()}
    assert len(set(known.values())) == 4

    port = free_port()
    config = {"store": store.root, "api_token_env": "TRAPLINE_API_TOKEN", "http": {"port": port},
              "models": [{"name": "trapcam", "num_cpus": 0.5,
                          "identify": {"identifier": "coats@production", "threshold": 0.5}}],
              "record": {"archive": str(tmp_path / "uploads"), "tables": tables, "flush_interval_s": 1}}
    (tmp_path / "trapline.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"TRAPLINE_API_TOKEN": "e2e-api-token"}
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
        url = f"http://127.0.0.1:{port}"

        def detect(data: bytes) -> dict:
            r = httpx.post(f"{url}/v1/detect", content=data, headers=API, timeout=60)
            assert r.status_code == 200, r.text
            return r.json()

        # a view of each known animal the gallery has never seen: matched, to the individual the run found
        matched = []
        for view in sightings(range(4), 1, seed=0, first_view=3, hard=0.6):
            body = detect(picture(view.snip))
            ind = individual(body)
            assert body["timing_ms"]["identify"] > 0
            matched.append((ind["decision"], ind["id"] == known[f"true{view.individual}"]))
        assert matched == [("matched", True)] * 4, matched

        # an animal the gallery has never seen: new, with a provisional id
        first, second = sightings([9], 2, seed=0, hard=0.6)
        unseen = individual(detect(picture(first.snip)))
        assert unseen["decision"] == "new" and unseen["id"].startswith("ind-new-"), unseen

        # recorded, its sighting joins the gallery: the animal's next picture is matched to it
        r = httpx.post(f"{url}/v1/images", params={"camera": "cam7"}, content=picture(first.snip), headers=API,
                       timeout=60)
        assert r.status_code == 201, r.text
        recorded = individual(r.json()["answer"])
        assert recorded["decision"] == "new" and recorded["id"] == unseen["id"], recorded
        again = individual(detect(picture(second.snip)))
        assert again["decision"] == "matched" and again["id"] == unseen["id"], again

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
