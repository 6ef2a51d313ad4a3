"""The record `trapline serve` leaves for later commands: private, removed on exit, and never trusted when its
process is gone (a stale record is dropped at once, not dialled)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

from batch.reprocess.options import ReprocessOptions
from batch.reprocess.via import Slots, find_service, weigh
from ground import service_records as services


def test_a_record_lives_as_long_as_its_service_and_is_the_users_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAPLINE_STATE_DIR", str(tmp_path / "state"))
    with services.registered("http://127.0.0.1:8000", "trapline", "127.0.0.1:6379") as record:
        assert stat.S_IMODE(record.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(record.path.parent.stat().st_mode) & 0o077 == 0
        assert services.live() == [record]
        assert services.live(lambda r: False) == []  # a probe that fails: skipped, not deleted
        assert record.path.exists()
    assert not record.path.exists() and services.live() == []


def test_a_record_of_a_dead_process_is_dropped_without_dialling_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAPLINE_STATE_DIR", str(tmp_path / "state"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    d = services.services_dir()
    d.mkdir(parents=True)
    stale = d / f"{dead.pid}.json"
    stale.write_text(json.dumps({"pid": dead.pid, "url": "http://127.0.0.1:1", "app_name": "trapline",
                                 "ray_address": "127.0.0.1:1", "started_at": time.time()}))
    (d / "garbage.json").write_text("{not json")
    probed = []
    assert services.live(lambda r: probed.append(r) or True) == [] and probed == []
    assert not stale.exists()


def test_reprocess_looks_for_a_service_only_when_it_may_use_one(tmp_path, monkeypatch):
    """auto on this machine with no cluster named: a live record whose Ray answers; never with --via actors or
    --address / $RAY_ADDRESS (the named cluster's own Serve app is checked instead), and a record whose Ray does
    not answer is passed over within seconds."""
    monkeypatch.setenv("TRAPLINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # A process connected to a Ray already (the suite's session cluster) never looks; this test is about one that is not
    monkeypatch.setattr("ray.is_initialized", lambda: False)
    opts = ReprocessOptions(archive="a", out="o", model="m:1")
    from batch.reprocess import via
    from ground.ray_runtime import RayUnreachableError

    probes: list[tuple[str, float, str]] = []

    def probe(address, timeout_s):
        try:
            return real_probe(address, timeout_s=timeout_s)
        except RayUnreachableError as exc:
            probes.append((address, timeout_s, str(exc)))
            raise

    real_probe = via.check_reachable
    monkeypatch.setattr("batch.reprocess.via.check_reachable", probe)
    with services.registered("http://127.0.0.1:9", "trapline", "127.0.0.1:9"):  # this process: alive, no Ray
        assert find_service(opts, print) is None
        # passed over within seconds: one probe, bounded by a timeout of seconds, refused by the port at once
        [(address, timeout_s, why)] = probes
        assert address == "127.0.0.1:9" and timeout_s <= 3 and "Connection refused" in why
        assert find_service(opts.model_copy(update={"via": "actors"}), print) is None
    monkeypatch.setattr("batch.reprocess.via.check_reachable", lambda address, timeout_s=3.0: True)
    with services.registered("http://127.0.0.1:9", "trapline", "127.0.0.1:9") as record:
        assert find_service(opts, print) == record
        assert find_service(opts.model_copy(update={"address": "10.0.0.1:6379"}), print) is None
        monkeypatch.setenv("RAY_ADDRESS", "auto")
        assert find_service(opts, print) is None
    assert os.environ["TRAPLINE_STATE_DIR"].endswith("state")


def test_auto_takes_the_service_only_when_it_is_not_slower_than_a_pool_of_the_jobs_own():
    """The deployment runs as many images at once as the pool would: taken, whatever the job's size. Fewer: taken
    for a job its head start covers (the pool first starts and loads), not for an archive, and the line gives
    both sides' figures."""
    two_replicas, one_replica, pool = Slots(2, 1, "replica"), Slots(1, 1, "replica"), Slots(2, 1, "actor")
    fast, why = weigh(100_000, two_replicas, pool, image_s=0.28)
    assert fast and why.startswith("2 replicas x 1 thread, as many as a pool of its own would run (2 actors x 1 ")
    fast, why = weigh(10, one_replica, pool, image_s=0.28)
    assert fast and "1 replica x 1 thread, fewer than a pool of its own (2 actors x 1 thread)" in why
    fast, why = weigh(1000, one_replica, pool, image_s=0.28)
    assert not fast and why == ("it runs 1 replica x 1 thread, a pool of its own 2 actors x 1 thread: ~150 s "
                                "against ~280 s for 1000 image(s)")
    # a replica of two threads does the work of two single-thread actors: not slower
    assert weigh(1000, Slots(1, 2, "replica"), pool, image_s=0.16)[0]
