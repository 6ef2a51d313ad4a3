"""The whole job, as a user times it: `trapline reprocess` and Ultralytics' predict over the same folder.

`python -m benchmarks.whole_job --model NAME:VERSION[,NAME:VERSION...] --onnx EXPORT.onnx
 --peer-python /work/refenv/bin/python [--counts 1,200,600] [--reprocess-args "--via actors"] [--serve]
 [--repeats N]`

Each timing is one whole process from `exec` to exit, measured from outside: for trapline,
`trapline reprocess --archive DIR --out OUT --model REF` (Python and Ray start-up, planning, the model
loads, every image read, decoded, detected and committed to the tables, the run manifest, shutdown);
for the peer, `benchmarks/peer_ultralytics.py --whole` in the peer's own venv: import Ultralytics, load
the export, `predict(source=DIR, stream=True)` with the library's defaults over every image, exit (it
writes nothing, trapline writes its tables). Both read the same folder of generated 1080p JPEGs
(`benchmarks.images`, copies in one flat folder per count) with the same export: `--onnx` is the file
the trapline versions were published from (an int8 version from `trapline models quantize` is
compared with the peer running the export it was made from, which is what a user of Ultralytics
runs). `--reprocess-args` is passed to every `trapline reprocess` as is, so any door can be timed
the same way (`--via actors`, `--via serve`, ...). Counts run in order, the peer first, then each
trapline version; `--repeats N` times each count N times, alternating who goes first (peer, trapline, then
trapline, peer), so on a shared machine both see the same load; every process records the 1-minute load
average before and after it. Before any timing, one untimed process of each side over the smallest folder
primes what a first run after an install pays once (`.pyc` compilation, the page cache; `--no-prime` skips it).

`--serve`: the job with a `trapline serve` running, as a user would have it: before any timing the script
starts `trapline serve --store STORE --model NAME` for the models of `--model` (its own local Ray, in the
background, its HTTP on a free loopback port), waits for GET /readyz, then times each `trapline reprocess`
with no flags about the service: `--via auto` finds it through the record `trapline serve` leaves (a
private `$TRAPLINE_STATE_DIR` under `--work`, so another user's service on the machine is never picked),
and a row is refused unless the job said it ran through it. The service's start-up is recorded, not
counted in any row (it is started once and serves every later job); it is stopped at the end (SIGTERM, as Ctrl-C).

Writes `--out` (JSON, default bench-results/whole_job.json) and prints the table with ratios
(peer seconds ÷ trapline seconds: above 1, trapline's whole job is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_IMAGES, DEFAULT_ROOT, DEFAULT_STORE, machine_info, markdown_table, ratio
from benchmarks.images import FULL_HD, ensure_images

PEER_SCRIPT = Path(__file__).with_name("peer_ultralytics.py")
DISTINCT_FRAMES = 64  # generated once; larger folders repeat them (decode and inference cost the same)


def folder_of(count: int, frames: list[Path], work: Path) -> Path:
    """A flat folder of `count` JPEG copies (Ultralytics does not recurse; trapline skips symlinks)."""
    folder = work / f"images-{count}"
    if not folder.is_dir() or len(list(folder.glob("*.jpg"))) != count:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for i in range(count):
            shutil.copyfile(frames[i % len(frames)], folder / f"{i:05d}.jpg")
    return folder


def timed(argv: list[str], timeout_s: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Wall seconds of one process from start to exit, and the tail of its output if it failed."""
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}")
    # The 1-minute load average around the process: on a shared machine it says which timings to trust.
    load = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    return {"wall_s": round(wall, 2), "stdout": proc.stdout, "stderr": proc.stderr, "load": load}


