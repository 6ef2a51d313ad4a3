"""Joining a Ray cluster happens only when an address is given, and an address that does not answer
fails within seconds with one line (Ray itself keeps retrying for minutes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port
from tests.fixtures.images import encode, gradient

REPO = Path(__file__).resolve().parents[2]
# Interpreter start and imports included; the probe itself gives up after 3 s at most.
FAIL_FAST_S = 20.0


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    base = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "trapline.cli", *args], cwd=REPO, env=base | (env or {}),
                          capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - t0


def test_serve_with_an_unreachable_address_fails_fast_with_one_line(local_store):
    local_store.promote("fixture:1")
    address = f"127.0.0.1:{free_port()}"
    proc, took = run_cli("serve", "--address", address, "--store", local_store.root, "--model", "fixture")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(f"error: cannot reach the Ray cluster at {address}: ")
    assert took < FAIL_FAST_S and proc.stdout == ""


def test_reprocess_with_an_unreachable_ray_address_fails_fast_with_one_line(local_store, tmp_path):
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "a.jpg").write_bytes(encode(gradient(64, 48)))
    address = f"127.0.0.1:{free_port()}"
    proc, took = run_cli("reprocess", "--archive", str(tmp_path / "archive"), "--out", str(tmp_path / "out"),
                         "--model", "fixture:1", "--store", local_store.root, env={"RAY_ADDRESS": address})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip() == proc.stderr.strip().splitlines()[0]
    assert proc.stderr.startswith(f"error: cannot reach the Ray cluster at {address}: ")
    assert took < FAIL_FAST_S


CANCEL_SCRIPT = """
import signal, sys, time
sys.path.insert(0, sys.argv[1])
import ray
from ground.ray_runtime import ensure_ray, shutdown_ray

ensure_ray(num_cpus=1)

@ray.remote(num_cpus=0.1)
def busy():
    for _ in range(600):
        time.sleep(0.1)
    return "finished"

ref = busy.remote()
time.sleep(3)
ray.cancel(ref)
try:
    print("result", ray.get(ref, timeout=15))
except ray.exceptions.TaskCancelledError:
    print("cancelled")
except ray.exceptions.GetTimeoutError:
    print("still running after 15 s")
print("driver ignores SIGINT:", signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
shutdown_ray()
"""


def test_a_driver_started_with_sigint_ignored_can_still_cancel_its_tasks(tmp_path):
    # What a script's `trapline reprocess ... &` gets: SIGINT ignored, inherited by the Ray it starts. Ray
    # cancels a running task (a failed job's part writes) by interrupting the worker, which must be possible.
    script = tmp_path / "cancel.py"
    script.write_text(CANCEL_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(["bash", "-c", 'trap "" INT; exec "$0" "$@"', sys.executable, str(script), str(REPO)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cancelled" in proc.stdout.splitlines(), proc.stdout + proc.stderr[-2000:]
    assert "driver ignores SIGINT: True" in proc.stdout  # its own disposition stays the caller's
