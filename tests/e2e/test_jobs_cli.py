"""`trapline serve` on this machine runs jobs too: its local Ray has the job server, the working directory is an
allowed root, and `trapline jobs` submits, follows and lists a reprocess with relative paths, as a user types them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from model_store import ModelStore
from serve.local import free_port
from serve.polling import wait_until
from tests.fixtures.archive import PATH_PATTERN, brightness_config, brightness_model, build_archive, write_local

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-jobs-admin-token"


def test_trapline_jobs_against_trapline_serve(tmp_path):
    store = ModelStore(str(tmp_path / "models"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    store.promote("trapcam:1")
    spec = build_archive()
    write_local(spec, tmp_path / "archive")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {
        "TRAPLINE_ADMIN_TOKEN": TOKEN, "TRAPLINE_URL": f"http://127.0.0.1:{port}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "trapline.cli", "serve", "--store", "models", "--port",
                                 str(port), "--num-cpus", "2"], stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=tmp_path, start_new_session=True)

    def jobs(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "trapline.cli", "jobs", *argv], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    try:
        def up() -> bool:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            return "Ctrl-C to stop" in log_path.read_text()

        wait_until(up, 240, "trapline serve to come up", interval_s=0.5)
        t0 = time.perf_counter()
        sub = jobs("submit", "reprocess", "--archive", "archive", "--out", "detections", "--model", "trapcam",
                   "--path-pattern", PATH_PATTERN, "--rows-per-file", "5", "--num-cpus", "0.25",
                   "--name", "site A, spring")
        assert sub.returncode == 0, sub.stderr
        job_id = sub.stdout.split()[3]

        # `jobs show` while it runs, once; then the service's own answer is polled (each `trapline jobs` start-up
        # takes seconds of the two CPUs the job runs on).
        running = jobs("show", job_id)
        assert running.returncode == 0 and f"job {job_id}: reprocess " in running.stdout, running.stderr

        def ended() -> bool:
            status = httpx.get(f"http://127.0.0.1:{port}/v1/jobs/{job_id}", timeout=30, trust_env=False,
                               headers={"Authorization": f"Bearer {TOKEN}"}).json()["status"]
            return status in ("succeeded", "failed", "stopped")

        wait_until(ended, 240, f"job {job_id} to end", interval_s=0.5)
        wall = time.perf_counter() - t0
        shown = jobs("show", job_id).stdout
        assert f"job {job_id}: reprocess succeeded" in shown, jobs("logs", job_id).stdout
        n = len(spec.images)
        assert f"archive = {tmp_path / 'archive'}" in shown and f"progress {n}/{n}" in shown
        print(f"reprocess of {len(spec.images)} images submitted over HTTP: succeeded {wall:.1f} s after submit")
        assert (tmp_path / "detections" / "_runs").is_dir()
        assert "by http): site A, spring" in shown.splitlines()[0]
        listed = jobs("list", "--status", "succeeded")
        # A list of requests: submitted, ended, how many images, the name.
        [row] = [line for line in listed.stdout.splitlines() if line.startswith(job_id)]
        assert row.endswith(f" {n}/{n}  site A, spring") and row.count(":") >= 4, listed.stdout
        logs = jobs("logs", job_id, "--tail", "3")
        assert logs.returncode == 0 and len(logs.stdout.splitlines()) <= 3
        outside = jobs("submit", "events", "--tables", "/etc")
        assert outside.returncode == 2 and "outside the allowed roots" in outside.stderr
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # only the process group this test started
                proc.wait(30)