SERVE_LINE = "through the running trapline serve at"  # the first line of a job that found the service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_service(models: list[str], store: str, work: Path, timeout_s: float) -> Iterator[dict[str, Any]]:
    """`trapline serve` of `models` in the background, as a user starts it; yields once /readyz answers 200."""
    from ground.errors import ServeStartError
    from serve.local import wait_ready

    port = free_port()
    log = open(work / "serve.log", "w")  # noqa: SIM115 - open for the service's whole life
    argv = [sys.executable, "-m", "trapline.cli", "serve", "--store", store, "--port", str(port),
            *[a for m in models for a in ("--model", m)]]
    load, t0 = os.getloadavg()[0], time.perf_counter()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=service_env(work))
    try:
        url = f"http://127.0.0.1:{port}"
        try:  # a failed deploy exits and answers nothing: stop waiting then, with its last line
            wait_ready(url, timeout_s, alive=lambda: proc.poll() is None)
        except ServeStartError as exc:
            raise RuntimeError(f"trapline serve was not ready ({exc}): {tail(work)}") from None
        info = {"argv": argv[1:], "url": url, "ready_s": round(time.perf_counter() - t0, 1),
                "load": [round(load, 1), round(os.getloadavg()[0], 1)]}
        print(f"trapline serve ready at {url} after {info['ready_s']} s", flush=True)
        yield info
    finally:
        # SIGTERM, which `trapline serve` takes as Ctrl-C (Serve and its Ray shut down, its record removed);
        # SIGINT itself is ignored by a process started in the background of a non-interactive shell.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def tail(work: Path) -> str:
    lines = (work / "serve.log").read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"


def service_env(work: Path) -> dict[str, str]:
    """The environment of the service and the jobs: a state directory of their own, so they find each other."""
    return {**os.environ, "TRAPLINE_STATE_DIR": str(work / "state")}


def processed_images(summary: str) -> int | None:
    """Images the run processed without failing, from its printed summary ('processed N: ok .., failed F')."""
    found = re.findall(r"processed (\d+): ok \d+, empty \d+, failed (\d+)", summary)
    return int(found[-1][0]) - int(found[-1][1]) if found else None


def first_line(res: dict[str, Any]) -> str:
    """The job's first line of its own (after Ray's pointer to its logs): the door `--via auto` chose, and why."""
    lines = [ln for ln in (res["stderr"] + res["stdout"]).splitlines() if ln.strip() and not ln.startswith("Ray logs:")]
    return lines[0] if lines else ""


def trapline_argv(folder: Path, out: Path, ref: str, store: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "trapline.cli", "reprocess", "--archive", str(folder), "--out", str(out),
            "--model", ref, "--store", store, *extra]


def peer_argv(peer_python: str, onnx: Path, folder: Path, imgsz: int) -> list[str]:
    return [peer_python, str(PEER_SCRIPT), "--model", str(onnx), "--images", str(folder), "--imgsz", str(imgsz),
            "--whole"]


def export_imgsz(onnx: Path) -> int:
    """The input size Ultralytics wrote into the export's metadata (what its predict uses for it)."""
    import onnx as onnx_lib

    meta = {p.key: p.value for p in onnx_lib.load(str(onnx), load_external_data=False).metadata_props}
    if "imgsz" not in meta:
        raise SystemExit(f"{onnx} has no Ultralytics imgsz metadata; pass --imgsz")
    return max(json.loads(meta["imgsz"]))


def trapline_run(folder: Path, work: Path, ref: str, count: int, args: argparse.Namespace, extra: list[str],
                 env: dict[str, str] | None) -> dict[str, Any]:
    """One timed `trapline reprocess` of the whole folder into a fresh output; refused unless it did all the work."""
    out = work / f"out-{ref.replace(':', '-').replace('@', '-')}-{count}"
    shutil.rmtree(out, ignore_errors=True)
    res = timed(trapline_argv(folder, out, ref, args.store, extra), args.timeout_s, env)
    shutil.rmtree(out, ignore_errors=True)
    processed = processed_images(res["stdout"])
    if processed != count:  # a job that skipped images would time less work than the peer did
        raise RuntimeError(f"trapline reprocess {ref} processed {processed} of {count}:\n{res['stdout']}")
    if args.serve and SERVE_LINE not in res["stderr"] + res["stdout"]:  # it must have found the service
        raise RuntimeError(f"trapline reprocess {ref} did not run through the service:\n{res['stderr'][-2000:]}")
    return res


