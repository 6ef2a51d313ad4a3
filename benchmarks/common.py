"""Helpers shared by the benchmark scripts: paths, statistics, memory sampling, machine facts, output."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Everything the benchmarks write lives under one git-ignored folder (see .gitignore).
DEFAULT_ROOT = Path(os.environ.get("TRAPLINE_BENCH_DIR", "bench-results"))
DEFAULT_STORE = DEFAULT_ROOT / "store"
DEFAULT_IMAGES = DEFAULT_ROOT / "images"
DEFAULT_MODEL = "bench-yolov8n:1"


@contextlib.contextmanager
def local_ray(num_cpus: int | None = None, env: dict[str, str] | None = None, verbose: bool = False
              ) -> Iterator[bool]:
    """A local Ray for a benchmark's runs (unless one is up already: then it is used, and left as it is), as quiet as
    `trapline`'s own commands keep theirs (ground/entry.py, ray_output.py): Ray's console output (its
    INFO lines, its workers', Serve's, Ray Data's) goes to a file in the session's log directory, named on one line,
    and the benchmark prints only its own lines. `verbose`, or a caller's `ray_output.mode(quiet=False)` (a
    benchmark's -v): Ray's output on the console, as Ray prints it. `env` is for the local Ray's processes. Serve
    and Ray are stopped at the end if started here, and stderr given back after them, so their shutdown lines stay
    in the file too. Yields whether it started Ray."""
    from ground import ray_output
    from ground.ray_runtime import ensure_ray, shutdown_ray

    outer = ray_output.chosen()
    with ray_output.mode(quiet=outer if outer is not None else not verbose):
        started = ensure_ray(num_cpus=num_cpus, log_to_driver=False, env=env)
        try:
            yield started
        finally:
            if started:
                with contextlib.suppress(Exception):
                    from ray import serve

                    serve.shutdown()
                shutdown_ray()  # and stderr back to the terminal when Ray's output went to its log file


def parse_list(text: str | Sequence[Any], kind: type = int) -> list[Any]:
    """"1,4,8" -> [1, 4, 8]; lists pass through converted to `kind`."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return [kind(x) for x in items if str(x).strip() != ""]


def latency_summary(seconds: Iterable[float]) -> dict[str, float | None]:
    """p50 / p95 / p99 / mean / max in milliseconds (None when there are no samples)."""
    arr = np.asarray(list(seconds), dtype=np.float64) * 1000.0
    if arr.size == 0:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None, "max_ms": None}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3),
            "mean_ms": round(float(arr.mean()), 3), "max_ms": round(float(arr.max()), 3)}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator to 3 significant digits, or None when either is missing or zero."""
    if not numerator or not denominator:
        return None
    return float(f"{float(numerator) / float(denominator):.3g}")


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def time_loop(fn, min_seconds: float, min_iters: int = 3, max_iters: int | None = None) -> list[float]:
    """Call `fn()` until both `min_seconds` and `min_iters` are reached; returns each call's duration."""
    durations: list[float] = []
    start = time.perf_counter()
    while len(durations) < min_iters or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - t0)
        if max_iters and len(durations) >= max_iters:
            break
    return durations


# -- memory of a process tree (the driver plus every Ray process it started) -----------------

def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces or parentheses; the fields after the last ')' are fixed.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(root_pid: int) -> list[int]:
    """`root_pid` and all its descendants (Ray's raylet, GCS and workers are children of the driver)."""
    children = _children_map()
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _proc_kib_field(path: str, key: str) -> int | None:
    """The kiB value of `key:` in a /proc file, or None if the file or the field is missing."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def process_memory(pid: int) -> int:
    """Proportional set size in bytes (shared pages such as Ray's object store are split, not
    counted once per process); falls back to RSS where smaps_rollup is unavailable."""
    kib = _proc_kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")
    if kib is None:
        kib = _proc_kib_field(f"/proc/{pid}/status", "VmRSS:")
    return (kib or 0) * 1024


def tree_memory(root_pid: int) -> int:
    return sum(process_memory(pid) for pid in process_tree(root_pid))


def process_title(pid: int) -> str | None:
    """What a person calls the process: Ray's title for its workers (`ray::ServeReplica:app:name`,
    `ray::ProxyActor`, `ray::ServeController`, `ray::IDLE`; without the method a busy one adds), else the
    program (`raylet`, `gcs_server`) or, for a Python process, its script or `-m` module
    (`dashboard/agent.py` -> `agent.py`). None once it has ended."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None
    if not argv:
        return None
    if argv[0].startswith("ray::"):
        # a worker running a task is titled `ray::<actor>.<method>` meanwhile: the process is the actor
        head, _, last = argv[0].strip().rpartition(":")
        return head + ":" + last.split(".", 1)[0]
    program = os.path.basename(argv[0].split()[0])
    if program.startswith("python"):
        for i, arg in enumerate(argv[1:], 1):
            if arg == "-m" and i + 1 < len(argv):
                return argv[i + 1]
            if arg.endswith(".py"):
                return os.path.basename(arg)
    return program


