"""Online re-identification as a user runs it (docs/guide/individuals.md, "Online"): tables with a finished
`trapline identify` run, a store with a detector and an identifier, and `trapline serve --config FILE` whose model
has an `identify` route and records into those tables. Real HTTP, its own Ray, one hop, Ctrl-C at the end (the
separate ingress: tests/integration/test_serve_identify.py).

The detector is a real ONNX graph whose answer is one `zebra` box (tests/fixtures/reid_tables.py `zebra_detector`):
each picture puts a coat (tests/fixtures/reid_scenes.py) in that box, so what is identified is the coat alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import yaml

from serve.local import free_port
from serve.polling import wait_until
from tests.fixtures.reid_tables import identified_site, identify_online

pytestmark = pytest.mark.ray

API = {"Authorization": "Bearer e2e-api-token"}


def test_trapline_serve_answers_which_individual_and_a_recorded_upload_joins_the_gallery(tmp_path):
    store_root = str(tmp_path / "store")
    tables, known = identified_site(tmp_path, store_root, str(tmp_path / "cache"))
    assert len(set(known.values())) == 4

    port = free_port()
    config = {"store": store_root, "api_token_env": "TRAPLINE_API_TOKEN", "http": {"port": port},
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

        assert identify_online(f"http://127.0.0.1:{port}", API, known) == {"matched": 5, "new": 1}

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
