"""CPU seconds per thread of the processes whose command line holds PATTERN, over a window read from /proc.

python thread_cpu.py SECONDS PATTERN   (thread ids map to names with `py-spy dump --pid PID`: *-thread-names.txt)
"""

import collections
import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def matching_pids(pattern: str) -> list[str]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pattern in cmd:
            out.append(pid)
    return out


def cpu_ticks(pids: list[str]) -> dict[tuple[str, str], int]:
    out = {}
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[(pid, tid)] = int(fields[11]) + int(fields[12])  # utime + stime
    return out


def main() -> None:
    seconds, pattern = float(sys.argv[1]), sys.argv[2]
    pids = matching_pids(pattern)
    before, t0 = cpu_ticks(pids), time.time()
    time.sleep(seconds)
    after, window = cpu_ticks(pids), time.time() - t0
    used = collections.Counter({k: (t - before.get(k, 0)) / HZ for k, t in after.items()})
    print(f"window {window:.1f}s pids {pids}")
    for (pid, tid), s in used.most_common():
        if s > 0.02:
            print(f"{pid:>8} {tid:>8} {s:7.2f} s {s / window * 100:5.1f}%")


if __name__ == "__main__":
    main()
