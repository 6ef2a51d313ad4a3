"""Per-process CPU seconds over a window: python cpu_sample.py SECONDS"""
import os, sys, time, collections
HZ = os.sysconf("SC_CLK_TCK")
def snap():
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit(): continue
        try:
            with open(f"/proc/{pid}/stat") as f: st = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f: cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:150]
        except OSError: continue
        rest = st[st.rfind(")")+2:].split()
        comm = st[st.find("(")+1:st.rfind(")")]
        out[pid] = (int(rest[11]) + int(rest[12]), comm, cmd)
    return out
w = float(sys.argv[1])
a = snap(); t0 = time.time(); time.sleep(w); b = snap(); dt = time.time() - t0
rows = []
for pid, (t, comm, cmd) in b.items():
    d = (t - a.get(pid, (0,))[0]) / HZ
    if d > 0.05: rows.append((d, pid, comm, cmd))
rows.sort(reverse=True)
tot = sum(r[0] for r in rows)
print(f"window {dt:.1f}s total {tot:.1f} cpu-s ({tot/dt:.2f} cores)")
for d, pid, comm, cmd in rows[:25]:
    print(f"{d:7.2f} {d/dt*100:5.1f}% {pid:>7} {comm[:22]:22} {cmd[:110]}")