def process_rss(pid: int) -> int:
    """Resident set size in bytes, shared pages counted whole: unlike PSS (and USS) it does not change when another
    process that shared this one's pages ends, so a process's own growth reads as growth, not as its neighbours'
    exits (an hour's soak on a shared machine: every process's PSS, gcs_server's too, stepped up together when other
    programs' Rays ended)."""
    kib = _proc_kib_field(f"/proc/{pid}/smaps_rollup", "Rss:")
    if kib is None:
        kib = _proc_kib_field(f"/proc/{pid}/status", "VmRSS:")
    return (kib or 0) * 1024


def tree_memory_by_process(root_pid: int) -> dict[int, tuple[str, int, int]]:
    """pid -> (title, PSS bytes, RSS bytes) for `root_pid` and its descendants (processes that ended meanwhile left
    out): the PSS adds up to the tree's memory, the RSS tells a process's own growth (process_rss says why)."""
    out = {}
    for pid in process_tree(root_pid):
        title = process_title(pid)
        if title is not None:
            out[pid] = (title, process_memory(pid), process_rss(pid))
    return out


class MemorySampler:
    """Samples the memory of a process tree in a background thread; `peak_bytes` after exit.

    Use as a context manager around the work; `root_pid` defaults to this process. Works on
    Linux only (reads /proc); elsewhere it reports zeros.
    """

    # One sample of a Ray process tree costs 26 ms of CPU with Ray idle and more with a Ray Data job's
    # actors up (reading smaps_rollup walks each process's mappings): every 0.25 s that was half of a
    # batch job's driver CPU; every 1 s, py-spy still found it in 38 % of the driver's samples during a
    # null-model job. Memory that is flat needs no finer look.
    def __init__(self, root_pid: int | None = None, interval_s: float = 2.0) -> None:
        self.root_pid = root_pid or os.getpid()
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        value = tree_memory(self.root_pid) if os.path.isdir("/proc") else 0
        self.peak_bytes = max(self.peak_bytes, value)
        self.samples += 1
        return value

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.sample()

    @property
    def peak_mib(self) -> float:
        return round(self.peak_bytes / 2**20, 1)


# -- the machine a result was measured on -------------------------------------------------------

def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, GPU (if nvidia-smi answers) and library versions."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0))}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            info["gpus"] = [line.strip() for line in out.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    import onnxruntime as ort

    info["onnxruntime"] = ort.__version__
    info["ort_providers"] = ort.get_available_providers()
    try:
        import cv2

        info["opencv"] = cv2.__version__
    except ImportError:
        pass
    return info


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Render rows as a fixed-width text table, print it and return it."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    text = "\n".join(lines)
    print(text)
    return text


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |\n" for r in rows)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"  # ratios keep 3 digits: 1.19 is not 1.2
    return str(value)


def timed_rss(argv: list[str], ok_codes: tuple[int, ...] = (0,), cap_mib: float | None = None) -> dict[str, Any]:
    """One whole process: wall seconds, its own peak RSS (MiB), the load around it, and its stdout.

    The peak is the process's VmHWM, read from /proc every 0.1 s until it ends (growth in its last 0.1 s is
    missed). Not wait4's ru_maxrss: on Linux a child's maxrss starts at its parent's peak, carried through fork
    and exec, so it would report this runner's size for any smaller step. With `cap_mib`, a process whose RSS
    passes the cap is killed (a tool that is not bounded in memory would otherwise take the machine down at a
    million rows) and the row says `over_cap` with the seconds it got."""
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()  # stdout drained beside the watch, so a large output cannot block the process
    over, peak = False, 0.0
    while proc.poll() is None:
        rss, hwm = _memory_mib(proc.pid)
        peak = max(peak, hwm)
        if cap_mib is not None and not over and rss > cap_mib:
            proc.kill()
            over = True
        time.sleep(0.1)
    reader.join()
    out = "".join(chunks)
    wall = time.perf_counter() - t0
    if not over and proc.returncode not in ok_codes:
        raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}: {out[-2000:]}")
    row = {"wall_s": round(wall, 2), "peak_rss_mib": round(peak, 1),
           "load": [round(load, 1), round(os.getloadavg()[0], 1)], "stdout": out}
    if over:
        row.update(over_cap=True, peak_rss_mib=f"> {cap_mib:g}")
    return row


def _memory_mib(pid: int) -> tuple[float, float]:
    """A process's resident set now and its peak so far (VmRSS, VmHWM), from /proc; zeros when it is gone."""
    found = {"VmRSS:": 0.0, "VmHWM:": 0.0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(maxsplit=1)[0] if line.strip() else ""
                if key in found:
                    found[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return found["VmRSS:"], found["VmHWM:"]
