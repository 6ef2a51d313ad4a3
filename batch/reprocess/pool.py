"""`--executor pool`: a `--via actors` run's inference actors driven by the job itself, without a Ray Data plan.

Why: a Ray Data plan starts three helper actors of its own (stats, autoscaling, actor locations) and each of its
actors imports Ray Data, every one a new process on the run's cores. On 2 cores the plan's first batch came 2.5-3 s
after it started, where two plain actors of the same class were ready in under 1 s (notes/issue60-startup.md).

Here the driver starts `concurrency` DetectorActor actors itself (the plan's own stage class and settings), hands
each up to WINDOW batches of listing rows at a time (only paths travel; the actor reads, decodes and runs them), and
hands the result rows to the run's writer actor (writer.py) `rows_per_file` at a time, as the plan's rows are. Every
guarantee is the writer's and the done-check's, as with the plan: a part is committed by the writer alone, fenced
by the run's lease; however the run ends the writer and the actors are killed, so nothing of it writes afterwards;
bad files are failed rows (DetectorActor). An actor that dies is replaced and its unanswered batches handed to the
new one (nothing of theirs reached the writer, so nothing is written twice), up to REPLACEMENTS times a run; a
replacement Ray cannot place (a lost node, no room elsewhere) ends the run at the stall timeout. What the plan has
and this has not: MIN-MAX pools (the pool is the maximum), read tasks and the crop/classify stage (those runs take
the plan: `ReprocessOptions.uses_pool`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from batch.reprocess.dataset import PlanSpec, detector_settings, numpy_batch, stalled, worker_env
from batch.reprocess.detect import DetectorActor
from batch.reprocess.progress import Progress
from batch.reprocess.writer import RunWriter, part_sink
from ground.errors import RunStoppedError

WINDOW = 2  # batches handed to an actor and not yet answered: one running, one waiting, so it never idles
REPLACEMENTS = 3  # actors that died replaced in a run; one more death fails it (a crash the inputs bring back)


class PoolDetectorActor(DetectorActor):
    """DetectorActor as a plain Ray actor: `run(batch)` is its `__call__`."""

    def run(self, batch: dict[str, Any]) -> pa.Table:
        return self(batch)


def execute_pool(entries: pa.Table, spec: PlanSpec, on_part: Callable[[Progress], Any] | None = None) -> Progress:
    """Run `entries` through the job's own pool of inference actors; `on_part(progress)` after every committed part
    (what `dataset.execute` does with a Ray Data plan)."""
    import ray  # late: batch.cli imports the job for `trapline --help`; Ray loads when a job runs

    size = spec.concurrency[1] if isinstance(spec.concurrency, tuple) else spec.concurrency
    progress = Progress(total=entries.num_rows, in_flight=max(1, size))
    if entries.num_rows == 0:
        return progress
    remote = worker_env()
    # Ray restarts and retries nothing: a dead actor is replaced by the job (_Actors), which hands its unanswered
    # batches to the new one, so no batch runs again behind the driver's back.
    actor_cls = ray.remote(PoolDetectorActor).options(num_cpus=spec.num_cpus, num_gpus=spec.num_gpus or None,
                                                      max_restarts=0, max_task_retries=0, **remote)
    # The writer first: asked for before the actors, it holds its CPU share even when the actors would fill what
    # the cluster has free (a Serve replica beside the job holding the rest); an actor Ray cannot place yet is
    # handed no batch (_results) and the run goes on with those it has, as a Ray Data plan does.
    sink, settings = part_sink(spec)
    writer = RunWriter(sink, settings, spec.write_cpus, remote, timeout_s=spec.stall_timeout_s)
    actors = _Actors(lambda: actor_cls.remote(detector_settings(spec, spec.archive_url)), max(1, size))

    try:
        parts = _Parts(spec.rows_per_file)
        for table in _results(ray, actors, entries, spec.batch_size, spec.stall_timeout_s):
            for part in parts.add(table):
                progress.add_parts(writer.submit(part), on_part)
        last = parts.rest()
        if last is not None:
            progress.add_parts(writer.submit(last), on_part)
        progress.add_parts(writer.finish(), on_part)
    except BaseException as exc:
        writer.end_early(progress, on_part, stopped=isinstance(exc, RunStoppedError))
        raise
    finally:  # a stop, a failure, Ctrl-C or the end: nothing of the run goes on once the driver lets go
        writer.kill()
        actors.kill_all(ray)
    return progress


class _Actors:
    """The pool's actors by slot; a slot whose actor died gets a new one (`replace`), REPLACEMENTS times a run."""

    def __init__(self, start: Callable[[], Any], size: int) -> None:
        self.start, self.slots, self.replaced = start, [start() for _ in range(size)], 0

    def replace(self, ray, slot: int, cause: BaseException) -> None:
        if self.replaced >= REPLACEMENTS:
            raise cause
        self.replaced += 1
        with contextlib.suppress(Exception):
            ray.kill(self.slots[slot], no_restart=True)
        self.slots[slot] = self.start()

    def kill_all(self, ray) -> None:
        for actor in self.slots:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)


