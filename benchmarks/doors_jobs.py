"""One archive job of benchmarks/doors.py: `batch.reprocess.job` in-process on the local Ray, timed whole and steady."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from benchmarks.batch_throughput import reprocess_argv, run_job


def batch_run(archive: Path, work: Path, store: str, ref: str, via: str, decode: str, cpus: int,
              executor: str = "pool") -> dict[str, Any]:
    out = work / f"out-{ref.replace(':', '-')}-{via}-{decode}"
    shutil.rmtree(out, ignore_errors=True)
    # Parts of 100 images: the job's steady rate (from its first part to its last) needs several parts.
    extra = ["--decode", decode, "--read-cpus", "0.25", "--rows-per-file", "100"]
    if via == "serve":
        extra += ["--num-cpus", "0.25", "--concurrency", "1", "--batch-size", "16"]
    else:  # one actor per CPU, each one ONNX thread, leaving room for a read task and the writer; the product's
        # batch size (16): batches of 8 ran the null model at 66-95 images/s against 96-138 (Ray Data's cost per call)
        extra += ["--concurrency", str(cpus), "--num-cpus", f"{(cpus - 0.5) / cpus:.2f}", "--executor", executor]
    res = run_job(reprocess_argv(archive, out, ref, store, via, None, extra))
    shutil.rmtree(out, ignore_errors=True)
    return {"model": ref, "via": via, "decode": decode, "images": res["processed"],
            "images_per_s": res["job_images_per_s"] or res["images_per_s"],
            "steady_images_per_s": res["job_steady_images_per_s"], "start_s": _start_s(res),
            "peak_mib": res["peak_mib"], "timeline": res.get("timeline") or {}}


def _start_s(res: dict[str, Any]) -> float | None:
    """Seconds the job lost to start-up (Ray Data, actors loading the model): its time less images / steady rate."""
    steady, wall = res.get("job_steady_images_per_s"), res.get("job_wall_s")
    if not steady or not wall:
        return None
    return round(max(0.0, wall - res["processed"] / steady), 1)
