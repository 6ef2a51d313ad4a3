"""Antenna's job time with trapline as its processing service vs Antenna's own minimal service (which does nothing).

`python -m benchmarks.antenna --images 20` (needs ../shared/antenna beside the repo's clone, or
$TRAPLINE_ANTENNA_HARNESS; it runs setup.sh and start.sh, so Antenna's minimal service on :22000 is up)

Four jobs through the real Antenna, each on N freshly uploaded captures (Antenna's synthetic 1024x768 moths):
push (Antenna's Celery worker POSTs to `/process`) and pull (async jobs: NATS tasks), each with trapline (the demo
detector routed to the demo species classifier, on a local Ray started here) and with Antenna's minimal service
(pipeline `constant`, its pull mode through the harness's bundled bridge). Timed: the job alone, from the moment
`run_job.py` creates it to Antenna's SUCCESS (uploads and registration are not), as `run_job.py` reports it.

Then (unless --no-reprocess) the issue's pull-mode target: the same captures the pull job took from Antenna's queue
(the files Antenna stored, under $ANTENNA_HOME/antenna/ami/media/example_captures/<station>/) through `trapline
reprocess` with the same detector and classifier, on a fresh local Ray of the same CPUs once the service is down.
Printed: pull images/s (images / Antenna's job time) ÷ reprocess images/s, both its own rate while images flowed
(start-up and listing excluded, as the job time excludes uploads) and over its whole wall time. With few images
Ray Data's start-up dominates the reprocess: use --images 100 or more for the figure, on a quiet machine (load < 1.5).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from benchmarks.batch_throughput import reprocess_argv
from benchmarks.batch_throughput import run_job as run_reprocess
from benchmarks.common import local_ray, ratio
from model_store import ModelStore
from model_store.demo.publish import ASSETS, DEMO_NAME, SPECIES_NAME, demo_config, publish_demo
from serve.local import free_port, run_local

REPO = Path(__file__).resolve().parents[1]
HARNESS = Path(os.environ.get("TRAPLINE_ANTENNA_HARNESS", REPO.parent / "shared" / "antenna"))
MINIMAL = "http://127.0.0.1:22000"
MOTH_SCORE_THRESHOLD = 0.15


def run_job(*args: str, stderr=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HARNESS / "run_job.py"), *args], text=True,
                            stdout=subprocess.PIPE, stderr=stderr)


def finish(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=1800)
    result = json.loads(out.strip().splitlines()[-1])
    t = result["timings_s"]
    result["job_s"] = round(t["job_finished"] - t["service_registered"], 2)
    return result


def pull_native(door: str, images: int) -> tuple[dict, dict]:
    job = run_job("trapline", "--mode", "pull-native", "--images", str(images), stderr=subprocess.PIPE)
    given: dict[str, str] = {}
    for line in job.stderr:
        given.update(w.split("=", 1) for w in line.split() if w.startswith("ANTENNA_") and "=" in w)
        if "ANTENNA_PROJECT_ID" in given:
            break
    threading.Thread(target=job.stderr.read, daemon=True).start()
    worker = subprocess.Popen([sys.executable, "-m", "trapline.cli", "antenna", "work", "--api", given["ANTENNA_API"],
                               "--project", given["ANTENNA_PROJECT_ID"], "--service", door,
                               "--poll-interval-s", "0.5", "--json"],
                              env={**os.environ, "ANTENNA_TOKEN": given["ANTENNA_TOKEN"]}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        result = finish(job)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=120)
    return result, json.loads(out)


def harness_home() -> Path:
    return Path(os.environ.get("ANTENNA_HOME", "/tmp/antenna-harness-home"))


def harness_running() -> bool:
    """Whether the harness's Antenna is up (its Django process alive): whoever started it stops it after."""
    pid = harness_home() / "run" / "django.pid"
    return pid.exists() and subprocess.run(["kill", "-0", pid.read_text().split()[0]],
                                           capture_output=True).returncode == 0


def captures_root() -> Path:
    """Where Antenna keeps uploaded captures, one directory per station (the harness's MEDIA_ROOT)."""
    return harness_home() / "antenna" / "ami" / "media" / "example_captures"


