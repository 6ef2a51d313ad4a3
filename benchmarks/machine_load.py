"""How busy the machine was in a span of time, and how much of that was the benchmark itself.

A soak window whose p99 jumps may be a slow service or a busy machine (another program installing packages on
the same cores). `LoadWindow` tells them apart: over the span it measures the whole machine's CPU (from
/proc/stat, so processes that started and ended inside the span count too), the CPU of the benchmark's own
process trees (the service it started or sampled, and this load generator), and reads /proc/loadavg at the
end. `others_cpus` is the difference: CPU time other programs took, in CPUs (1.0 = one core busy the whole
span). Linux only; elsewhere every figure is None.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from benchmarks.common import process_tree

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# A window is "busy" when other programs took more than this share of the machine's CPUs: at 2 cores, half a
# core of someone else's work is enough to move a p99 measured at 80 % of capacity.
BUSY_SHARE = 0.25


def _machine_busy_ticks() -> int | None:
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user and nice]
    return sum(fields[:3]) + sum(fields[5:8])


def tree_cpu_s(root_pids: Iterable[int]) -> float:
    """CPU seconds of every process in the trees (tree_ticks)."""
    return tree_ticks(root_pids) / _TICK


def tree_ticks(root_pids: Iterable[int]) -> int:
    """CPU ticks of every process in the trees, with the children they have reaped (cutime, cstime), so a
    worker that exited during the span still counts for its parent."""
    return sum(ticks_by_process(root_pids).values())


def ticks_by_process(root_pids: Iterable[int], trees: bool = True) -> dict[tuple[int, int], int]:
    """CPU ticks (utime stime cutime cstime) of every process in the trees (`trees` False: of the roots alone),
    keyed by (pid, start time)."""
    pids: set[int] = set()
    for root in root_pids:
        pids.update(process_tree(root) if trees else [root])
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone since the tree was listed
        out[(pid, int(fields[19]))] = sum(int(x) for x in fields[11:15])
    return out


# The processes that answer a Serve request: Ray titles an actor's worker `ray::<class>` (ServeReplica:<app>:<name>).
_SERVE_TITLES = (b"ray::ServeReplica:", b"ray::ProxyActor", b"ray::ServeController")


def serve_processes(root_pid: int) -> list[int]:
    """The Serve replicas, proxies and controller in `root_pid`'s tree (a driver that started Ray and Serve).

    Counted alone with the load generator, they are the benchmark: the rest of that Ray (its raylet and GCS,
    actors an earlier test left running) is then another program's load, as it is to the service's latency."""
    out = []
    for pid in process_tree(root_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read()
        except OSError:
            continue
        if title.startswith(_SERVE_TITLES):
            out.append(pid)
    return out


def loadavg() -> float | None:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class LoadWindow:
    """Measures one span: `start()`, then `stop()` returns the figures.

    `roots` are the benchmark's own process trees (default: this process, which with `--start` holds Ray and
    the service as children); with `trees` False, the roots alone (this process and the service's own
    processes, `serve_processes`: the rest of the Ray it started counts as others').
    """

    def __init__(self, roots: Iterable[int | None] = (), follow_s: float | None = None, trees: bool = True) -> None:
        self.roots = sorted({r for r in roots if r} | {os.getpid()})
        self.trees = trees
        self.cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self._start: tuple[float, int | None, int] | None = None
        # `follow_s`: the trees are read every follow_s seconds too, so a process that exits before stop() (Ray's
        # raylet does not reap its killed workers into its own cutime) still counts with its last reading.
        self.follow_s, self._seen, self._base = follow_s, {}, {}
        self._done = threading.Event()

    def start(self) -> LoadWindow:
        busy = _machine_busy_ticks()
        if self.follow_s:
            self._base = self._by_process()
            self._seen = dict(self._base)
            threading.Thread(target=self._follow, name="load-window", daemon=True).start()
        self._start = (time.perf_counter(), busy, self._ticks() if busy is not None else 0)
        return self

    def _follow(self) -> None:
        while not self._done.wait(self.follow_s):
            self._seen.update(self._by_process())

    def _by_process(self) -> dict[tuple[int, int], int]:
        return ticks_by_process(self.roots, self.trees)

    def _ticks(self) -> int:
        return sum(self._by_process().values())

    def _own_ticks(self, own0: int) -> int:
        if not self.follow_s:
            return self._ticks() - own0
        self._done.set()
        self._seen.update(self._by_process())
        return sum(t - self._base.get(k, 0) for k, t in self._seen.items())

    def stop(self) -> dict[str, Any]:
        assert self._start is not None, "start() first"
        t0, busy0, own0 = self._start
        busy1 = _machine_busy_ticks()
        elapsed = time.perf_counter() - t0
        if busy0 is None or busy1 is None or elapsed <= 0:
            return {"load1": loadavg(), "machine_cpus": None, "benchmark_cpus": None, "others_cpus": None,
                    "busy": None}
        # A process of the trees that ended unreaped by them (a Ray worker whose ticks went nowhere we read) takes
        # its ticks with it: the tree's delta can fall short, even below zero; what it misses shows as others'.
        own = max(0.0, self._own_ticks(own0) / _TICK / elapsed)
        machine = (busy1 - busy0) / _TICK / elapsed
        # Ticks are sampled per process and per CPU at slightly different moments: clamp the small negatives.
        others = max(0.0, machine - own)
        return {"load1": loadavg(), "machine_cpus": round(machine, 2), "benchmark_cpus": round(min(own, machine), 2),
                "others_cpus": round(others, 2), "busy": others > BUSY_SHARE * self.cpus}


def describe(load: dict[str, Any], cpus: int) -> str:
    """One phrase for a log line: `load 1.9; others 0.1 of 2 CPUs`."""
    if load.get("others_cpus") is None:
        return f"load {load.get('load1')}"
    flag = " (busy machine)" if load["busy"] else ""
    return f"load {load['load1']}; others {load['others_cpus']} of {cpus} CPUs{flag}"