def _results(ray, actors: _Actors, entries: pa.Table, batch_size: int, stall_timeout_s: float):
    """Each batch's result rows as soon as its actor answers (any order), WINDOW batches in flight per actor, and
    only to actors that are up: one Ray cannot place yet (no CPU free for it) gets nothing until it is."""
    from ray.exceptions import RayActorError  # late: batch.cli imports the job for `trapline --help`

    todo = list(range(0, entries.num_rows, batch_size))[::-1]  # batch starts, popped from the end
    running: dict[Any, tuple[int, int]] = {}  # the answer's ref -> (its actor's slot, its batch's start)
    starting = {actors.slots[slot].__ray_ready__.remote(): slot for slot in range(len(actors.slots))}
    busy: dict[int, int] = {}  # slot -> batches in flight, for the slots whose actor is up

    def hand_out() -> None:
        while todo and busy:
            slot = min(busy, key=busy.__getitem__)
            if busy[slot] >= WINDOW:
                return
            start = todo.pop()
            running[actors.slots[slot].run.remote(numpy_batch(entries.slice(start, batch_size)))] = (slot, start)
            busy[slot] += 1

    def lost(slot: int, start: int | None, exc: BaseException) -> None:  # the actor died: its batches to a new one
        unanswered = [ref for ref, (s, _) in running.items() if s == slot]
        todo.extend([*([start] if start is not None else []), *(running.pop(ref)[1] for ref in unanswered)])
        busy.pop(slot, None)
        actors.replace(ray, slot, exc)
        starting[actors.slots[slot].__ray_ready__.remote()] = slot

    while running or todo:
        done, _ = ray.wait([*running, *starting], num_returns=1, timeout=stall_timeout_s or None)
        if not done:
            raise stalled(stall_timeout_s)  # no answer for that long: no part committed either
        if done[0] in starting:
            slot = starting.pop(done[0])
            try:
                ray.get(done[0])
            except RayActorError as exc:  # died while starting (its model would not load: that error ends the run)
                lost(slot, None, exc)
                continue
            busy[slot] = 0
            hand_out()
            continue
        slot, start = running.pop(done[0])
        busy[slot] -= 1
        try:
            table = ray.get(done[0])  # a failing batch (not a bad file: those are failed rows) ends the run here
        except RayActorError as exc:
            lost(slot, start, exc)
            hand_out()
            continue
        hand_out()
        yield table


class _Parts:
    """Result rows gathered into parts of exactly `rows` rows (the last one: what is left)."""

    def __init__(self, rows: int) -> None:
        self.rows, self.tables, self.held = rows, [], 0

    def add(self, table: pa.Table) -> list[pa.Table]:
        self.tables.append(table)
        self.held += table.num_rows
        out = []
        while self.held >= self.rows:
            whole = pa.concat_tables(self.tables)
            out.append(whole.slice(0, self.rows))
            rest = whole.slice(self.rows)
            self.tables, self.held = ([rest] if rest.num_rows else []), rest.num_rows
        return out

    def rest(self) -> pa.Table | None:
        return pa.concat_tables(self.tables) if self.held else None
