"""What a local Ray leaves behind when it stops, found and ended: the processes this process's Ray started (its GCS,
raylet, dashboard, the dashboard's and the runtime-env agents, workers) that outlive `ray.shutdown()`.

Why: `ray.shutdown()` stops the GCS and the raylet, and the agents the raylet started are meant to notice and exit;
stopping a service that never became ready, they were seen alive minutes later, re-parented to PID 1, holding four
loopback ports and deaf to SIGTERM (issue 67). So the stop takes the list of its Ray's processes (under this one, or
naming its session) before it shuts Ray down, gives them REAP_GRACE_S to go, and kills (SIGKILL, by PID, start time
checked) what is left.
Linux's /proc only: elsewhere nothing is listed and the stop is Ray's alone.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re
import signal
import time
from pathlib import Path

logger = logging.getLogger(__name__)

PROC = Path("/proc")
REAP_GRACE_S = 3.0


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent PID, state, start time in clock ticks) of a process, None once it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0], int(fields[19])


def ray_processes(driver: int | None = None) -> dict[int, int]:
    """PID -> start time of the processes of the local Ray that `driver` (default: this process) started: those under
    it that are Ray's (`ray_descendants`) and those that name its session directory (`session_<time>_<driver PID>`),
    wherever they are now. The second finds the agents once the raylet that started them is gone: Ray's own SIGTERM
    handler, in place while a local Ray starts, kills the GCS and the raylet and leaves the agents to PID 1."""
    driver = os.getpid() if driver is None else driver
    found = ray_descendants(driver)
    if not PROC.is_dir():
        return found
    session = re.compile(rb"/session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_%d(?![0-9])" % driver)
    for d in PROC.iterdir():
        if not d.name.isdigit() or int(d.name) in found or int(d.name) == driver:
            continue
        try:
            if session.search((d / "cmdline").read_bytes()) and (stat := _stat(int(d.name))) is not None:
                found[int(d.name)] = stat[2]
        except OSError:
            continue
    return found


def ray_descendants(root: int | None = None) -> dict[int, int]:
    """PID -> start time of the processes under `root` (default: this one) that are Ray's: their command line runs
    from Ray's package (`.../site-packages/ray/...`: GCS, raylet, dashboard, agents) or is a Ray worker's title
    (`ray::...`), and whatever those started."""
    root = os.getpid() if root is None else root
    if not PROC.is_dir():
        return {}
    stats = {int(d.name): s for d in PROC.iterdir() if d.name.isdigit() and (s := _stat(int(d.name))) is not None}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, [(pid, False) for pid in children.get(root, ())]
    while todo:
        pid, under_ray = todo.pop()
        try:
            argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # what Ray's processes start is Ray's too (the dashboard's multiprocessing forkserver and resource tracker)
        if under_ray or any(arg.startswith((_ray_package(), b"ray::")) for arg in argv):
            found[pid] = stats[pid][2]
            under_ray = True
        todo.extend((child, under_ray) for child in children.get(pid, ()))
    return found


@functools.cache
def _ray_package() -> bytes:
    """Where Ray is installed (`.../ray/`), found without importing it."""
    spec = importlib.util.find_spec("ray")
    origin = spec.origin if spec is not None else None
    return (os.path.dirname(origin) + os.sep).encode() if origin else b"\0no ray\0"


def _alive(pid: int, started: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[2] == started and stat[1] not in ("Z", "X")  # a zombie has ended


def reap(processes: dict[int, int], grace_s: float = REAP_GRACE_S) -> list[int]:
    """Wait up to `grace_s` for `processes` (PID -> start time) to end, then SIGKILL those still there; returns their
    PIDs. The start time guards against a PID the system gave to another process meanwhile."""
    deadline = time.monotonic() + grace_s
    while (alive := [p for p, t in processes.items() if _alive(p, t)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    if alive:
        logger.info("ended %d process(es) of the local Ray that outlived its shutdown: %s", len(alive), alive)
    return alive


def end_leftovers(before: dict[int, int], rounds: int = 3) -> list[int]:
    """`reap` what was listed before the shutdown, then what of this driver's Ray is still found (a raylet that lived
    on after a start cut short starts its agents again until it is killed), a few rounds; returns the PIDs killed."""
    killed = reap(before)
    for _ in range(rounds):
        more = ray_processes()
        if not more:
            break
        killed += reap(more, grace_s=1.0)
    return killed
