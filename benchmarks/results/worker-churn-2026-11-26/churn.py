"""Worker churn in a job's local Ray: distinct worker processes started during `trapline reprocess`, with and
without a higher num_workers_soft_limit. Usage: churn.py ARCHIVE MODEL STORE [extra env k=v ...]"""
import json, os, shutil, subprocess, sys, time
archive, model, store, *extra = sys.argv[1:]
env = dict(os.environ)
for kv in extra:
    k, v = kv.split("=", 1); env[k] = v
out = "/tmp/churn-tables"
shutil.rmtree(out, ignore_errors=True)
t0 = time.time()
p = subprocess.Popen(["/work/main/.venv/bin/python", "-m", "trapline.cli", "reprocess", "--archive", archive, "--out", out,
                      "--model", model, "--store", store, "--via", "actors", "--json"], env=env,
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd="/work/main")
pids = {}
def cpu(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None
while p.poll() is None:
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = open(f"/proc/{d}/cmdline").read()
            except OSError:
                continue
            if cmd.startswith("ray::"):
                c = cpu(d)
                if c is not None:
                    pids[d] = (cmd.split("\0")[0], max(c, pids.get(d, ("", 0))[1]))
    time.sleep(0.3)
rep = json.loads(p.stdout.read())
names = {}
for name, c in pids.values():
    n = names.setdefault(name, [0, 0.0]); n[0] += 1; n[1] += c
print(json.dumps({"env": extra, "wall_s": round(time.time() - t0, 1), "images_per_s": rep["images_per_s"],
                  "steady": rep["steady_images_per_s"], "ray_processes": len(pids),
                  "by_name": {k: [v[0], round(v[1], 1)] for k, v in sorted(names.items())}}))
