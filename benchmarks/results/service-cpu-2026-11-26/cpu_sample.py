"""Per-process CPU seconds over a window, read from /proc: `python cpu_sample.py SECONDS`.

How the 2026-11-26 figures of a job through `trapline serve` were taken (BENCHMARKS.md §3)."""

import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def snap() -> dict[str, tuple[int, str, str]]:
    """pid -> (user + system ticks, short name, command line) of every process."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:150]
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        out[pid] = (int(rest[11]) + int(rest[12]), comm, cmd)
    return out


def main() -> None:
    window = float(sys.argv[1])
    before, t0 = snap(), time.time()
    time.sleep(window)
    after, dt = snap(), time.time() - t0
    rows = []
    for pid, (ticks, comm, cmd) in after.items():
        spent = (ticks - before.get(pid, (0,))[0]) / HZ
        if spent > 0.05:
            rows.append((spent, pid, comm, cmd))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"window {dt:.1f}s total {total:.1f} cpu-s ({total / dt:.2f} cores)")
    for spent, pid, comm, cmd in rows[:25]:
        print(f"{spent:7.2f} {spent / dt * 100:5.1f}% {pid:>7} {comm[:22]:22} {cmd[:110]}")


if __name__ == "__main__":
    main()
