"""The soak's memory per process: a rise is put on the process that makes it, by its title."""

import os
import subprocess
import sys
import time

from benchmarks.common import process_title
from benchmarks.soak_memory import MemoryTrend, memory_table

# A child that holds 8 MiB more each time it reads a line, and says so.
_GROWER = """
import sys
held = []
for line in sys.stdin:
    held.append(bytearray(8 * 2**20))
    for i in range(0, len(held[-1]), 4096):
        held[-1][i] = 1  # touched, so the pages are resident
    print(len(held), flush=True)
"""


def test_each_process_has_its_own_start_end_and_second_half_slope_and_the_grower_is_named(monkeypatch):
    # The trend's clock, one minute a reading: a loaded machine makes one reading of /proc slow, and the second half
    # of a run is a half of its time, so with the machine's own clock the half could hold one sample and no slope.
    minutes = iter(range(0, 3600, 60))
    monkeypatch.setattr("benchmarks.soak_memory.time.perf_counter", lambda: float(next(minutes)))
    child = subprocess.Popen([sys.executable, "-c", _GROWER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        trend = MemoryTrend(os.getpid())
        trend.sample()
        for _ in range(6):
            child.stdin.write("more\n")
            child.stdin.flush()
            child.stdout.readline()
            trend.sample()
        summary = trend.summary()
    finally:
        child.kill()
        child.wait()
    by_pid = {p["pid"]: p for p in summary["processes"]}
    grower, driver = by_pid[child.pid], by_pid[os.getpid()]
    assert grower["title"].startswith("python")  # `python -c`: the program
    assert driver["title"].startswith("driver (")
    assert grower["end_mib"] - grower["start_mib"] >= 40  # six steps of 8 MiB
    # the samples are one step apart: the slope is per minute of sampling, so compare it with the other process's
    assert grower["slope_second_half_mib_per_min"] > 0
    assert abs(driver["end_mib"] - driver["start_mib"]) < grower["end_mib"] - grower["start_mib"]
    lines = memory_table(summary, min_mib=0)
    assert grower["rss_end_mib"] - grower["rss_start_mib"] >= 40 and grower["rss_slope_second_half_mib_per_min"] > 0
    assert f"steepest in the second half: {grower['title']} (pid {child.pid})" in lines[-1]
    assert summary["samples"] == 7 and len(summary["series"]) == 7


# A process whose 64 MiB are shared with a forked sibling until the sibling ends (a line on stdin ends it).
_SHARER = """
import os, sys
held = bytearray(64 * 2**20)
for i in range(0, len(held), 4096):
    held[i] = 1
r, w = os.pipe()
if os.fork() == 0:
    os.read(r, 1)  # the sibling: holds the shared pages until told to end
    os._exit(0)
print("forked", flush=True)
sys.stdin.readline()
os.write(w, b"x")
os.wait()
print("ended", flush=True)
sys.stdin.readline()
"""


def test_a_neighbours_exit_moves_a_process_pss_but_not_its_rss():
    # On a shared machine every process's PSS stepped up when other programs' Rays ended: the RSS tells growth apart.
    child = subprocess.Popen([sys.executable, "-c", _SHARER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "forked"
        trend = MemoryTrend(os.getpid())
        trend.sample()
        child.stdin.write("end\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "ended"
        trend.sample()
        summary = trend.summary()
    finally:
        child.kill()
        child.wait()
    sharer = {p["pid"]: p for p in summary["processes"]}[child.pid]
    assert sharer["end_mib"] - sharer["start_mib"] >= 24  # its half of the 64 MiB became its own
    assert abs(sharer["rss_end_mib"] - sharer["rss_start_mib"]) < 4


def _title_when(pid: int, expected: str, timeout_s: float = 10.0) -> str | None:
    """The process's title once it reads `expected` (a child's title changes at its exec), or the last one read."""
    deadline = time.monotonic() + timeout_s
    title = process_title(pid)
    while title != expected and time.monotonic() < deadline:
        time.sleep(0.02)
        title = process_title(pid)
    return title


def test_titles_are_rays_for_its_workers_and_the_module_or_script_for_python(tmp_path):
    script = tmp_path / "agent.py"
    script.write_text("import sys; sys.stdin.read()")
    children = [subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE),
                subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                subprocess.Popen(["bash", "-c", "exec -a 'ray::ServeReplica:app:det ' sleep 30"]),
                subprocess.Popen(["bash", "-c", "exec -a 'ray::ServeController.listen_for_change' sleep 30"])]
    try:
        assert _title_when(children[0].pid, "agent.py") == "agent.py"
        assert _title_when(children[1].pid, "http.server") == "http.server"
        assert _title_when(children[2].pid, "ray::ServeReplica:app:det") == "ray::ServeReplica:app:det"
        # busy with a task, Ray titles the worker `actor.method`: it is still that actor's process
        assert _title_when(children[3].pid, "ray::ServeController") == "ray::ServeController"
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert process_title(children[0].pid) is None  # ended: no title
