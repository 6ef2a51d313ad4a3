"""The run's part writer: one actor the driver starts for a run, hands a part at a time and kills with the run.

Why not a Ray Data stage: a write *task* a part ran in whichever worker Ray had idle, and Ray reaps idle workers,
so part after part began in a new process that imported Ray Data and the tables first (~1.2-1.4 s of CPU each,
taken from the inference actors) and the run's last part waited 2-3 s for one (BENCHMARKS.md, "Video clips").
A writer in a Ray Data *actor pool* kept one warm process, but when a run fails Ray Data releases an actor pool
without killing it (`shutdown(force=False)`), and a part write in flight there went on retrying after the run
had ended (test_faults_storage's persistent-S3 scenario). This actor is the driver's own: started with the run
(its imports overlap the inference actors' start-up), fed the plan's result rows a part at a time in order, and
killed (`ray.kill`) the moment the run stops, fails or ends, so no write of it outlives the run; every write is
still fenced by the run's lease (write_results) and a part is committed by its images file alone, so a write
killed half-way commits nothing.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from batch.reprocess.progress import Progress
from model_store.tables.commit import write_results, write_stage_results

WINDOW = 2  # parts handed to the writer and not yet written: one writing, one waiting, so it never idles
KILL_WAIT_S = 30.0  # how long `kill` waits for the writes in flight to end with the actor


def part_sink(spec: Any) -> tuple[Callable[..., pa.Table], dict[str, Any]]:
    """The function that commits a part of a plan's result rows (`spec` a dataset.PlanSpec), and its settings."""
    sink, result_hash = write_results, spec.rows_hash or spec.filters_hash  # a redo writes its own set
    if spec.stage is not None:
        sink, result_hash = write_stage_results, spec.stage.result_hash
    return sink, {"out_url": spec.out_url, "model_name": spec.model_name, "model_version": spec.model_version,
                  "model_sha256": spec.model_sha256, "filters_hash": result_hash, "run_id": spec.run_id,
                  "metadata": spec.metadata, "fenced": spec.fenced}


class PartWriter:
    """Writes each batch of result rows as one committed part with `sink` (`write_results`, or
    `write_stage_results` after a crop/classify stage) and that sink's settings; answers the part's stats row."""

    def __init__(self, sink: Callable[..., pa.Table], settings: dict[str, Any]) -> None:
        self.sink = sink
        self.settings = settings

    def write(self, batch: pa.Table) -> dict[str, Any]:
        return self.sink(batch, **self.settings).to_pylist()[0]


class PartWriteError(RuntimeError):
    """A part write that failed (after the storage client's own retries): `stage` names the writer and its sink
    (`PartWriter(write_results)`, as a Ray Data stage is named), `cause` Ray's error (its remote traceback)."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage}: {type(cause).__name__}: {cause}")
        self.stage, self.cause = stage, cause


class RunWriter:
    """The driver's side: `submit` a part's rows, get back the stats of the parts written so far, in order;
    `finish` waits for the rest; `kill` ends the actor and any write in it (called however the run ends)."""

    def __init__(self, sink: Callable[..., pa.Table], settings: dict[str, Any], num_cpus: float,
                 remote: dict[str, Any], timeout_s: float | None = None, window: int = WINDOW) -> None:
        import ray  # late: batch.cli imports this module for `trapline --help`; Ray loads when a job runs

        self._ray = ray
        self.stage = f"PartWriter({getattr(sink, '__name__', 'write')})"
        self.window, self.timeout_s = window, timeout_s or None
        # No restarts and no task retries: a write that failed or whose actor died fails the run (a rerun
        # resumes), rather than being written again behind the driver's back.
        self.actor = ray.remote(PartWriter).options(num_cpus=num_cpus, max_restarts=0, max_task_retries=0,
                                                    **remote).remote(sink, settings)
        self._pending: collections.deque = collections.deque()
        self._answered: list[dict[str, Any]] = []  # parts written, not yet handed back to the driver

    def submit(self, batch: pa.Table) -> list[dict[str, Any]]:
        self._pending.append(self.actor.write.remote(batch))
        while self._pending and (len(self._pending) > self.window or self._ready(self._pending[0])):
            self._take()
        return self._handed_back()

    def finish(self) -> list[dict[str, Any]]:
        self._wait_all()
        return self._handed_back()

    def _wait_all(self) -> None:
        while self._pending:
            self._take()

    def _take(self) -> None:
        """The oldest write's stats row, out of the pending ones only once it is had: a wait cut short (Ctrl-C,
        `ray job stop`'s SIGTERM, a timeout) leaves it pending, for `kill` to wait out; and rows had before a later
        wait failed stay answered, for `end_early` to count."""
        self._answered.append(self._get(self._pending[0]))
        self._pending.popleft()

    def _handed_back(self) -> list[dict[str, Any]]:
        rows, self._answered = self._answered, []
        return rows

    def end_early(self, progress: Progress, on_part: Callable[[Progress], Any] | None, stopped: bool) -> None:
        """A run ending before its last part. A stop asked for between parts (`stopped`: `on_part` raised
        RunStoppedError) has the parts already handed over written, as a stop at the next part promises, rather
        than killed half-way (which left a detections file without its images file); any other end (a failure,
        Ctrl-C, SIGTERM) kills the writer first. Either way every part written is counted and `on_part` told of it;
        what `on_part` raises then is dropped: the run's own end is already on its way."""
        try:
            if stopped:
                with contextlib.suppress(Exception):
                    self._wait_all()
        finally:
            self.kill()
            with contextlib.suppress(Exception):
                progress.add_parts(self._handed_back(), on_part)

    def kill(self) -> None:
        """End the actor, and wait (KILL_WAIT_S at most) for its writes in flight to end with it: `ray.kill` only
        asks, and a write still running after this returned could leave a file behind whoever sweeps up after the
        run (a stop's `remove_orphans`). A write that had ended before the actor did is answered, for `end_early`
        to count."""
        pending = list(self._pending)
        self._pending.clear()
        with contextlib.suppress(Exception):
            self._ray.kill(self.actor, no_restart=True)
        if pending:
            with contextlib.suppress(Exception):
                self._ray.wait(pending, num_returns=len(pending), timeout=KILL_WAIT_S)
            for ref in pending:  # in order; a write killed half-way committed nothing (its images file is last)
                with contextlib.suppress(Exception):
                    self._answered.append(self._ray.get(ref, timeout=0))

    def _ready(self, ref) -> bool:
        ready, _ = self._ray.wait([ref], timeout=0)
        return bool(ready)

    def _get(self, ref) -> dict[str, Any]:
        from ray.exceptions import GetTimeoutError, RayTaskError  # late: the module is imported for `trapline --help`

        try:
            return self._ray.get(ref, timeout=self.timeout_s)
        except GetTimeoutError:
            raise PartWriteError(self.stage, TimeoutError(f"no part written for {self.timeout_s:g} s")) from None
        except RayTaskError as exc:
            raise PartWriteError(self.stage, exc) from None
