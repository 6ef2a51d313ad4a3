"""CPU a request at 2 clients with the null model: trapline's replica, Serve's proxy, all of Ray and the load
generator, against the minimal Serve app, from each process's CPU seconds in /proc over a closed-loop run
(benchmarks.machine_load.tree_cpu_s).

    PYTHONPATH=. .venv/bin/python benchmarks/results/issue60-quiet-2026-11-27/prof_cpu.py [SECONDS]

A lab script for benchmarks/results/NOTES.md section 22 (not part of `make bench`)."""

import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_model import ensure_null_model
from benchmarks.common import DEFAULT_ROOT, DEFAULT_STORE, local_ray
from benchmarks.http_probes import http_closed
from benchmarks.images import FULL_HD, ensure_images, load_bytes
from benchmarks.machine_load import tree_cpu_s
from benchmarks.minimal_serve import minimal_service
from benchmarks.serve_load import free_port, serve_config, service
from model_store import ModelStore

RAY_PROCESSES = "ray::|gcs_server|raylet|dashboard|log_monitor"


def pids(pattern: str) -> list[int]:
    return [int(p) for p in subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()]


def measure(name: str, url: str, replica_pattern: str, payloads: list[bytes], seconds: float) -> None:
    http_closed(url, payloads, 2, 3)  # warm-up
    groups = {"replica": pids(replica_pattern), "proxy": pids("ProxyActor"), "all Ray": pids(RAY_PROCESSES)}
    before, client0 = {k: tree_cpu_s(v) for k, v in groups.items()}, time.process_time()
    res = http_closed(url, payloads, 2, seconds)
    per = {k: round((tree_cpu_s(v) - before[k]) * 1000 / res["requests"], 2) for k, v in groups.items()}
    per["load generator"] = round((time.process_time() - client0) * 1000 / res["requests"], 2)
    print(f"{name}: {res['rps']} req/s at 2 clients; CPU ms a request: {per}", flush=True)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 12.0
    store = ModelStore(str(DEFAULT_STORE))
    ref = ensure_null_model(store)
    payloads = load_bytes(ensure_images(64, FULL_HD, root=Path(DEFAULT_ROOT) / "images"))
    replica = {"num_cpus": 1.75, "max_batch_size": 8, "bulk_max_batch_size": 1, "max_online_requests": 8,
               "max_queued_requests": 0}  # as benchmarks.doors' http section
    with local_ray(2):
        with service(None, serve_config(store.root, "bench-null", **replica)) as url:
            measure("trapline", url, "ServeReplica:trapline", payloads, seconds)
        with minimal_service(store.root, ref, num_cpus=replica["num_cpus"], port=free_port()) as url:
            measure("minimal app", url, "ServeReplica:minimal", payloads, seconds)


if __name__ == "__main__":
    main()
