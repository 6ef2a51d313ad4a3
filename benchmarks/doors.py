"""Both doors against their ceilings, as ratios, in one run on this machine.

`python -m benchmarks.doors [--images 300] [--null-images 1200] [--seconds 20] [--out DIR] [--quick]`

Two models on the same generated 1920x1080 q90 JPEGs:

- the real one (`bench-yolov8n:1`, YOLOv8n's compute): its *model ceiling* is ONNX Runtime on
  ready tensors in as many single-thread processes as there are CPUs; each door is a ratio of it;
- the null model (`bench-null:1`, no inference cost, what a fast accelerator leaves): its
  ceiling is the *plumbing ceiling*, decode + letterbox + null model in the same plain processes.

Sections (each one's failure is recorded and the rest still runs):

- `ceilings`: both ceilings, and batch-1 latency of the real model at the replica's threads;
- `batch`: `trapline reprocess` per model, `--via actors` with decoding in the actors (default)
  and in the read tasks, and `--via serve` through a running deployment;
- `http`: `trapline serve` and the minimal idiomatic Ray Serve app (benchmarks/minimal_serve.py)
  with the null model in closed loop at the same concurrency, then 2 x the saturation
  concurrency (overload: throughput, 503 share and how fast a 503 comes back), then the real
  model at light load (p50 against batch-1 model latency);
- `direct`: the same with Serve's direct ingress (`http.direct_ingress`: the client on the replica's own
  port, no proxy), overload included, against the minimal app through the proxy and on its own direct port;
- `light`: only the real model through the default door (the proxy), one request at a time (each answer's
  `timing_ms` says where its time goes), each paired with a batch-1 pass in a plain process half a gap later
  (so both see the same load on a shared machine), and at light load; batch-1 latency is also measured just
  before and just after;
- `priority`: the real model's light-load p50 while a `--via serve` backfill runs through the
  same deployment, against idle, with bulk preemption (the default) and without, and what
  preemption costs the backfill;
- `peer` (with `--peer-python` of a venv that has Ultralytics, see benchmarks/peer_ultralytics.py):
  an Ultralytics YOLOv8n export (tests/fixtures/reference/yolov8n_dynamic.onnx) over one folder,
  by Ultralytics' own `predict(stream=True)` and by `trapline reprocess` as published (rect
  letterbox), and its int8 version (`trapline models quantize`, calibrated on the same images).

Absolute numbers on a shared machine are noisy; the ratios are the claims. Writes doors.json
and prints one table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.batch_throughput import reprocess_argv
from benchmarks.bench_model import ensure_bench_models, ensure_null_model
from benchmarks.common import (
    DEFAULT_IMAGES,
    DEFAULT_ROOT,
    DEFAULT_STORE,
    local_ray,
    machine_info,
    markdown_table,
    print_table,
    ratio,
    write_json,
)
from benchmarks.doors_jobs import batch_run
from benchmarks.doors_peer import peer_section
from benchmarks.doors_summary import NULL, REAL, summarise
from benchmarks.http_probes import http_closed, light_load, one_at_a_time, refused_latency
from benchmarks.images import FULL_HD, ensure_images, load_bytes, make_archive
from benchmarks.minimal_serve import minimal_service
from benchmarks.model_ceiling import measure_ceiling
from benchmarks.serve_load import free_port, serve_config, service
from ground import ray_output


def _plumbing_worker(args: tuple) -> tuple[int, float]:
    store_root, ref, payloads, seconds = args
    from model_store import ModelStore

    det = ModelStore(store_root).load_detector(ref, threads=1)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        prepared, meta = det.prepare_bytes(payloads[n % len(payloads)], 50_000_000)
        det.run_prepared([prepared], [meta])
        n += 1
    return n, time.perf_counter() - t0


def _batch1_worker(conn, store_root: str, ref: str, threads: int) -> None:
    """A plain process holding one session: one batch-1 forward pass per message, answering its ms."""
    from model_store import ModelStore

    det = ModelStore(store_root).load_detector(ref, threads=threads)
    blank = det.blank()
    det.warmup()
    while conn.recv():
        t0 = time.perf_counter()
        det.infer([blank])
        conn.send((time.perf_counter() - t0) * 1000)


class PlainBatch1:
    """Batch-1 forward passes on demand in a plain process (no Ray), to pair with requests under the same load."""

    def __init__(self, store_root: str, ref: str, threads: int) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_batch1_worker, args=(child, store_root, ref, threads), daemon=True)
        self._proc.start()

    def __call__(self) -> float:
        self._conn.send(True)
        return self._conn.recv()

    def close(self) -> None:
        self._conn.send(False)
        self._proc.join(timeout=30)


def plumbing_ceiling(store_root: str, ref: str, payloads: list[bytes], procs: int, seconds: float) -> dict[str, Any]:
    """Images/s of decode + letterbox + `ref` in `procs` plain processes (no Ray, no HTTP, no queues)."""
    with mp.get_context("spawn").Pool(procs) as pool:
        done = pool.map(_plumbing_worker, [(store_root, ref, payloads, seconds)] * procs)
    return {"procs": procs, "images_per_s": round(sum(n / s for n, s in done), 2)}

def run(args: argparse.Namespace) -> dict[str, Any]:
    from model_store import ModelStore

    cpus = len(os.sched_getaffinity(0))
    store = ModelStore(args.store)
    ensure_bench_models(store, [""], verbose=False)
    ensure_null_model(store)
    images = ensure_images(min(args.images, 64), FULL_HD, root=args.images_root)
    payloads = load_bytes(images)
    work = Path(args.work)
    archives = {REAL: make_archive(images, work / f"doors-{args.images}", args.images),
                NULL: make_archive(images, work / f"doors-{args.null_images}", args.null_images)}
    res: dict[str, Any] = {"machine": machine_info(), "cpus": cpus, "images": args.images,
                           "null_images": args.null_images, "errors": {}}

    def section(name: str, fn) -> None:
        if args.sections and name not in args.sections:
            return
        print(f"-- {name}", flush=True)
        try:
            res[name] = fn()
        except Exception as exc:  # noqa: BLE001 - record it, run the rest
            res["errors"][name] = f"{type(exc).__name__}: {exc}"
            res["errors"][name + "_traceback"] = traceback.format_exc()

    def ceilings() -> dict[str, Any]:
        model = measure_ceiling(REAL, store.root, batch_sizes=[1], threads=[1], procs=[cpus], seconds=args.seconds / 4)
        lat = measure_ceiling(REAL, store.root, batch_sizes=[1], threads=[cpus], procs=[1], seconds=args.seconds / 4)
        return {"model_images_per_s": model["ceiling_images_per_s"],
                "batch1_p50_ms": lat["batch1_p50_ms_by_threads"][cpus],
                "plumbing_images_per_s": plumbing_ceiling(store.root, NULL, payloads, cpus, args.seconds / 2)[
                    "images_per_s"]}

    # The replica gets what the ingress (0.25 CPU) leaves; the minimal app gets the same for its one deployment.
    # max_online_requests: what the replica admits; the sweep stays within it, the overload run doubles it.
    replica = {"num_cpus": cpus - 0.25, "max_batch_size": 8, "bulk_max_batch_size": args.bulk_batch,
               "max_online_requests": max(args.concurrency), "max_queued_requests": 0}
    batch_replica = {**replica, "num_cpus": cpus - 0.5}  # and a --via serve job a read task and its client
    # The archive through the deployment on the actor pool's terms: one replica per CPU, one ONNX thread
    # each (1 replica of 1.5 CPUs gets floor(1.5) = 1 thread and leaves a core to decode alone).
    archive_replica = {**batch_replica, "num_replicas": cpus, "num_cpus": round((cpus - 0.5) / cpus, 2),
                       "onnx_threads": 1}

    def batch() -> list[dict[str, Any]]:
        rows = []
        with local_ray(cpus):
            for ref in (NULL, REAL):
                for decode in ("actors", "tasks"):
                    rows.append(batch_run(archives[ref], work, store.root, ref, "actors", decode, cpus))
                    print(rows[-1], flush=True)
                name = ref.split(":")[0]
                with service(None, serve_config(store.root, name, **archive_replica)):
                    rows.append(batch_run(archives[ref], work, store.root, ref, "serve", "actors", cpus))
                    print(rows[-1], flush=True)
        return rows

    def overload(url: str, sweep: list[dict[str, Any]]) -> dict[str, Any]:
        """Twice the sweep's largest concurrency, with impatient clients and with clients that honour Retry-After;
        each against the sweep's best rate (saturation)."""
        best = max(sweep, key=lambda r: r["rps"] or 0)
        out = {}
        for key, polite in (("overload", False), ("overload_retry_after", True)):
            out[key] = refused_latency(url, payloads, 2 * max(args.concurrency), args.seconds, polite)
            out[key]["saturation_rps"] = best["rps"]
        return out

    def http() -> dict[str, Any]:
        out: dict[str, Any] = {}
        with local_ray(cpus):
            with service(None, serve_config(store.root, "bench-null", **replica)) as url:
                http_closed(url, payloads, 4, 3)  # warm up
                out["trapline"] = [http_closed(url, payloads, c, args.seconds) for c in args.concurrency]
                out.update(overload(url, out["trapline"]))
            with service(None, serve_config(store.root, "bench-yolov8n", **replica)) as url:
                light_load(url, payloads, 1, 3)
                out["light_real"] = light_load(url, payloads, args.light_rate, args.seconds)
                out["one_at_a_time_real"] = one_at_a_time(url, payloads, max(10, int(args.seconds)))
            with minimal_service(store.root, NULL, num_cpus=replica["num_cpus"], port=free_port()) as url:
                http_closed(url, payloads, 4, 3)
                out["minimal"] = [http_closed(url, payloads, c, args.seconds) for c in args.concurrency]
        return out

    def light() -> dict[str, Any]:
        def batch1() -> float:
            lat = measure_ceiling(REAL, store.root, batch_sizes=[1], threads=[cpus], procs=[1],
                                  seconds=args.seconds / 4)
            return lat["batch1_p50_ms_by_threads"][cpus]

        out: dict[str, Any] = {"batch1_p50_ms_before": batch1()}
        with local_ray(cpus):
            with service(None, serve_config(store.root, "bench-yolov8n", **replica)) as url:
                light_load(url, payloads, 1, 3)
                plain = PlainBatch1(store.root, REAL, cpus)  # the replica's threads: round(num_cpus)
                try:
                    out["one_at_a_time_real"] = one_at_a_time(url, payloads, max(10, int(args.seconds)),
                                                               between=plain)
                finally:
                    plain.close()
                out["light_real"] = light_load(url, payloads, args.light_rate, args.seconds)
        out["batch1_p50_ms_after"] = batch1()
        return out

    def direct() -> dict[str, Any]:
        """The online door with Serve's direct ingress (`http.direct_ingress`: no proxy hop), and the minimal app
        through the proxy (the baseline) and through its own direct port, in one Ray with direct ingress on."""
        from benchmarks.minimal_serve import APP_NAME as MINIMAL
        from serve.local import direct_ingress_env, direct_urls

        def direct_config(name: str) -> dict[str, Any]:
            cfg = serve_config(store.root, name, **replica)
            cfg["http"]["direct_ingress"] = True
            return cfg

        out: dict[str, Any] = {}
        with local_ray(cpus, env=direct_ingress_env()):
            with service(None, direct_config("bench-null")) as url:
                [url_direct] = direct_urls()
                http_closed(url_direct, payloads, 4, 3)  # warm up
                out["trapline"] = [http_closed(url_direct, payloads, c, args.seconds) for c in args.concurrency]
                out.update(overload(url_direct, out["trapline"]))
                out["trapline_proxy"] = [http_closed(url, payloads, c, args.seconds) for c in args.concurrency]
            with service(None, direct_config("bench-yolov8n")):
                [url_direct] = direct_urls()
                light_load(url_direct, payloads, 1, 3)
                out["light_real"] = light_load(url_direct, payloads, args.light_rate, args.seconds)
                out["one_at_a_time_real"] = one_at_a_time(url_direct, payloads, max(10, int(args.seconds)))
            with minimal_service(store.root, NULL, num_cpus=replica["num_cpus"], port=free_port()) as url:
                [url_direct] = direct_urls(MINIMAL)
                http_closed(url, payloads, 4, 3)
                out["minimal"] = [http_closed(url, payloads, c, args.seconds) for c in args.concurrency]
                out["minimal_direct"] = [http_closed(url_direct, payloads, c, args.seconds) for c in args.concurrency]
        return out

    # A backfill through the deployment on a small CPU box: one ONNX thread per replica keeps a core for the
    # online requests' decode (with 2 threads each bulk forward pass took both: 2.4 x the idle p50 against 1.4 x).
    priority_replica = {**batch_replica, "onnx_threads": 1}

    def priority() -> dict[str, Any]:
        import httpx
        import ray

        def one(preempt: bool) -> dict[str, Any]:
            config = serve_config(store.root, "bench-yolov8n", **priority_replica, preempt_bulk=preempt)
            with service(None, config) as url:
                light_load(url, payloads, 1, 3)
                idle = light_load(url, payloads, args.light_rate, args.seconds)
                out = work / "out-priority"
                shutil.rmtree(out, ignore_errors=True)
                # The backfill as a user starts it: another process, on this cluster, through the deployment.
                cmd = [sys.executable, "-m", "batch.reprocess", *reprocess_argv(
                    archives[REAL], out, REAL, store.root, "serve", 1,
                    ["--num-cpus", "0.25", "--read-cpus", "0.25", "--address", ray.get_runtime_context().gcs_address])]
                with open(work / "priority-backfill.log", "wb") as log:
                    t0 = time.perf_counter()
                    backfill = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
                    time.sleep(12)  # Ray Data up, the deployment busy with archive images
                    busy = light_load(url, payloads, args.light_rate, args.seconds)
                    still_running = backfill.poll() is None
                    backfill.wait()
                    backfill_s = time.perf_counter() - t0
                models = httpx.get(url + "/v1/models", timeout=30).json()["models"]
                stats = next(m for m in models if m["name"] == "bench-yolov8n")["stats"]
            return {"idle": idle, "during_backfill": busy, "backfill_ran_throughout": still_running,
                    "backfill_exit": backfill.returncode, "backfill_s": round(backfill_s, 1),
                    "batches": stats["batches"], "bulk_preempted": stats["bulk_preempted"],
                    "ratio_p50": ratio(busy["p50_ms"], idle["p50_ms"])}

        with local_ray(cpus):
            # Preemption (the default) against the batcher's plain priority: its effect and its cost in one run.
            return {**one(True), "without_preemption": one(False)}

    def peer() -> dict[str, Any]:
        if not args.peer_python:
            raise RuntimeError("give --peer-python (a venv with ultralytics) to run the peer section")
        return peer_section(store, images, work, args.peer_python, args.peer_images, cpus)

    for name, fn in (("ceilings", ceilings), ("batch", batch), ("http", http), ("light", light), ("direct", direct),
                     ("priority", priority), ("peer", peer)):
        section(name, fn)
    res["summary"] = summarise(res)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.doors", description=__doc__.splitlines()[0])
    p.add_argument("--store", default=str(DEFAULT_STORE))
    p.add_argument("--images-root", default=str(DEFAULT_IMAGES))
    p.add_argument("--work", default=str(DEFAULT_ROOT / "doors"))
    p.add_argument("--images", type=int, default=300, help="archive size for the real model")
    p.add_argument("--null-images", type=int, default=1200, help="archive size for the null model")
    p.add_argument("--seconds", type=float, default=20.0, help="per HTTP load level and per ceiling")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[2, 4, 8],
                   help="closed-loop clients; the replica admits the largest, the overload run sends twice it")
    p.add_argument("--light-rate", type=float, default=2.0, help="requests/s for the light-load latency")
    p.add_argument("--bulk-batch", type=int, default=1, help="bulk_max_batch_size of the served model")
    p.add_argument("--peer-python", default=None, help="python of a venv with ultralytics (the peer section)")
    p.add_argument("--peer-images", type=int, default=300, help="images in the peer folder")
    p.add_argument("--sections", type=lambda s: s.split(","), default=None)
    p.add_argument("--update", action="store_true",
                   help="with --sections: replace only those sections in an existing --out and keep the rest")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that every section runs")
    p.add_argument("--out", default="benchmarks/results/doors.json")
    p.add_argument("--markdown", metavar="DOORS_JSON", help="print an earlier run's summary as a table; run nothing")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="Ray's own console output here (default: in each Ray session's log directory, which is named)")
    args = p.parse_args(argv)
    with ray_output.mode(quiet=not args.verbose):
        return _run_and_report(args)


def _run_and_report(args: argparse.Namespace) -> int:
    if args.markdown:
        res = json.loads(Path(args.markdown).read_text())
        print(markdown_table(summarise(res), ["claim", "measured", "against", "reference", "ratio", "target"]))
        return 0
    if args.quick:
        args.images, args.null_images, args.seconds, args.concurrency, args.peer_images = 24, 48, 2.0, [2, 4], 12
    res = run(args)
    if args.update and args.sections and Path(args.out).is_file():
        # A re-measured section joins the earlier run: the machine, sizes and other sections stay as they were.
        earlier = json.loads(Path(args.out).read_text())
        ran = [name for name in args.sections if name in res]
        res = {**earlier, **{name: res[name] for name in ran},
               "errors": {**{k: v for k, v in earlier.get("errors", {}).items()
                             if k.removesuffix("_traceback") not in ran}, **res["errors"]}}
        res["summary"] = summarise(res)
    write_json(args.out, res)
    print_table(res["summary"], ["claim", "measured", "against", "reference", "ratio", "target"])
    if res["errors"]:
        print("errors:", res["errors"])
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
