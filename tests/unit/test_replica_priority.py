"""Archive decoding runs below the online threads, also inside a Ray worker (which starts at niceness 15)."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from serve.replica import _lower_thread_priority

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _pool_niceness(born_at: int) -> tuple[int, int]:
    """(a plain pool thread's niceness, an archive decode thread's), both started by a thread at `born_at`."""
    out: dict[str, int] = {}

    def creator() -> None:  # like a Ray worker's thread: niceness raised before the pools start their threads
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), born_at)
        with ThreadPoolExecutor(1) as online, ThreadPoolExecutor(1, initializer=_lower_thread_priority) as bulk:
            out["online"] = online.submit(_niceness).result()
            out["bulk"] = bulk.submit(_niceness).result()

    t = threading.Thread(target=creator)
    t.start()
    t.join()
    return out["online"], out["bulk"]


@pytest.mark.parametrize("born_at", [0, 15])
def test_archive_decode_threads_run_below_the_online_ones(born_at):
    start = max(born_at, _niceness())  # raising priority needs privileges: never below where this test runs
    if start >= 19:
        pytest.skip("this test runs at niceness 19 already: no lower priority is left to give")
    online, bulk = _pool_niceness(start)
    assert online == start
    assert bulk > online, f"archive decode at niceness {bulk}, online threads at {online}"
    assert bulk == min(19, online + 10)
