"""The run lease on a local table and on a real S3-compatible server (moto): one holder, waits, stale takeover."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from model_store.tables.archive import open_location
from model_store.tables.lease import LeaseHeldError, LeaseLostError, RunLease


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
    released: list[float] = []
    threading.Timer(1.0, lambda: (released.append(time.monotonic()), first.release())).start()
    second = lease(out_url, "run-b").acquire(wait_s=30, poll_s=0.2)
    taken = time.monotonic()
    # it waited for the holder (not a time: the order of the release and the take, both seen in this run)
    assert released and released[0] <= taken
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
    # A ttl of 3 s leaves fourteen beats to be late before the lease would go stale (at 1.5 s the [s3] case failed
    # now and then in full suites on a loaded 2-core machine, where one moto round trip can take over 0.5 s).
    held = lease(out_url, "run-a", ttl_s=3.0, heartbeat_s=0.2).acquire()
    held.start_heartbeat()
    time.sleep(3.5)  # longer than the ttl: only the heartbeat keeps it fresh
    with pytest.raises(LeaseHeldError):
        lease(out_url, "run-b", ttl_s=3.0).acquire()
    held.release()


def test_a_dead_holder_on_this_host_is_stale_at_once(tmp_path):
    # A holder process that exits without releasing (as a SIGKILLed `trapline reprocess` would).
    code = ("from model_store.tables.lease import RunLease; from model_store.tables.archive import open_location; "
            f"RunLease(open_location({str(tmp_path / 'out')!r}), 'trapcam', '1', 'run-dead').acquire()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    lease(str(tmp_path / "out"), "run-b").acquire().release()  # no wait for the ttl


def test_runs_taking_over_a_stale_lease_at_once_give_it_to_exactly_one(out_url):
    lease(out_url, "run-dead", ttl_s=0.2).acquire()  # never beats, never released
    time.sleep(0.4)
    contenders = [lease(out_url, f"run-{i}", ttl_s=0.2) for i in range(6)]
    start, won, refused = threading.Barrier(len(contenders)), [], []

    def contend(one: RunLease) -> None:
        start.wait()
        try:
            won.append(one.acquire())
        except LeaseHeldError:
            refused.append(one)

    threads = [threading.Thread(target=contend, args=(c,)) for c in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # Some may see the winner's lease as stale too (its ttl is 0.2 s), but never two at the same moment:
    # the file names the last winner, and each earlier winner finds out at its next refresh.
    storage = contenders[0].storage
    holder = json.loads(storage.fs.cat_file(storage.path(*contenders[0].parts)))["run_id"]
    assert len(won) + len(refused) == len(contenders) and won
    assert [w.holder.run_id for w in won if w.refresh()] == [holder]


def test_a_holder_that_stalled_past_the_ttl_loses_the_lease_and_stops(out_url):
    stalled = lease(out_url, "run-a", ttl_s=0.3).acquire()  # its heartbeat thread never ran (a long GC, a frozen VM)
    time.sleep(0.5)
    taker = lease(out_url, "run-b", ttl_s=0.3).acquire()
    stalled.check()  # it has not found out yet
    assert stalled.refresh() is False and stalled.lost.run_id == "run-b"
    with pytest.raises(LeaseLostError, match="run run-b"):
        stalled.check()
    stalled.release()  # must not delete the new holder's lease
    storage = taker.storage
    assert json.loads(storage.fs.cat_file(storage.path(*taker.parts)))["run_id"] == "run-b"
    with pytest.raises(LeaseHeldError):
        lease(out_url, "run-c").acquire()
    taker.release()


def test_a_lease_taken_after_a_long_wait_is_fresh_not_stale(out_url):
    first = lease(out_url, "run-a", ttl_s=60, heartbeat_s=0.1).acquire()
    first.start_heartbeat()  # fresh all along, even by a 2 s ttl
    # A 2 s ttl, not less: on a loaded 2-core box a moto round trip alone took over 0.5 s.
    released: list[float] = []
    timer = threading.Timer(3.0, lambda: (released.append(time.monotonic()), first.release()))
    t0 = time.monotonic()
    timer.start()
    waiter = lease(out_url, "run-b", ttl_s=2.0).acquire(wait_s=30, poll_s=0.1)
    taken = time.monotonic()
    timer.join()
    # it took the lease after the release, which the timer makes at least 3 s in: longer than its own 2 s ttl (a
    # lower bound a busy machine can only lengthen)
    assert released and t0 + waiter.ttl_s < released[0] <= taken
    # its lease was written with the take's heartbeat, not the wait's start: by a ttl as long as the wait (3 s or
    # more, measured in this run) it is fresh, where a heartbeat from the wait's start would be older than that
    with pytest.raises(LeaseHeldError):
        lease(out_url, "run-c", ttl_s=taken - t0).acquire()
    assert waiter.refresh() and waiter.lost is None
    waiter.release()