def stations() -> set[Path]:
    root = captures_root()
    return {p for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()


def reprocess_same_images(captures: Path, store: str, cpus: int) -> dict:
    """`trapline reprocess` of the pull job's captures with the service's pipeline (detector -> species)."""
    out = Path(tempfile.mkdtemp(prefix="bench-antenna-reprocess-"))
    with local_ray(cpus):
        return run_reprocess(reprocess_argv(captures, out, DEMO_NAME, store, "actors", None,
                                            ["--classify", SPECIES_NAME]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4, help="push: images per /process request")
    parser.add_argument("--reprocess", action=argparse.BooleanOptionalAction, default=True,
                        help="then `trapline reprocess` of the pull job's captures: pull mode ÷ reprocess")
    parser.add_argument("--cpus", type=int, default=2, help="the local Ray's CPUs (service, then reprocess)")
    args = parser.parse_args(argv)
    print(f"load before: {os.getloadavg()}")
    running = harness_running()
    try:
        return _run(args)
    finally:  # left as found: an Antenna started here keeps its slow task redelivery for whoever comes next
        if not running:
            subprocess.run(["bash", str(HARNESS / "stop.sh")], capture_output=True, timeout=120)


def _run(args: argparse.Namespace) -> int:
    for script in ("setup.sh", "start.sh"):
        subprocess.run(["bash", str(HARNESS / script)], check=True, capture_output=True)
    store = ModelStore(str(Path(tempfile.mkdtemp(prefix="bench-antenna-")) / "store"))
    for version in ("1", "2"):  # Antenna's synthetic moths are not the rendered mammals the demo detector learnt:
        # below its default threshold (0.25) it finds a few boxes on every series of them (0.25: on 3 series in 5)
        store.publish(ASSETS / f"v{version}" / "model.onnx", DEMO_NAME, version,
                      {**demo_config("onnx-yolo", version), "score_threshold": MOTH_SCORE_THRESHOLD})
    publish_demo(store)  # the species classifier; demo-detector@production -> 1
    port = free_port()
    config = {"store": store.root, "http": {"port": 0},
              "models": [{"name": DEMO_NAME, "max_batch_size": 4, "classify": [{"model": SPECIES_NAME}]}],
              "classifiers": [{"name": SPECIES_NAME, "num_cpus": 0.5}],
              # the harness's Antenna serves its media on 127.0.0.1: allowed by name (the fetch guard)
              "antenna": {"port": port, "fetch": {"private_hosts": ["127.0.0.1"]},
                          "pipelines": [{"slug": "trapline-demo", "detector": DEMO_NAME, "classifier": SPECIES_NAME}]}}
    n, b = str(args.images), str(args.batch_size)
    rows = []
    with local_ray(args.cpus), run_local(config, environ={}):  # Ray's lines to its log file, as `trapline serve`
        door = f"http://127.0.0.1:{port}"
        for name, proc in (("push, minimal", lambda: run_job(MINIMAL, "--pipeline", "constant", "-n", n,
                                                             "--batch-size", b, "--allow-empty")),
                           ("push, trapline", lambda: run_job(door, "-n", n, "--batch-size", b)),
                           ("pull, minimal (bridge)", lambda: run_job(MINIMAL, "--mode", "pull", "--pipeline",
                                                                      "constant", "-n", n, "--allow-empty"))):
            r = finish(proc())
            rows.append((name, r["ok"], r["job_s"], r["detections_saved"], r["classifications_saved"]))
        before = stations()
        r, report = pull_native(door, args.images)
        pulled = sorted(stations() - before)  # the station run_job.py made for the pull job: its captures
        rows.append(("pull, trapline antenna work", r["ok"], r["job_s"], r["detections_saved"],
                     r["classifications_saved"]))
        pull_rate = args.images / r["job_s"]
    print(f"{'job':<30} {'ok':<5} {'job s':>7} {'s/image':>8} {'images/s':>9} {'dets':>5} {'classif':>7}")
    for name, ok, job_s, dets, cls in rows:
        print(f"{name:<30} {ok!s:<5} {job_s:>7.2f} {job_s / args.images:>8.3f} {args.images / job_s:>9.2f} "
              f"{dets:>5} {cls:>7}")
    print(f"trapline antenna work's own figure: {report['tasks_answered']} tasks, "
          f"{report['tasks_answered'] / report['seconds']:.2f} images/s over its whole run ({report['batches']} "
          "batches; includes its idle polling before and after the job)")
    if args.reprocess:
        if len(pulled) != 1 or len(list(pulled[0].glob("*.jpg"))) != args.images:
            print(f"reprocess: cannot tell the pull job's captures apart (new stations {pulled}); skipped")
        else:
            rep = reprocess_same_images(pulled[0], store.root, args.cpus)
            print(f"same {args.images} images through trapline reprocess ({pulled[0]}): "
                  f"{rep['job_images_per_s']} images/s while images flowed, {rep['images_per_s']} over "
                  f"{rep['wall_s']} s wall (planning included, Ray start-up not); processed {rep['processed']}")
            print(f"pull mode ÷ reprocess: {ratio(pull_rate, rep['job_images_per_s'])} (while flowing), "
                  f"{ratio(pull_rate, rep['images_per_s'])} (wall); target >= 0.8")
    print(f"load: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
