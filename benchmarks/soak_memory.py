"""The soak's memory record: each process of the service's tree sampled by Ray's title (each replica, the proxy, the
controller, raylet, GCS, the driver) with its second-half slope, so a rise is put on the process that makes it
(issue 87). Used by benchmarks/soak.py; its own test is tests/unit/test_soak_memory.py."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.common import tree_memory_by_process


class MemoryTrend:
    """Samples the memory of a process tree every `interval_s` in a thread: the tree's total and each process's,
    by Ray's titles (each replica, the proxy, the controller, raylet, GCS, the driver), so a rise is put on the
    process that makes it."""

    def __init__(self, root_pid: int | None, interval_s: float = 2.0) -> None:
        self.root_pid, self.interval_s = root_pid, interval_s
        self.samples: list[tuple[float, int]] = []
        # pid -> (title, [(at, PSS bytes, RSS bytes)])
        self.by_process: dict[int, tuple[str, list[tuple[float, int, int]]]] = {}
        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-trend", daemon=True)

    def sample(self) -> None:
        if not (self.root_pid and os.path.isdir("/proc")):
            return
        at = time.perf_counter() - self._t0
        now = tree_memory_by_process(self.root_pid)
        self.samples.append((at, sum(pss for _, pss, _ in now.values())))
        for pid, (title, pss, rss) in now.items():
            if pid == self.root_pid:
                title = f"driver ({title})"
            self.by_process.setdefault(pid, (title, []))[1].append((at, pss, rss))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> MemoryTrend:
        self._t0 = time.perf_counter()
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def summary(self) -> dict[str, Any] | None:
        """The tree's slope (MiB/min, least squares), first/last third means and the samples themselves; and per
        process (largest first) its first and last MiB and its slope over the second half of the run."""
        if len(self.samples) < 2:
            return None
        t, mib = _minutes_and_mib(self.samples)
        slope = _slope(t, mib)
        third = max(1, len(mib) // 3)
        # The first minutes include warm-up (allocator arenas, caches); a leak keeps growing after it.
        late_slope = _slope(*_second_half(t, mib, t[-1]))
        processes = [_process_trend(pid, title, samples, t[-1]) for pid, (title, samples) in self.by_process.items()
                     if len(samples) >= 2]
        processes.sort(key=lambda p: -p["end_mib"])
        return {"samples": len(mib), "slope_mib_per_min": round(slope, 3) if slope is not None else None,
                "slope_second_half_mib_per_min": round(late_slope, 3) if late_slope is not None else None,
                "first_third_mean_mib": round(float(mib[:third].mean()), 1),
                "last_third_mean_mib": round(float(mib[-third:].mean()), 1),
                "min_mib": round(float(mib.min()), 1), "max_mib": round(float(mib.max()), 1),
                "processes": processes,
                "series": [[round(float(a) * 60, 1), round(float(b), 1)] for a, b in zip(t, mib, strict=True)]}


def _minutes_and_mib(samples: Sequence[tuple[float, int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([s[0] for s in samples]) / 60.0, np.array([s[1] for s in samples]) / 2**20


def _slope(t: np.ndarray, mib: np.ndarray) -> float | None:
    """Least-squares MiB/min, None on fewer than two samples or no time between them."""
    return float(np.polyfit(t, mib, 1)[0]) if len(t) >= 2 and np.ptp(t) > 0 else None


def _second_half(t: np.ndarray, mib: np.ndarray, end: float) -> tuple[np.ndarray, np.ndarray]:
    """The samples in the second half of the whole run (0..end minutes): after the warm-up."""
    late = t >= end / 2
    return t[late], mib[late]


def _process_trend(pid: int, title: str, samples: Sequence[tuple[float, int, int]], end: float) -> dict[str, Any]:
    """One process's first and last MiB (PSS) and second-half slopes of its PSS and of its RSS (None for one that
    lived through too little of it). The RSS slope judges the process: its PSS also rises when another process that
    shared its pages ends (benchmarks.common.process_rss)."""
    t, mib = _minutes_and_mib([(at, pss) for at, pss, _ in samples])
    _, rss = _minutes_and_mib([(at, rss) for at, _, rss in samples])
    late, late_rss = _slope(*_second_half(t, mib, end)), _slope(*_second_half(t, rss, end))
    return {"title": title, "pid": pid, "samples": len(mib), "start_mib": round(float(mib[0]), 1),
            "end_mib": round(float(mib[-1]), 1),
            "slope_second_half_mib_per_min": round(late, 3) if late is not None else None,
            "rss_start_mib": round(float(rss[0]), 1), "rss_end_mib": round(float(rss[-1]), 1),
            "rss_slope_second_half_mib_per_min": round(late_rss, 3) if late_rss is not None else None}


def memory_table(memory: dict[str, Any] | None, min_mib: float = 20.0) -> list[str]:
    """Lines for people: each process of at least `min_mib` (the rest summed), start -> end MiB (PSS) and the second
    half's slopes of its PSS and its RSS; the process with the steepest second-half RSS slope named (its own growth:
    a PSS also rises when a neighbour that shared its pages ends)."""
    if not memory or not memory.get("processes"):
        return []
    shown = [p for p in memory["processes"] if p["end_mib"] >= min_mib]
    rest = [p for p in memory["processes"] if p["end_mib"] < min_mib]
    width = max(len(p["title"]) for p in shown) if shown else 10
    lines = [f"  {'process':<{width}}  {'pid':>7}  {'start MiB':>9}  {'end MiB':>8}  {'2nd-half MiB/min':>16}  "
             f"{'RSS 2nd-half MiB/min':>20}"]
    for p in shown:
        late, late_rss = p["slope_second_half_mib_per_min"], p.get("rss_slope_second_half_mib_per_min")
        lines.append(f"  {p['title']:<{width}}  {p['pid']:>7}  {p['start_mib']:>9.1f}  {p['end_mib']:>8.1f}  "
                     f"{'-' if late is None else f'{late:+.3f}':>16}  "
                     f"{'-' if late_rss is None else f'{late_rss:+.3f}':>20}")
    if rest:
        lines.append(f"  {len(rest)} smaller process(es) under {min_mib:g} MiB: "
                     f"{sum(p['end_mib'] for p in rest):.1f} MiB at the end")
    sloped = [p for p in memory["processes"] if p.get("rss_slope_second_half_mib_per_min") is not None]
    if sloped:
        worst = max(sloped, key=lambda p: p["rss_slope_second_half_mib_per_min"])
        lines.append(f"  steepest in the second half: {worst['title']} (pid {worst['pid']}), "
                     f"{worst['rss_slope_second_half_mib_per_min']:+.3f} MiB/min of its RSS")
    return lines
