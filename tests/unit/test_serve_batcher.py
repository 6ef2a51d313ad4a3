"""The replica's two-lane batcher (serve/batcher.py), driven on a plain asyncio loop."""

from __future__ import annotations

import asyncio

import pytest

from model_store import Interrupt, RunInterruptedError
from serve.batcher import PriorityBatcher


class Recorder:
    """A batch runner that records every batch and takes `cost_s` per batch."""

    def __init__(self, cost_s: float = 0.05) -> None:
        self.batches: list[list[str]] = []
        self.cost_s = cost_s
        self.preempted = 0  # what the batcher's on_preempt reported

    def batcher(self, **options) -> PriorityBatcher:
        """A batcher over this runner: no batch wait, batches of 4 (bulk: 2), preemptions counted here."""
        def count() -> None:
            self.preempted += 1

        return PriorityBatcher(self, **{"wait_s": lambda: 0.0, "max_batch_size": 4, "bulk_max_batch_size": 2,
                                        "on_preempt": count, **options})

    async def __call__(self, items: list[str], interrupt: Interrupt | None = None) -> list[str | BaseException]:
        self.batches.append(list(items))
        await asyncio.sleep(self.cost_s)
        return [ValueError(f"bad {x}") if x.startswith("bad") else x.upper() for x in items]


class Preemptible(Recorder):
    """A runner whose passes stop when their interrupt is requested (as ONNX Runtime's do); archive
    ("b...") batches take `cost_s`, online ones 0.02 s."""

    def __init__(self, cost_s: float = 0.5) -> None:
        super().__init__(cost_s)
        self.interrupts: list[Interrupt | None] = []
        self.stopped: list[list[str]] = []

    async def __call__(self, items, interrupt=None):
        self.batches.append(list(items))
        self.interrupts.append(interrupt)
        deadline = asyncio.get_running_loop().time() + (self.cost_s if items[0].startswith("b") else 0.02)
        while asyncio.get_running_loop().time() < deadline:
            if interrupt is not None and interrupt.requested:
                self.stopped.append(list(items))
                return [RunInterruptedError("stopped")] * len(items)
            await asyncio.sleep(0.005)
        return [x.upper() for x in items]


def run(coro):
    return asyncio.run(coro)


def test_online_requests_overtake_archive_images_queued_before_them():
    async def go():
        rec = Recorder()
        b = rec.batcher()
        first = asyncio.create_task(b.submit("b0", "bulk"))  # starts a batch at once
        await asyncio.sleep(0.01)
        bulk = [asyncio.create_task(b.submit(f"b{i}", "bulk")) for i in range(1, 7)]
        await asyncio.sleep(0.01)
        online = [asyncio.create_task(b.submit(f"o{i}", "online")) for i in range(3)]
        results = await asyncio.gather(first, *bulk, *online)
        return rec.batches, results

    batches, results = run(go())
    assert results == ["B0", "B1", "B2", "B3", "B4", "B5", "B6", "O0", "O1", "O2"]
    assert batches[0] == ["b0"]
    assert batches[1] == ["o0", "o1", "o2"]  # the whole online lane, ahead of six waiting bulk images
    assert all(len(x) <= 2 for x in batches[2:])
    assert [i for x in batches[2:] for i in x] == [f"b{i}" for i in range(1, 7)]
    assert not any({i[0] for i in x} == {"b", "o"} for x in batches)  # lanes never share a batch


def test_errors_reach_only_their_own_caller():
    async def go():
        b = PriorityBatcher(Recorder(), wait_s=lambda: 0.02, max_batch_size=8)
        return await asyncio.gather(b.submit("ok1"), b.submit("bad2"), b.submit("ok3"), return_exceptions=True)

    ok1, bad, ok3 = run(go())
    assert (ok1, ok3) == ("OK1", "OK3") and isinstance(bad, ValueError) and str(bad) == "bad bad2"


def test_a_runner_that_fails_as_a_whole_fails_that_batch_only():
    calls = []

    async def runner(items, interrupt=None):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("device lost")
        return [x for x in items]

    async def go():
        b = PriorityBatcher(runner, wait_s=lambda: 0.0, max_batch_size=8)
        first = await asyncio.gather(b.submit("a"), return_exceptions=True)
        second = await b.submit("b")
        return first, second

    (first,), second = run(go())
    assert isinstance(first, RuntimeError) and second == "b"


def test_fixed_wait_fills_a_batch_and_a_full_batch_does_not_wait():
    wait_s = 60.0  # the batch's wait, long: only a batch that waited it out comes near it

    async def go():
        rec = Recorder(cost_s=0.0)
        b = PriorityBatcher(rec, wait_s=lambda: wait_s, max_batch_size=3)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tasks = [asyncio.create_task(b.submit(f"x{i}")) for i in range(3)]
        await asyncio.gather(*tasks)
        return rec.batches, loop.time() - t0

    batches, elapsed = run(go())
    # against the batcher's own setting, not the machine's speed: half the wait is more than any load adds
    assert batches == [["x0", "x1", "x2"]] and elapsed < wait_s / 2


