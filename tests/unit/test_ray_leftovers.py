"""What outlives a local Ray's shutdown is found and ended (ground/ray_leftovers.py), on real processes: one
that ignores SIGTERM, as Ray's orphaned agents did (issue 67), is killed after the grace; one named for this driver's
Ray session is found wherever its parent is."""

from __future__ import annotations

import os
import subprocess
import sys

from ground import ray_leftovers

DEAF = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"


def test_a_process_deaf_to_sigterm_is_killed_after_the_grace_and_a_gone_one_is_left_alone():
    proc = subprocess.Popen([sys.executable, "-c", DEAF, f"/tmp/ray/session_2026-01-01_00-00-00_1_{os.getpid()}/x"])
    try:
        found = ray_leftovers.ray_processes()
        assert proc.pid in found  # by its session directory (and under this process)
        assert ray_leftovers.reap({proc.pid: found[proc.pid]}, grace_s=0.2) == [proc.pid]
        assert proc.wait(10) == -9
        assert ray_leftovers.reap({proc.pid: found[proc.pid]}, grace_s=0.2) == []  # gone: nothing to kill
    finally:
        proc.kill()


def test_another_drivers_session_is_not_this_ones():
    other = os.getpid() + 1
    proc = subprocess.Popen([sys.executable, "-c", DEAF, f"/tmp/ray/session_2026-01-01_00-00-00_1_{other}/x"])
    try:
        assert proc.pid not in ray_leftovers.ray_processes()  # a child, but neither Ray's nor this session's
    finally:
        proc.kill()
        proc.wait(10)
