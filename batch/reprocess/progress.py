"""A run's progress: the counts of its committed parts, which every executor (the Ray Data plan, the job's own
pool, the inline path) hands `on_part` after each part, and the rates and line the job reports from them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

STAT_FIELDS = ("images", "ok", "empty", "failed", "detections", "raw_detections", "clips", "clips_failed",
               "frames_sampled")


@dataclass
class Progress:
    """Counts so far; `on_part` callers get one of these after every committed part."""

    total: int
    in_flight: int = 1  # parts being made at once (the inference actors, or the inline path's parts at once)
    started: float = field(default_factory=time.perf_counter)
    parts: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAT_FIELDS, 0))
    first_part: tuple[float, int] | None = None  # (seconds since start, images) when the first part landed
    last_part_s: float = 0.0
    _started_before: int = 0  # images of the first `in_flight` parts: begun before the first part landed

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        return self.counts["images"] / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def steady_rate(self) -> float:
        """Images/s from the first committed part to the last: the rate without Ray Data's and the
        actors' start-up, which a longer archive runs at. Only the images of parts begun after the first part
        landed count: the `in_flight` parts made alongside it were mostly done by then, and counting them
        overstated the rate (5.7 images/s against 4.5 measured end to end through a deployment, two parts at
        once). The overall rate until a part begun later has landed, or when the first part came late (after
        a quarter of the images: parts landing in a burst at the end say nothing about the rate in between)."""
        if (self.first_part is None or self.parts <= self.in_flight or self.last_part_s <= self.first_part[0]
                or self.first_part[1] > self.counts["images"] / 4):
            return self.rate
        return (self.counts["images"] - self._started_before) / (self.last_part_s - self.first_part[0])

    def add_part(self, stats: dict[str, Any]) -> None:
        """Count one committed part's stats row."""
        self.parts += 1
        for k in STAT_FIELDS:
            self.counts[k] += int(stats.get(k) or 0)
        self.last_part_s = self.elapsed
        if self.first_part is None:
            self.first_part = (self.last_part_s, self.counts["images"])
        if self.parts <= self.in_flight:
            self._started_before = self.counts["images"]

    def add_parts(self, rows: Sequence[dict[str, Any]], on_part: Callable[[Progress], Any] | None) -> None:
        """Count committed parts' stats rows, telling `on_part` after each (every executor reports this way).

        What `on_part` raises at one part (a stop, a lost lease) is raised once every row is counted: the writer may
        answer two parts at once, and the second, already committed, went uncounted (a manifest of 2 images over 3
        in the tables). Hence a sequence of parts already written, not an iterator that would go on making them."""
        first: Exception | None = None
        for row in rows:
            self.add_part(row)
            if on_part is not None:
                try:
                    on_part(self)
                except Exception as exc:  # noqa: BLE001 - raised below, once the rest is counted
                    first = first or exc
        if first is not None:
            raise first

    def line(self) -> str:
        done = self.counts["images"]
        pct = 100.0 * done / self.total if self.total else 100.0
        rate = self.steady_rate
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        c = self.counts
        return (f"processed {done}/{self.total} ({pct:.0f}%), ok {c['ok']}, empty {c['empty']}, "
                f"failed {c['failed']}, detections {c['detections']}, {self.rate:.1f} images/s"
                + (f", ETA {eta:.0f}s" if math.isfinite(eta) and done < self.total else ""))
