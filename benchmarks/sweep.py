"""Tune the online service: a grid over batching and sizing, measured over HTTP.

`python -m benchmarks.sweep --model bench-yolov8n --max-batch-size 1,4,8,16 --batch-wait-timeout-s 0.002,0.01
 --replicas 1,2 --num-cpus 1,2 [--num-gpus 0] [--load-fractions 0.1,0.5,0.8] [--duration 8] [--out DIR]`

For every setting it starts the service (serve.local.run_local on one shared local Ray), finds
the saturation throughput with a closed loop of 2 x replicas x max_batch_size clients, then
measures latency in open loop at fractions of that throughput. Writes `sweep.json`,
`sweep.csv`, `throughput_vs_batch_size.png` and `latency_vs_load.png` to `--out`, and prints
the best setting (highest saturation throughput with under 1% errors). Settings that do not
fit the Ray CPUs (replicas x num_cpus + the ingress' share) or GPUs are skipped, not left pending.
Ray CPUs are booking units: with `--threads` the ONNX Runtime threads of a replica are set apart
from its `--num-cpus` (e.g. 2 replicas x 0.75 CPU x 1 thread on a 2-core machine).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_ROOT, DEFAULT_STORE, local_ray, machine_info, parse_list, print_table, write_json
from benchmarks.plots import latency_vs_load, throughput_vs_batch_size
from benchmarks.serve_load import load_payloads, run_load, serve_config, service

INGRESS_CPUS = 0.25  # serve.config.HttpConfig.ingress_num_cpus default
CSV_COLUMNS = ["num_replicas", "num_cpus", "onnx_threads", "num_gpus", "max_batch_size", "batch_wait_timeout_s",
               "mode", "level", "offered_rps", "throughput_rps", "p50_ms", "p95_ms", "p99_ms", "error_rate",
               "mean_batch_size"]


def grid(max_batch_sizes: list[int], waits: list[float], replicas: list[int], cpus: list[float],
         gpus: list[float], ray_cpus: float, threads: list[int | None] = (None,),
         ray_gpus: float = 0.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(settings to run, settings skipped because they cannot be scheduled).

    `threads` None means ONNX Runtime threads follow num_cpus (at least 1), as the service does.
    """
    run, skipped = [], []
    for rep, cpu, thr, gpu, mbs, wait in itertools.product(replicas, cpus, threads, gpus, max_batch_sizes, waits):
        setting = {"num_replicas": rep, "num_cpus": cpu, "onnx_threads": thr or max(1, int(cpu)), "num_gpus": gpu,
                   "max_batch_size": mbs, "batch_wait_timeout_s": wait}
        fits = rep * cpu + INGRESS_CPUS <= ray_cpus and rep * gpu <= ray_gpus + 1e-9
        (run if fits else skipped).append(setting)
    return run, skipped


