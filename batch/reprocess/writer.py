"""The plan's sink: one long-lived writer actor that commits each batch of results as a part."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa


class PartWriter:
    """Writes each batch of result rows as one committed part, with the sink it is given (`write_results`, or
    `write_stage_results` after a crop/classify stage) and that sink's settings.

    Lifecycle: Ray Data starts one per run, with the inference actors (an actor pool of one, holding the writer's
    CPU share for the run); `__init__` only keeps the sink and its settings, `__call__` writes one part a batch.

    An actor rather than a task a part: a task ran in whichever worker process Ray had idle, and Ray reaps idle
    workers, so part after part began in a new process that imported Ray Data and the tables first (~1.2 s of CPU
    each, taken from the inference actors), and the run's last part waited for one (1.9 s at the end of a 20 s
    run of clips; BENCHMARKS.md, "Video clips")."""

    def __init__(self, sink: Callable[..., pa.Table], **settings: Any) -> None:
        self.sink = sink
        self.settings = settings

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.sink(batch, **self.settings)
