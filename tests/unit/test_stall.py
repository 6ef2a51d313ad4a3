"""A run whose plan stops producing parts (a lost node whose actors cannot be placed again) fails with one line
after its stall timeout instead of waiting for ever; the plan's generator is closed however the loop ends."""

from __future__ import annotations

import threading
import time

import pytest

from batch.reprocess.dataset import _watched
from ground.errors import StalledError


class Plan:
    """Stands in for Ray Data's batch iterator: `parts` batches, then blocks (or ends), recording its close."""

    def __init__(self, parts: int, then_block: bool) -> None:
        self.parts, self.then_block, self.closed = parts, then_block, threading.Event()
        self.release = threading.Event()

    def __iter__(self):
        try:
            yield from range(self.parts)
            if self.then_block:
                self.release.wait(30)
        finally:
            self.closed.set()


def test_a_stuck_plan_fails_after_the_timeout_with_one_line():
    plan = Plan(2, then_block=True)
    got, t0 = [], time.monotonic()
    with pytest.raises(StalledError, match=r"no part committed for 0.5 s.*rerun resumes"):
        for part in _watched(iter(plan), 0.5):
            got.append(part)
    # not before its 0.5 s (a lower bound load only lengthens), and without waiting for the stuck call to return
    assert got == [0, 1] and time.monotonic() - t0 >= 0.5 * 0.8 and not plan.closed.is_set()
    plan.release.set()  # when the stuck call returns, the helper thread closes the plan
    assert plan.closed.wait(5)


def test_parts_flow_and_the_plan_is_closed_when_the_caller_stops_early():
    for timeout in (0, 5):
        plan = Plan(5, then_block=False)
        assert list(_watched(iter(plan), timeout)) == [0, 1, 2, 3, 4] and plan.closed.wait(5)
        plan = Plan(5, then_block=False)
        with pytest.raises(RuntimeError, match="lease lost"):
            for part in _watched(iter(plan), timeout):
                if part == 1:
                    raise RuntimeError("lease lost")
        assert plan.closed.wait(5), timeout


def test_an_error_in_the_plan_reaches_the_driver():
    def failing():
        yield 0
        raise ValueError("a write task failed")

    with pytest.raises(ValueError, match="a write task failed"):
        list(_watched(failing(), 5))
