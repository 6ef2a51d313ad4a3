"""The run lease on a local table and on a real S3-compatible server (moto): one holder, waits, stale takeover."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from batch.archive import open_location
from batch.lease import LeaseHeldError, RunLease


def lease(url: str, run_id: str, **kw) -> RunLease:
    return RunLease(open_location(url), "trapcam", "1", run_id, **kw)


@pytest.fixture(params=["local", "s3"])
def out_url(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    return request.getfixturevalue("s3_bucket") + "/tables"


def test_one_holder_at_a_time_and_the_refusal_names_it(out_url):
    first = lease(out_url, "run-a").acquire()
    with pytest.raises(LeaseHeldError) as err:
        lease(out_url, "run-b").acquire()
    msg = str(err.value)
    assert "another run holds" in msg and "trapcam:1" in msg and "run run-a (pid" in msg and "--wait" in msg
    first.release()
    lease(out_url, "run-b").acquire().release()  # free again once released


def test_a_waiting_run_gets_the_lease_when_the_holder_finishes(out_url):
    first = lease(out_url, "run-a").acquire()
    threading.Timer(1.0, first.release).start()
    t0 = time.monotonic()
    second = lease(out_url, "run-b").acquire(wait_s=30, poll_s=0.2)
    assert 0.8 < time.monotonic() - t0 < 20
    second.release()


def test_a_lease_without_heartbeat_goes_stale_and_is_taken_over(out_url):
    lease(out_url, "run-a", ttl_s=0.5).acquire()  # never released, never beats: like a SIGKILLed driver on another host
    with pytest.raises(LeaseHeldError):
        lease(out_url, "run-b", ttl_s=60).acquire()
    time.sleep(0.7)
    taken = lease(out_url, "run-b", ttl_s=0.5).acquire()
    storage = taken.storage
    assert json.loads(storage.fs.cat_file(storage.path(*taken.parts)))["run_id"] == "run-b"
    taken.release()


def test_the_heartbeat_keeps_a_long_run_alive(out_url):
    held = lease(out_url, "run-a", ttl_s=3.0, heartbeat_s=0.2).acquire()
    held.start_heartbeat()
    time.sleep(4.0)  # longer than the ttl: only the heartbeat keeps it fresh
    with pytest.raises(LeaseHeldError):
        lease(out_url, "run-b", ttl_s=3.0).acquire()
    held.release()


def test_a_dead_holder_on_this_host_is_stale_at_once(tmp_path):
    # A holder process that exits without releasing (as a SIGKILLed `trapline reprocess` would).
    code = ("from batch.lease import RunLease; from batch.archive import open_location; "
            f"RunLease(open_location({str(tmp_path / 'out')!r}), 'trapcam', '1', 'run-dead').acquire()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    lease(str(tmp_path / "out"), "run-b").acquire().release()  # no wait for the ttl
