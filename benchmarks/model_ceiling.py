"""The raw model ceiling: inference images/s on pre-decoded, pre-letterboxed tensors.

`python -m benchmarks.model_ceiling --model bench-yolov8n:1 [--store DIR] --batch-sizes 1,4,8,16 --threads 1,2
 [--procs 1,2] [--seconds 3] [--device cpu|cuda]`

Only the backend's `run` on a ready input tensor is timed: no decoding, letterboxing, tensor
conversion or box decoding. `--procs P` runs P copies side by side (P sessions, like P
replicas or actors) and adds up their images/s, because on a CPU several single-thread
sessions often beat one multi-thread session; the ceiling is the best of all settings.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
from typing import Any

import numpy as np

from benchmarks.bench_model import ensure_if_bench_model
from benchmarks.common import (
    DEFAULT_MODEL,
    DEFAULT_STORE,
    latency_summary,
    parse_list,
    print_table,
    time_loop,
    write_json,
)
from model_store import ModelStore
from model_store.core.preprocess import to_tensor

WARMUP_RUNS = 2


def _input_batch(detector, batch_size: int) -> np.ndarray:
    from benchmarks.images import camera_trap_frame

    w, h = detector.config.input_size
    prepared, _ = detector.prepare(camera_trap_frame(0, (max(w, 64) * 3, max(h, 64) * 3 * 9 // 16)))
    return to_tensor([prepared] * batch_size, detector.config.preprocess)


def _measure(store_root: str, ref: str, device: str, threads: int, batch_sizes: list[int], seconds: float,
             barrier=None) -> dict[int, list[float]]:
    """Per batch size, the duration of each timed forward pass (`run_tensor`: a static-batch graph runs
    in chunks of its batch); `barrier` keeps parallel copies in step."""
    detector = ModelStore(store_root).load_detector(ref, device=device, threads=threads)
    out = {}
    for bs in batch_sizes:
        batch = _input_batch(detector, bs)
        for _ in range(WARMUP_RUNS):
            detector.run_tensor(batch)
        if barrier is not None:
            barrier.wait()
        out[bs] = time_loop(lambda b=batch: detector.run_tensor(b), seconds, min_iters=3)
    return out


def _worker(args: tuple, barrier, results) -> None:
    try:
        results.put(_measure(*args, barrier=barrier))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        barrier.abort()
        results.put(exc)


def _run_parallel(procs: int, args: tuple) -> list[dict[int, list[float]]]:
    ctx = mp.get_context("spawn")  # never fork a process that holds ONNX Runtime thread pools
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(args, barrier, results), daemon=True) for _ in range(procs)]
    for w in workers:
        w.start()
    got = [results.get() for _ in workers]
    for w in workers:
        w.join()
    errors = [g for g in got if isinstance(g, BaseException)]
    if errors:
        raise RuntimeError(f"a ceiling worker failed: {errors[0]!r}")
    return got


def measure_ceiling(ref: str = DEFAULT_MODEL, store_root: str = str(DEFAULT_STORE), batch_sizes: list[int] = (1, 4, 8),
                    threads: list[int] | None = None, procs: list[int] = (1,), seconds: float = 3.0,
                    device: str = "cpu") -> dict[str, Any]:
    """Measure every (procs, threads, batch size); returns rows, the best row and batch-1 latency."""
    cpus = len(os.sched_getaffinity(0))
    threads = threads or sorted({1, cpus})
    rows = []
    for p in procs:
        for t in threads:
            if p > 1 and p * t > cpus and device == "cpu":
                continue  # oversubscribed: slower by construction, and slows the other settings' runs
            args = (store_root, ref, device, t, list(batch_sizes), seconds)
            per_proc = [_measure(*args)] if p == 1 else _run_parallel(p, args)
            for bs in batch_sizes:
                lat = latency_summary(per_proc[0][bs])
                ips = sum(bs * len(d[bs]) / sum(d[bs]) for d in per_proc)
                rows.append({"procs": p, "threads": t, "batch_size": bs, "images_per_s": round(ips, 2),
                             "batch_p50_ms": lat["p50_ms"], "batch_p95_ms": lat["p95_ms"],
                             "runs": sum(len(d[bs]) for d in per_proc)})
    if not rows:
        raise ValueError("no setting to measure: check --procs and --threads against the CPU count")
    best = max(rows, key=lambda r: r["images_per_s"])
    batch1 = {r["threads"]: r["batch_p50_ms"] for r in rows if r["procs"] == 1 and r["batch_size"] == 1}
    return {"model": ref, "device": device, "store": store_root, "seconds_per_setting": seconds, "rows": rows,
            "best": best, "ceiling_images_per_s": best["images_per_s"], "batch1_p50_ms_by_threads": batch1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="NAME[:VERSION|@ALIAS] (default %(default)s)")
    parser.add_argument("--store", default=str(DEFAULT_STORE))
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--threads", default=None, help="comma list (default: 1 and the usable CPU count)")
    parser.add_argument("--procs", default="1", help="parallel sessions, comma list (default 1)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per setting")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--out", default=None, help="write the result JSON here")
    args = parser.parse_args(argv)
    ensure_if_bench_model(args.store, args.model)
    result = measure_ceiling(args.model, args.store, parse_list(args.batch_sizes),
                             parse_list(args.threads) if args.threads else None, parse_list(args.procs),
                             args.seconds, args.device)
    print_table(result["rows"], ["procs", "threads", "batch_size", "images_per_s", "batch_p50_ms", "batch_p95_ms"])
    b = result["best"]
    print(f"ceiling: {b['images_per_s']:.1f} images/s (procs={b['procs']} threads={b['threads']} "
          f"batch={b['batch_size']}); batch-1 p50 ms by threads: {result['batch1_p50_ms_by_threads']}")
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
