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