def run(args: argparse.Namespace) -> dict[str, Any]:
    refs = [r for r in args.model.split(",") if r]
    counts = [int(c) for c in args.counts.split(",") if c]
    extra = shlex.split(args.reprocess_args)
    onnx = Path(args.onnx).resolve()
    imgsz = args.imgsz or export_imgsz(onnx)
    work = Path(args.work)
    frames = ensure_images(min(DISTINCT_FRAMES, max(counts)), FULL_HD, root=args.images_root)
    rows: list[dict[str, Any]] = []
    env = service_env(work) if args.serve else None
    if args.prime:  # one untimed process each first: a fresh venv compiles its .pyc files, a cold disk pages in
        folder = folder_of(min(counts), frames, work)
        timed(peer_argv(args.peer_python, onnx, folder, imgsz), args.timeout_s)
        for ref in refs:
            trapline_run(folder, work, ref, min(counts), args, extra, env)
    for count in counts:
        folder = folder_of(count, frames, work)
        for rep in range(args.repeats):
            peer_first = rep % 2 == 0
            peer = timed(peer_argv(args.peer_python, onnx, folder, imgsz), args.timeout_s) if peer_first else None
            runs = []
            for ref in refs:
                runs.append((ref, trapline_run(folder, work, ref, count, args, extra, env)))
            if not peer_first:
                peer = timed(peer_argv(args.peer_python, onnx, folder, imgsz), args.timeout_s)
            peer_json = json.loads(peer["stdout"].strip().splitlines()[-1])
            print(f"{count} images: Ultralytics predict {peer['wall_s']} s ({peer_json['boxes']} boxes, load "
                  f"{peer['load']})", flush=True)
            for ref, res in runs:
                rate = re.findall(r"; ([\d.]+) images/s", res["stdout"])
                rows.append({"images": count, "repeat": rep, "first": "peer" if peer_first else "trapline",
                             "trapline": ref, "trapline_s": res["wall_s"],
                             "trapline_images_per_s": round(count / res["wall_s"], 2), "peer_s": peer["wall_s"],
                             "peer_images_per_s": round(count / peer["wall_s"], 2),
                             "peer_÷_trapline": ratio(peer["wall_s"], res["wall_s"]),
                             "job_images_per_s": float(rate[-1]) if rate else None,  # the job's own rate, in Ray
                             "first_line": first_line(res),  # which door the job took, and why
                             "load_peer": peer["load"], "load_trapline": res["load"]})
                print(f"{count} images: trapline reprocess {ref} {res['wall_s']} s (load {res['load']}) -> ratio "
                      f"{rows[-1]['peer_÷_trapline']}", flush=True)
    return {"machine": machine_info(), "onnx": str(onnx), "imgsz": imgsz, "reprocess_args": extra,
            "serve": args.serve, "repeats": args.repeats, "primed": args.prime,
            "peer_python": args.peer_python, "command": shlex.join(["python", "-m", "benchmarks.whole_job",
                                                                    *sys.argv[1:]]),
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.whole_job", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True,
                   help="trapline version(s) to time, comma-separated (e.g. demo-trained:1,demo-trained:1-int8)")
    p.add_argument("--onnx", required=True, help="the Ultralytics export the peer runs (the one published as --model)")
    p.add_argument("--peer-python", required=True, help="python of a venv with ultralytics (see peer_ultralytics.py)")
    p.add_argument("--counts", default="1,200,600", help="folder sizes, in order (default 1,200,600)")
    p.add_argument("--reprocess-args", default="", help='passed to every `trapline reprocess`, e.g. "--via actors"')
    p.add_argument("--serve", action="store_true",
                   help="time the jobs with a `trapline serve` of the models running (started and stopped here)")
    p.add_argument("--no-prime", dest="prime", action="store_false",
                   help="skip the untimed first process of each side (it primes .pyc files and the page cache)")
    p.add_argument("--repeats", type=int, default=1, help="timings per count, alternating who goes first")
    p.add_argument("--imgsz", type=int, default=None, help="the peer's imgsz (default: the export's metadata)")
    p.add_argument("--store", default=str(DEFAULT_STORE))
    p.add_argument("--images-root", default=str(DEFAULT_IMAGES))
    p.add_argument("--work", default=str(DEFAULT_ROOT / "whole_job"))
    p.add_argument("--timeout-s", type=float, default=1800.0, help="per process")
    p.add_argument("--out", default=str(DEFAULT_ROOT / "whole_job.json"))
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.serve:
        models = sorted({r.split(":")[0].split("@")[0] for r in args.model.split(",") if r})
        with running_service(models, args.store, work, args.timeout_s) as service:
            result = {**run(args), "service": service}
    else:
        result = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown_table(result["rows"], ["images", "repeat", "trapline", "trapline_s", "peer_s", "load_trapline",
                                          "load_peer", "peer_÷_trapline"]))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
