"""Worker churn in a job's local Ray: the Ray processes that ran during one `trapline reprocess --via actors`, with
the idle-worker timeout given in the environment. Usage: churn.py ARCHIVE MODEL STORE [RAY_x=value ...]"""

import json
import os
import shutil
import subprocess
import sys
import time

archive, model, store, *extra = sys.argv[1:]
env = dict(os.environ)
env.update(kv.split("=", 1) for kv in extra)
out = "/tmp/churn-tables"
shutil.rmtree(out, ignore_errors=True)
t0 = time.time()
p = subprocess.Popen(["/work/main/.venv/bin/python", "-m", "trapline.cli", "reprocess", "--archive", archive,
                      "--out", out, "--model", model, "--store", store, "--via", "actors", "--json"], env=env,
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd="/work/main")
pids: dict[str, tuple[str, float]] = {}


def cpu(pid: str) -> float | None:
    """The process's user + system CPU seconds so far (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


while p.poll() is None:
    for d in (d for d in os.listdir("/proc") if d.isdigit()):
        try:
            with open(f"/proc/{d}/cmdline") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.startswith("ray::") and (c := cpu(d)) is not None:
            pids[d] = (cmd.split("\0")[0], max(c, pids.get(d, ("", 0.0))[1]))
    time.sleep(0.3)
rep = json.loads(p.stdout.read())
names: dict[str, list] = {}
for name, c in pids.values():
    count_cpu = names.setdefault(name, [0, 0.0])
    count_cpu[0] += 1
    count_cpu[1] += c
print(json.dumps({"env": extra, "wall_s": round(time.time() - t0, 1), "images_per_s": rep["images_per_s"],
                  "steady": rep["steady_images_per_s"], "ray_processes": len(pids),
                  "by_name": {k: [v[0], round(v[1], 1)] for k, v in sorted(names.items())}}))