def test_a_cancelled_request_is_dropped_before_it_runs():
    async def go():
        rec = Recorder(cost_s=0.05)
        b = PriorityBatcher(rec, wait_s=lambda: 0.0, max_batch_size=8)
        running = asyncio.create_task(b.submit("first"))
        await asyncio.sleep(0.01)
        gone = asyncio.create_task(b.submit("gone"))
        kept = asyncio.create_task(b.submit("kept"))
        await asyncio.sleep(0.005)
        gone.cancel()
        await asyncio.gather(running, kept)
        return rec.batches

    assert run(go()) == [["first"], ["kept"]]


def test_an_unknown_lane_is_refused():
    async def go():
        await PriorityBatcher(Recorder(), wait_s=lambda: 0.0).submit("x", "express")

    with pytest.raises(ValueError, match="lane must be one of"):
        run(go())


def test_an_online_request_preempts_the_running_bulk_batch_and_the_archive_images_run_again_in_order():
    async def go():
        rec = Preemptible(cost_s=0.5)
        b = rec.batcher()
        bulk = [asyncio.create_task(b.submit(f"b{i}", "bulk")) for i in range(4)]
        await asyncio.sleep(0.05)  # b0, b1 are running
        online = await b.submit("o0", "online")
        bulk_answered = sum(t.done() for t in bulk)
        return rec, online, bulk_answered, await asyncio.gather(*bulk)

    rec, online, bulk_answered, bulk = run(go())
    assert online == "O0" and bulk_answered == 0  # it did not wait out the bulk pass: no archive image was answered
    assert bulk == ["B0", "B1", "B2", "B3"]  # nothing lost, every caller answered once
    assert rec.stopped == [["b0", "b1"]] and rec.preempted == 1
    assert rec.batches == [["b0", "b1"], ["o0"], ["b0", "b1"], ["b2", "b3"]]  # back at the front, in order
    assert rec.interrupts[1] is None  # online batches are never preempted


def test_without_preemption_an_online_request_waits_for_the_bulk_batch():
    async def go():
        rec = Preemptible(cost_s=0.3)
        b = rec.batcher(preempt_bulk=False)
        bulk = asyncio.create_task(b.submit("b0", "bulk"))
        await asyncio.sleep(0.05)
        online = await b.submit("o0", "online")
        return rec, online, await bulk

    rec, online, bulk = run(go())
    assert (online, bulk) == ("O0", "B0")
    assert rec.stopped == [] and rec.interrupts == [None, None]
    assert rec.batches == [["b0"], ["o0"]]


def test_a_preempted_archive_image_whose_caller_left_is_not_run_again():
    async def go():
        rec = Preemptible(cost_s=0.3)
        b = rec.batcher()
        gone = asyncio.create_task(b.submit("b-gone", "bulk"))
        kept = asyncio.create_task(b.submit("b-kept", "bulk"))
        await asyncio.sleep(0.05)
        gone.cancel()
        await b.submit("o0", "online")
        return rec, await kept

    rec, kept = run(go())
    assert kept == "B-KEPT"
    assert rec.batches == [["b-gone", "b-kept"], ["o0"], ["b-kept"]]


def test_an_archive_batch_is_preempted_once_then_runs_to_the_end():
    async def go():
        rec = Preemptible(cost_s=0.3)
        b = rec.batcher()
        bulk = asyncio.create_task(b.submit("b0", "bulk"))
        await asyncio.sleep(0.05)
        await b.submit("o0", "online")  # stops b0's first pass
        await asyncio.sleep(0.05)  # b0 runs again ...
        await b.submit("o1", "online")  # ... and this one waits for it: steady online traffic cannot starve it
        return rec, await bulk

    rec, bulk = run(go())
    assert bulk == "B0" and rec.stopped == [["b0"]] and rec.preempted == 1
    assert rec.batches == [["b0"], ["o0"], ["b0"], ["o1"]]
    assert rec.interrupts[2] is None  # the second run of b0 could not be preempted


def test_a_preemption_counts_only_when_a_pass_really_stopped():
    async def go():
        rec = Recorder(cost_s=0.2)  # a runner that cannot stop (torch)
        b = rec.batcher()
        bulk = asyncio.create_task(b.submit("b0", "bulk"))
        await asyncio.sleep(0.05)
        return rec.preempted, await b.submit("o0", "online"), await bulk

    assert run(go()) == (0, "O0", "B0")


def test_cancelling_items_that_hold_arrays_drops_them():
    import numpy as np

    async def go():
        seen = []

        running = asyncio.Event()
        go_on = asyncio.Event()

        async def runner(items, interrupt=None):
            seen.append(len(items))
            running.set()
            await go_on.wait()  # the first batch runs until the test has queued and cancelled (no sleeps raced)
            return [float(x.sum()) for x in items]

        b = PriorityBatcher(runner, wait_s=lambda: 0.0, max_batch_size=8)
        first = asyncio.create_task(b.submit(np.ones(3)))
        await running.wait()
        queued = [asyncio.create_task(b.submit(np.ones(3) * k)) for k in (2, 3, 4)]
        for _ in range(3):  # each submit runs up to its wait: queued behind the running batch
            await asyncio.sleep(0)
        queued[2].cancel()  # compared with `in` / `remove`: must not compare the arrays
        go_on.set()
        results = await asyncio.gather(first, *queued[:2])
        return seen, results, b.waiting()

    seen, results, waiting = run(go())
    assert results == [3.0, 6.0, 9.0] and seen == [1, 2] and waiting == 0
