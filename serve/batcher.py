"""A dynamic batcher with two lanes: online requests first, archive (bulk) images after.

Why not `@serve.batch`: its queue is one FIFO, so a backfill sent through the deployment puts
hundreds of archive images ahead of every online request. Here each batch is formed from the
online lane first (up to `max_batch_size`); only when no online request waits is a batch of
bulk items formed (up to `bulk_max_batch_size`, so an online request that arrives meanwhile
waits for at most one small bulk batch), the scheme Triton's dynamic batcher calls priority
levels. Online and bulk items never share a batch. One batch runs at a time (the forward pass
has one thread anyway); the next one forms while it runs.

Preemption (`preempt_bulk`): an online request that arrives while a bulk batch runs need not wait
for it. The batcher requests that batch's `Interrupt` (ONNX Runtime stops the forward pass within
a few ms); items the runner reports as `RunInterruptedError` go back to the front of the bulk lane, in
order, and run again once no online request waits. A batch holding an item that was stopped before
is not preempted again, so under steady online traffic the archive still moves (an online request
then waits for at most that one batch, as without preemption). The cost is the bulk work thrown
away: each archive image is run at most twice. `on_preempt` hears of each pass that really stopped.

Lifecycle: created once per replica; `submit` from any request coroutine on the replica's
event loop; the batching loop starts with the first submit and lives as long as the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from model_store import Interrupt, RunInterruptedError

Item = TypeVar("Item")
Result = TypeVar("Result")
Lane = Literal["online", "bulk"]
LANES: tuple[Lane, ...] = ("online", "bulk")


@dataclass(eq=False)  # identity: items may hold arrays, and `in` / `remove` on a lane must not compare them
class _Waiting(Generic[Item, Result]):
    item: Item
    future: asyncio.Future
    lane: Lane
    enqueued: float
    stopped: bool = False  # its batch was preempted once: it now runs to the end


class PriorityBatcher(Generic[Item, Result]):
    """Groups submitted items into batches for `run_batch`; see the module docstring for the policy.

    `run_batch(items, interrupt)` returns one result per item (exceptions are per-item results, raised
    to that item's caller; an `RunInterruptedError` result, or an `RunInterruptedError` raised for the whole batch,
    puts the item back in its lane). `interrupt` is an `Interrupt` for a bulk batch that may be
    preempted, else None. `wait_s()` is how long a batch opened now may wait for company
    (read when a batch opens; a full batch never waits).
    """

    def __init__(self, run_batch: Callable[[list[Item], Interrupt | None], Awaitable[Sequence[Result | BaseException]]],
                 wait_s: Callable[[], float], max_batch_size: int = 8, bulk_max_batch_size: int | None = None,
                 preempt_bulk: bool = True, on_preempt: Callable[[], None] | None = None) -> None:
        self._run_batch = run_batch
        self._wait_s = wait_s
        self.max_batch_size = max_batch_size
        self.bulk_max_batch_size = bulk_max_batch_size
        self.preempt_bulk = preempt_bulk
        self._on_preempt = on_preempt  # told of each bulk batch stopped for an online request
        self._lanes: dict[Lane, deque[_Waiting]] = {lane: deque() for lane in LANES}
        self._arrived: asyncio.Event | None = None
        self._loop_task: asyncio.Task | None = None
        self._running: Interrupt | None = None  # the running bulk batch's, while it may be preempted

    def configure(self, max_batch_size: int, bulk_max_batch_size: int | None, preempt_bulk: bool = True) -> None:
        self.max_batch_size = max_batch_size
        self.bulk_max_batch_size = bulk_max_batch_size
        self.preempt_bulk = preempt_bulk

    def waiting(self, lane: Lane | None = None) -> int:
        """Items queued and not yet in a running batch (in one lane, or both)."""
        return sum(len(self._lanes[x]) for x in ((lane,) if lane else LANES))

    async def submit(self, item: Item, lane: Lane = "online") -> Result:
        """Queue `item` in `lane` and wait for its result."""
        if lane not in self._lanes:
            raise ValueError(f"lane must be one of {LANES}, got {lane!r}")
        loop = asyncio.get_running_loop()
        if self._arrived is None:
            self._arrived = asyncio.Event()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = loop.create_task(self._loop())
        waiting = _Waiting(item, loop.create_future(), lane, time.perf_counter())
        self._lanes[lane].append(waiting)
        self._arrived.set()
        if lane == "online" and self._running is not None:
            self._running.request()  # the bulk batch in flight stops; its items run again after this one
            self._running = None
        try:
            return await waiting.future
        except asyncio.CancelledError:  # the caller went away: drop its item if it has not run yet
            if waiting in self._lanes[lane]:
                self._lanes[lane].remove(waiting)
            raise

    def _limit(self, lane: Lane) -> int:
        if lane == "bulk" and self.bulk_max_batch_size:
            return min(self.bulk_max_batch_size, self.max_batch_size)
        return self.max_batch_size

    def _lane_now(self) -> Lane | None:
        return next((lane for lane in LANES if self._lanes[lane]), None)

    async def _fill(self, lane: Lane) -> None:
        """Wait (at most wait_s) for the lane to fill a batch; an online arrival ends a bulk wait."""
        deadline = time.perf_counter() + max(0.0, self._wait_s())
        while len(self._lanes[lane]) < self._limit(lane):
            if lane == "bulk" and self._lanes["online"]:
                return
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    async def _loop(self) -> None:
        while True:
            lane = self._lane_now()
            if lane is None:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            await self._fill(lane)
            lane = self._lane_now() or lane  # an online request that came during a bulk wait goes first
            queue = self._lanes[lane]
            batch = [queue.popleft() for _ in range(min(len(queue), self._limit(lane)))]
            if not batch:
                continue
            # A batch with an item stopped before is not preempted again, so the archive always moves on.
            preemptible = lane == "bulk" and self.preempt_bulk and not any(w.stopped for w in batch)
            interrupt = Interrupt() if preemptible else None
            self._running = interrupt
            try:
                results = await self._run_batch([w.item for w in batch], interrupt)
            except Exception as exc:  # noqa: BLE001 - the batch runner failed as a whole: every caller hears it
                results = [exc] * len(batch)
            finally:
                self._running = None
            stopped = [w for w, r in zip(batch, results, strict=True) if isinstance(r, RunInterruptedError)]
            if stopped and self._on_preempt is not None:
                self._on_preempt()  # counted when a pass really stopped, not when it was asked to
            again = [w for w in stopped if not w.future.done()]
            for w in again:
                w.stopped = True
            self._lanes[lane].extendleft(reversed(again))  # at the front, in their order
            for waiting, result in zip(batch, results, strict=True):
                if waiting.future.done() or isinstance(result, RunInterruptedError):  # cancelled, or queued again
                    continue
                if isinstance(result, BaseException):
                    waiting.future.set_exception(result)
                else:
                    waiting.future.set_result(result)
