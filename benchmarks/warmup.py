"""What a version's warm-up costs: the passes a Serve replica ran before (1, max_batch_size, a check) vs one pass.

`python -m benchmarks.warmup [--onnx A.onnx,B.onnx] [--max-batch-size 16] [--threads 1] [--repeats 3]`

Each export is published to a scratch store as a user would (no config). Each timing is a fresh process that
loads the version and warms it one way, then runs two batches of `--max-batch-size` blank frames: the first
real batch after the warm-up against the next one says whether the warm-up left anything cold. "before" is
what `serve.versions.warm_and_check` did until 2026-11-25 (`infer` at 1 and at max_batch_size, which a
static batch-1 graph runs one chunk at a time, then a full-pipeline check); "after" is `Detector.warmup`.
The two run interleaved, so a shared machine's load lands on both. Writes `--out` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_ROOT, machine_info

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference"
DEFAULT_ONNX = f"{REFERENCE / 'trained_demo_yolov8.onnx'},{REFERENCE / 'yolov8n_dynamic.onnx'}"


def one(store: str, ref: str, how: str, max_batch: int, threads: int) -> dict[str, Any]:
    """In this (fresh) process: load, warm `how`, then time two full batches."""
    from model_store import ModelStore

    det = ModelStore(store).load_detector(ref, threads=threads)
    blank = det.blank()
    cpu, t0 = time.process_time(), time.perf_counter()
    if how == "before":
        for n in sorted({1, max_batch}):
            det.infer([blank] * n)
        det.predict_batch([blank])
    else:
        det.warmup()
    out = {"warm_s": time.perf_counter() - t0, "warm_cpu_s": time.process_time() - cpu}
    for key in ("first_batch_s", "next_batch_s"):
        t0 = time.perf_counter()
        det.infer([blank] * max_batch)
        out[key] = time.perf_counter() - t0
    return {k: round(v, 3) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.warmup", description=__doc__.splitlines()[0])
    p.add_argument("--onnx", default=DEFAULT_ONNX, help="exports, comma-separated")
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (an actor's default)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(DEFAULT_ROOT / "warmup.json"))
    p.add_argument("--one", nargs=2, metavar=("STORE_REF", "HOW"), help=argparse.SUPPRESS)  # the child process
    args = p.parse_args(argv)
    if args.one:
        store, ref = args.one[0].split("#")
        print(json.dumps(one(store, ref, args.one[1], args.max_batch_size, args.threads)))
        return 0
    from model_store import ModelStore

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(str(Path(tmp) / "store"))
        refs = []
        for i, path in enumerate(p for p in args.onnx.split(",") if p):
            mv = store.publish(path, f"m{i}", "1")
            refs.append((Path(path).name, f"m{i}:1", mv.config))
        for rep in range(args.repeats):
            for name, ref, cfg in refs:
                for how in ("before", "after"):
                    load = os.getloadavg()[0]
                    proc = subprocess.run([sys.executable, "-m", "benchmarks.warmup", "--one", f"{store.root}#{ref}",
                                           how, "--max-batch-size", str(args.max_batch_size),
                                           "--threads", str(args.threads)], capture_output=True, text=True, check=True)
                    row = {"onnx": name, "input_size": list(cfg.input_size), "how": how, "repeat": rep,
                           **json.loads(proc.stdout.strip().splitlines()[-1]), "load": round(load, 1)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    result = {"machine": machine_info(), "max_batch_size": args.max_batch_size, "threads": args.threads,
              "command": " ".join(["python -m benchmarks.warmup", *(argv if argv is not None else sys.argv[1:])]),
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
