"""The replica's two-lane batcher (serve/batcher.py), driven on a plain asyncio loop."""

from __future__ import annotations

import asyncio

import pytest

from serve.batcher import PriorityBatcher


class Recorder:
    """A batch runner that records every batch and takes `cost_s` per batch."""

    def __init__(self, cost_s: float = 0.05) -> None:
        self.batches: list[list[str]] = []
        self.cost_s = cost_s

    async def __call__(self, items: list[str]) -> list[str | BaseException]:
        self.batches.append(list(items))
        await asyncio.sleep(self.cost_s)
        return [ValueError(f"bad {x}") if x.startswith("bad") else x.upper() for x in items]


def run(coro):
    return asyncio.run(coro)


def test_online_requests_overtake_archive_images_queued_before_them():
    async def go():
        rec = Recorder()
        b = PriorityBatcher(rec, wait_s=lambda: 0.0, max_batch_size=4, bulk_max_batch_size=2)
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

    async def runner(items):
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
    async def go():
        rec = Recorder(cost_s=0.0)
        b = PriorityBatcher(rec, wait_s=lambda: 5.0, max_batch_size=3)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tasks = [asyncio.create_task(b.submit(f"x{i}")) for i in range(3)]
        await asyncio.gather(*tasks)
        return rec.batches, loop.time() - t0

    batches, elapsed = run(go())
    assert batches == [["x0", "x1", "x2"]] and elapsed < 2.0


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
