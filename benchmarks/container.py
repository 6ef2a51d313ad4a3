"""The container image against the host: its size and what takes it, cold start to ready with two models, and the
same detect load on the container and on the host, one after the other.

`python -m benchmarks.container [--image localhost/trapline:latest] [--seconds 20] [--concurrency 4] [--host-first]
[--skip-size] [--out FILE]`

The container's cold start is also split into its phases (Ray's GCS, raylet and dashboard up, Serve's controller up,
the app deploying, the last replica started, ready), read from the logs Ray writes in the container.

Build the image first (`make image`, or as tests/e2e/test_container.py does). Both services serve the same store
(the demo models, published without torch as the image's seeding does: demo-detector and demo-species) with the
embedded default's sizing; the host's is `trapline serve --store`, the container's is the image's own command with
the store mounted at /models. Clients are closed loops over the demo photos, run from the host.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_ROOT, machine_info, ratio, write_json
from benchmarks.http_probes import http_closed
from benchmarks.serve_load import free_port
from serve.local import wait_ready

PHOTOS = Path(__file__).resolve().parents[1] / "model_store" / "demo" / "assets" / "photos"


def container_cli() -> str:
    return "podman" if shutil.which("podman") else "docker"


def _wait_ready(url: str, timeout_s: float, alive=None) -> float:
    """serve.local.wait_ready; the moment /readyz answered 200."""
    wait_ready(url, timeout_s, alive)
    return time.monotonic()


def image_size(cli: str, image: str) -> dict[str, Any]:
    """Uncompressed (what `images` shows), gzip'd as a registry stores it, and the biggest packages in the venv."""
    size = int(subprocess.run([cli, "image", "inspect", image, "--format", "{{.Size}}"], capture_output=True,
                              text=True, check=True).stdout.strip())
    gz = subprocess.run(["sh", "-c", f"{cli} save {image} | gzip -1 | wc -c"], capture_output=True, text=True,
                        check=True)
    du = subprocess.run([cli, "run", "--rm", "--entrypoint", "sh", image, "-c",
                         "cd /opt/trapline/lib/python3*/site-packages && du -sm * | sort -n | tail -12 && "
                         "du -sm /opt/trapline | cut -f1"], capture_output=True, text=True, check=True).stdout
    lines = [line for line in du.split("\n") if line.strip()]
    biggest = [{"package": name, "mib": int(mb)} for mb, name in (line.split("\t") for line in lines[:-1])][::-1]
    return {"uncompressed_mb": round(size / 1e6), "gzip_mb": round(int(gz.stdout) / 1e6), "venv_mib": int(lines[-1]),
            "biggest_mib": biggest}


# Where the seconds of a cold start go, from the logs Ray writes in the container (its clock is the host's): the first
# line of each, as (phase, file pattern under the session's logs, regex of the line; its timestamp is taken).
PHASE_LINES = [
    ("ray: GCS up", "gcs_server.out", r"gcs_server_main"),
    ("ray: raylet up", "raylet.out", r"."),
    ("ray: dashboard up", "dashboard.log", r"."),
    ("serve: controller up", "serve/controller_*.log", r"Controller starting"),
    ("serve: app deploying", "serve/controller_*.log", r"Deploying new version"),
    ("serve: last replica started", "serve/controller_*.log", r"started successfully"),
]
STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def start_phases(cli: str, name: str, t_run: float) -> dict[str, Any]:
    """Seconds from `run` to each phase of the container's start (PHASE_LINES), and each replica's own start-up
    as Serve's controller reports it ("started successfully ... after X s")."""
    script = ("cd /tmp/ray/session_latest/logs && for f in gcs_server.out raylet.out dashboard.log "
              "serve/controller_*.log; do echo \"== $f\"; cat \"$f\"; done")
    out = subprocess.run([cli, "exec", name, "sh", "-c", script], capture_output=True, text=True).stdout
    files: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("== "):
            current = files.setdefault(line[3:], [])
        elif current is not None:
            current.append(line)
    phases: dict[str, Any] = {}
    for phase, pattern, regex in PHASE_LINES:
        lines = [x for f, ls in files.items() if fnmatch.fnmatch(f, pattern) for x in ls if re.search(regex, x)]
        stamps = [m.group(1) for x in lines if (m := STAMP.search(x))]
        if stamps:
            when = max(stamps) if phase.startswith("serve: last") else min(stamps)
            at = dt.datetime.strptime(when, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=dt.timezone.utc).timestamp()
            phases[phase] = round(at - t_run, 1)
    replicas = [float(m.group(1)) for ls in files.values() for x in ls
                if (m := re.search(r"started successfully.* after ([\d.]+) ?s", x))]
    phases["replica start-ups (s)"] = replicas
    return phases