def _row(setting: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
    lat = r["latency"]
    server = r.get("server_batches") or {}
    return {**setting, "mode": r["mode"], "level": r.get("offered_rps", r.get("concurrency")),
            "offered_rps": r.get("offered_rps"), "throughput_rps": r["throughput_rps"], "p50_ms": lat["p50_ms"],
            "p95_ms": lat["p95_ms"], "p99_ms": lat["p99_ms"], "error_rate": r["error_rate"],
            "mean_batch_size": server.get("mean_batch_size") or r.get("mean_batch_size_seen_by_requests")}


def measure_setting(setting: dict[str, Any], store: str, model: str, payloads: list[bytes], fractions: list[float],
                    duration_s: float, warmup_s: float) -> list[dict[str, Any]]:
    """Saturation (closed loop) then latency at fractions of it (open loop) for one setting."""
    cfg = serve_config(store, model, setting["max_batch_size"], setting["batch_wait_timeout_s"],
                       setting["num_replicas"], setting["num_cpus"], setting["num_gpus"],
                       onnx_threads=setting["onnx_threads"])
    rows = []
    with service(None, cfg) as url:
        clients = max(4, 2 * setting["num_replicas"] * setting["max_batch_size"])
        sat = run_load(url, model, payloads, "closed", clients, duration_s, warmup_s=warmup_s)
        rows.append(_row(setting, sat))
        for f in fractions:
            rate = max(0.2, f * (sat["throughput_rps"] or 1.0))
            rows.append(_row(setting, run_load(url, model, payloads, "open", round(rate, 2), duration_s,
                                               warmup_s=0)))
    return rows


def best_setting(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    sat = [r for r in rows if r["mode"] == "closed" and (r["error_rate"] or 0) < 0.01]
    return max(sat, key=lambda r: r["throughput_rps"] or 0, default=None)


def write_outputs(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any], ceiling: float | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plots = {"throughput_vs_batch_size": str(throughput_vs_batch_size(
        [r for r in rows if r["mode"] == "closed"], out / "throughput_vs_batch_size.png", ceiling)),
        "latency_vs_load": str(latency_vs_load([r for r in rows if r["mode"] == "open"], out / "latency_vs_load.png"))}
    result = {**meta, "rows": rows, "best": best_setting(rows), "plots": plots, "csv": str(out / "sweep.csv")}
    write_json(out / "sweep.json", result)
    return result


def run_sweep(model: str, store: str, settings: list[dict[str, Any]], payloads: list[bytes], out: Path,
              fractions: list[float], duration_s: float, warmup_s: float = 1.0, ray_cpus: int | None = None,
              ceiling: float | None = None, skipped: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Measure every setting on one local Ray; write JSON, CSV and plots to `out`."""
    rows: list[dict[str, Any]] = []
    with local_ray(num_cpus=ray_cpus):
        for i, setting in enumerate(settings, 1):
            print(f"[{i}/{len(settings)}] {setting}", flush=True)
            rows.extend(measure_setting(setting, store, model, payloads, fractions, duration_s, warmup_s))
    meta = {"model": model, "store": store, "machine": machine_info(), "duration_s": duration_s,
            "load_fractions": fractions, "skipped": skipped or [], "ceiling_images_per_s": ceiling}
    return write_outputs(out, rows, meta, ceiling)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bench-yolov8n", help="model NAME (its production alias is served)")
    parser.add_argument("--store", default=str(DEFAULT_STORE))
    parser.add_argument("--max-batch-size", default="1,4,8,16")
    parser.add_argument("--batch-wait-timeout-s", default="0.002,0.01")
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument("--num-cpus", default="1", help="Ray CPUs per replica, comma list")
    parser.add_argument("--threads", default="", help="ONNX Runtime threads per replica (default: follow num_cpus)")
    parser.add_argument("--num-gpus", default="0", help="GPUs per replica, e.g. 0.25,0.5,1")
    parser.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--ray-gpus", type=float, default=None, help="GPUs to plan for (default: nvidia-smi's count)")
    parser.add_argument("--load-fractions", default="0.1,0.5,0.8", help="open-loop rates as fractions of saturation")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load level")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--images", default=None)
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--ceiling", type=float, default=None, help="model ceiling images/s to draw on the plot")
    parser.add_argument("--out", default=str(DEFAULT_ROOT / "sweep"))
    args = parser.parse_args(argv)
    if args.model.startswith("bench-yolov8n"):
        from benchmarks.bench_model import VARIANTS, ensure_bench_models
        from model_store import ModelStore

        variant = args.model.removeprefix("bench-yolov8n")
        ensure_bench_models(ModelStore(args.store), variants=[variant] if variant in VARIANTS else None)
    ray_cpus = args.ray_cpus or len(os.sched_getaffinity(0))
    ray_gpus = args.ray_gpus if args.ray_gpus is not None else len(machine_info().get("gpus", []))
    settings, skipped = grid(parse_list(args.max_batch_size), parse_list(args.batch_wait_timeout_s, float),
                             parse_list(args.replicas), parse_list(args.num_cpus, float),
                             parse_list(args.num_gpus, float), ray_cpus, parse_list(args.threads) or [None], ray_gpus)
    for s in skipped:
        print(f"skipped (needs more than {ray_cpus} CPUs or {ray_gpus} GPUs): {s}")
    result = run_sweep(args.model, args.store, settings, load_payloads(args.images, args.count, args.size),
                       Path(args.out), parse_list(args.load_fractions, float), args.duration, args.warmup,
                       ray_cpus, args.ceiling, skipped)
    print_table(result["rows"], ["num_replicas", "num_cpus", "onnx_threads", "max_batch_size", "batch_wait_timeout_s",
                                 "mode", "level", "throughput_rps", "p50_ms", "p99_ms", "error_rate",
                                 "mean_batch_size"])
    best = result["best"]
    if best:
        keys = ("num_replicas", "num_cpus", "onnx_threads", "num_gpus", "max_batch_size", "batch_wait_timeout_s")
        print("best setting: " + ", ".join(f"{k}={best[k]}" for k in keys)
              + f" -> {best['throughput_rps']} images/s at saturation, p99 {best['p99_ms']} ms")
    print(f"results in {args.out}: sweep.json, sweep.csv, throughput_vs_batch_size.png, latency_vs_load.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