@contextlib.contextmanager
def container_service(cli: str, image: str, store: Path, phases: dict[str, Any] | None = None
                      ) -> Iterator[tuple[str, float]]:
    port = free_port()
    name = f"trapline-bench-{port}"
    t0, t_run = time.monotonic(), time.time()
    subprocess.run([cli, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", "--shm-size", "1g",
                    "-v", f"{store}:/models", image], check=True, capture_output=True)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = _wait_ready(url, 600)
        if phases is not None:
            phases.update(start_phases(cli, name, t_run))
            phases["ready (GET /readyz 200)"] = round(ready - t0, 1)
        yield url, ready - t0
    finally:
        subprocess.run([cli, "stop", "-t", "60", name], capture_output=True)
        subprocess.run([cli, "rm", "-f", "-v", name], capture_output=True)  # -v: the image's anonymous volumes


@contextlib.contextmanager
def host_service(store: Path) -> Iterator[tuple[str, float]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "trapline.cli", "serve", "--store", str(store), "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = _wait_ready(url, 600, lambda: proc.poll() is None)
        yield url, ready - t0
    finally:
        proc.terminate()
        proc.wait(120)


def measure(name: str, started, payloads: list[bytes], seconds: float, concurrency: int) -> dict[str, Any]:
    with started as (url, ready_s):
        http_closed(f"{url}", payloads, 2, 3)  # warm-up
        load = http_closed(url, payloads, concurrency, seconds)
    print(f"{name}: ready in {ready_s:.1f} s, {load['rps']} detect/s at {concurrency} clients "
          f"(p50 {load['p50_ms']} ms, statuses {load['statuses']})", flush=True)
    return {"ready_s": round(ready_s, 1), **load}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="localhost/trapline:latest")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--host-first", action="store_true", help="measure the host first (load drifts: run both ways)")
    parser.add_argument("--skip-size", action="store_true", help="skip the size (gzip of the whole image: ~1 min)")
    parser.add_argument("--out", default=str(DEFAULT_ROOT / "container.json"))
    args = parser.parse_args(argv)
    from model_store import ModelStore
    from model_store.demo.publish import publish_demo

    cli = container_cli()
    result: dict[str, Any] = {"machine": machine_info(), "image": args.image, "cli": cli}
    if not args.skip_size:
        result["size"] = image_size(cli, args.image)
        print(f"size: {result['size']}", flush=True)
    payloads = [p.read_bytes() for p in sorted(PHOTOS.glob("*.jpg"))]
    with tempfile.TemporaryDirectory(prefix="trapline-bench-store-") as tmp:
        store = Path(tmp)
        store.chmod(0o755)
        publish_demo(ModelStore(str(store)), with_torch=False)
        phases: dict[str, Any] = {}
        runs = {"container": lambda: container_service(cli, args.image, store, phases),
                "host": lambda: host_service(store)}
        for name in (["host", "container"] if args.host_first else ["container", "host"]):
            result[name] = measure(name, runs[name](), payloads, args.seconds, args.concurrency)
        result["container"]["start_phases_s"] = phases
        print(f"container cold start, seconds from `run`: {phases}", flush=True)
    result["container_over_host"] = ratio(result["container"]["rps"], result["host"]["rps"])
    print(f"container / host detect throughput: {result['container_over_host']}")
    print(f"written: {write_json(args.out, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
