"""Load the online service over HTTP: open loop (fixed arrival rate) and closed loop (N clients).

`python -m benchmarks.serve_load --url http://127.0.0.1:8000 --model bench-yolov8n --mode open --rates 2,4,8`
`python -m benchmarks.serve_load --start --model bench-yolov8n --mode closed --concurrency 1,8,16 --max-batch-size 8`

Open loop sends at a constant rate (Poisson or fixed gaps) whatever the server does, and each
latency counts from the moment the request was *due*, so a stalled server shows up as latency
instead of being hidden by a client that waits before sending more (coordinated omission).
Closed loop keeps N requests in flight and finds the saturation throughput. The batch sizes the
replicas formed come from GET /v1/models (per-replica counters, diffed around the run) and from
each response's `timing_ms.batch_size`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import heapq
import itertools
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.bench_model import ensure_if_bench_model
from benchmarks.common import DEFAULT_STORE, latency_summary, local_ray, parse_list, print_table, write_json

DETECT_PATH = "/v1/detect"
RECORD_PATH = "/v1/images"  # the recording door: answered as /v1/detect, and each upload kept (serve/recording/)


@dataclass(frozen=True)
class Door:
    """Where and how the load's requests go: the model asked for, the path (/v1/detect, or /v1/images where the
    service records what it answers) and the bearer token (a person's from the people registry, or none)."""

    model: str | None = None  # None: the service's default model
    path: str = DETECT_PATH
    token: str | None = None
    version: str | None = None  # a pinned version (query parameter `version`)
    _sent: Iterator[int] = field(default_factory=itertools.count, compare=False, repr=False)

    def body(self, payload: bytes) -> bytes:
        """What is sent for `payload`: itself, or through the recording door a picture of its own (a JPEG comment
        numbering it), since the door keeps an upload once by its content and answers a repeat with the first
        record: a season's uploads are each new."""
        if self.path != RECORD_PATH or not payload.startswith(b"\xff\xd8"):
            return payload
        note = f"trapline soak {next(self._sent)}".encode()
        return payload[:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + payload[2:]

    @property
    def params(self) -> dict[str, str]:
        recorded = {"camera": "soak"} if self.path == RECORD_PATH else {}  # an upload is kept under its camera
        return {**recorded, **{k: v for k, v in (("model", self.model), ("version", self.version)) if v is not None}}

    @property
    def headers(self) -> dict[str, str]:
        return {"content-type": "image/jpeg", **({"authorization": f"Bearer {self.token}"} if self.token else {})}


class _Recorder:
    """Latencies, status counts and per-response batch sizes of one load run."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: collections.Counter[str] = collections.Counter()
        self.batch_sizes: collections.Counter[int] = collections.Counter()
        self.versions: collections.Counter[str] = collections.Counter()
        self.last_done = 0.0

    async def send(self, client: httpx.AsyncClient, base_url: str, body: bytes, door: Door, started: float) -> None:
        try:
            resp = await client.post(base_url + door.path, content=door.body(body), params=door.params,
                                     headers=door.headers)
            status = str(resp.status_code)
            if resp.is_success:  # 200; the recording door's 201 (kept) too
                data = resp.json()
                self.batch_sizes[int(data.get("timing_ms", {}).get("batch_size", 0))] += 1
                self.versions[str(data.get("model", {}).get("version"))] += 1
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        self.last_done = time.perf_counter()
        if status.startswith("2"):
            self.latencies.append(self.last_done - started)
        self.statuses[status] += 1

    def summary(self, elapsed: float) -> dict[str, Any]:
        total = sum(self.statuses.values())
        ok = sum(n for status, n in self.statuses.items() if status.startswith("2"))
        sizes = {k: v for k, v in sorted(self.batch_sizes.items()) if k > 0}
        mean_bs = sum(k * v for k, v in sizes.items()) / max(1, sum(sizes.values())) if sizes else None
        return {"requests": total, "ok": ok, "errors": total - ok, "error_rate": round((total - ok) / total, 4)
                if total else None, "statuses": dict(self.statuses), "elapsed_s": round(elapsed, 3),
                "throughput_rps": round(ok / elapsed, 2) if elapsed > 0 else None,
                "latency": latency_summary(self.latencies), "batch_size_per_request": sizes,
                "mean_batch_size_seen_by_requests": round(mean_bs, 2) if mean_bs else None,
                "versions": dict(self.versions)}


def _client(timeout_s: float) -> httpx.AsyncClient:
    # No connection cap: in open loop the client must never be the queue that delays a request.
    return httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=None,
                                                                    max_keepalive_connections=256))


def arrivals(rate: float, duration_s: float, seed: int = 0, poisson: bool = True) -> list[float]:
    """The open loop's due times, seconds from its start: Poisson (seeded, so a window's bursts are the same in
    every run) or fixed gaps."""
    rng = np.random.default_rng(seed)
    out, due = [], 0.0
    while due < duration_s:
        out.append(due)
        due += rng.exponential(1.0 / rate) if poisson else 1.0 / rate
    return out


def queueing_floor_p99_ms(due: Sequence[float], capacity: float, servers: int = 1) -> float | None:
    """p99 latency of the same arrivals through an ideal server: one FIFO server that takes exactly 1/capacity s an
    image and costs nothing else. No service of that capacity can do better on those arrivals (c servers of c times
    the service time do worse), so a window whose floor is over the target is over it because of its bursts.

    `servers` > 1: that many ideal servers behind one FIFO queue, each taking servers/capacity s an image (the
    service's replicas at their best: each replica runs one image at a time at 1/servers of the capacity, and a
    request waits only while every replica is busy). Not a library call: this is a few lines of an M/D/c queue
    run on the measured arrivals, which no queueing package does on a given arrival sequence."""
    if not due or capacity <= 0 or servers < 1:
        return None
    free, lat = [0.0] * servers, []  # when each server is next free: a heap
    for t in due:
        done = max(t, heapq.heappop(free)) + servers / capacity
        heapq.heappush(free, done)
        lat.append(done - t)
    return round(float(np.percentile(lat, 99)) * 1000, 1)


async def open_loop(base_url: str, payloads: Sequence[bytes], rate: float, duration_s: float, door: Door,
                    poisson: bool = True, seed: int = 0, timeout_s: float = 30.0) -> dict[str, Any]:
    """Send at `rate` requests/s for `duration_s` through `door`; latency counts from each request's due time."""
    rec, tasks, lags = _Recorder(), [], []
    url = base_url.rstrip("/")
    async with _client(timeout_s) as client:
        t0 = time.perf_counter()
        for i, offset in enumerate(arrivals(rate, duration_s, seed, poisson)):
            due = t0 + offset
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(time.perf_counter() - due)  # how late the generator itself was
            tasks.append(asyncio.create_task(rec.send(client, url, payloads[i % len(payloads)], door, due)))
        await asyncio.gather(*tasks)
    out = rec.summary(max(rec.last_done, t0 + duration_s) - t0)
    out.update(mode="open", offered_rps=rate, duration_s=duration_s,
               generator_lag_p99_ms=round(float(np.percentile(lags, 99)) * 1000, 3) if lags else None)
    return out


async def closed_loop(base_url: str, payloads: Sequence[bytes], concurrency: int, duration_s: float, door: Door,
                      timeout_s: float = 30.0) -> dict[str, Any]:
    """`concurrency` clients each send through `door`, wait for the answer, and send again, for `duration_s`."""
    rec = _Recorder()
    url = base_url.rstrip("/")

    async def client_loop(client: httpx.AsyncClient, k: int, deadline: float) -> None:
        i = k
        while time.perf_counter() < deadline:
            await rec.send(client, url, payloads[i % len(payloads)], door, time.perf_counter())
            i += concurrency

    async with _client(timeout_s) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(client_loop(client, k, t0 + duration_s) for k in range(concurrency)))
    out = rec.summary(time.perf_counter() - t0)
    out.update(mode="closed", concurrency=concurrency, duration_s=duration_s)
    return out


def model_stats(base_url: str, model: str) -> dict[str, Any] | None:
    """The replicas' batching counters for `model` from GET /v1/models (None if unavailable)."""
    try:
        resp = httpx.get(base_url.rstrip("/") + "/v1/models", timeout=10)
        resp.raise_for_status()
        entries = resp.json().get("models", [])
    except (httpx.HTTPError, ValueError):
        return None
    entry = next((m for m in entries if m.get("name") == model), None)
    return entry.get("stats") if entry else None


def stats_delta(before: dict | None, after: dict | None) -> dict[str, Any] | None:
    """Batches formed between two /v1/models snapshots: {size: count}, and their mean size."""
    if not before or not after:
        return None
    sizes = {}
    for size, count in after.get("batch_sizes", {}).items():
        diff = count - before.get("batch_sizes", {}).get(size, 0)
        if diff > 0:
            sizes[int(size)] = diff
    batches = sum(sizes.values())
    return {"batches": batches, "batch_sizes": dict(sorted(sizes.items())),
            "mean_batch_size": round(sum(k * v for k, v in sizes.items()) / batches, 2) if batches else None}


def run_load(base_url: str, model: str, payloads: Sequence[bytes], mode: str, level: float, duration_s: float,
             version: str | None = None, warmup_s: float = 1.0, poisson: bool = True) -> dict[str, Any]:
    """One measured run (after a short closed-loop warm-up), with the batch sizes the server formed."""
    door = Door(model, version=version)
    if warmup_s > 0:
        asyncio.run(closed_loop(base_url, payloads, 2, warmup_s, door))
    before = model_stats(base_url, model)
    if mode == "open":
        result = asyncio.run(open_loop(base_url, payloads, level, duration_s, door, poisson))
    else:
        result = asyncio.run(closed_loop(base_url, payloads, int(level), duration_s, door))
    result["server_batches"] = stats_delta(before, model_stats(base_url, model))
    return result


# -- starting the service for a run --------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_config(store: str, model: str, max_batch_size: int = 8, batch_wait_timeout_s: float = 0.005,
                 num_replicas: int = 1, num_cpus: float = 1.0, num_gpus: float = 0.0, onnx_threads: int | None = None,
                 port: int | None = None, **model_extra: Any) -> dict[str, Any]:
    """A ServeConfig dict (see serve/config.py) serving one model with the given batching and sizing."""
    entry = {"name": model, "max_batch_size": max_batch_size, "batch_wait_timeout_s": batch_wait_timeout_s,
             "num_replicas": num_replicas, "num_cpus": num_cpus, "num_gpus": num_gpus, **model_extra}
    if onnx_threads:
        entry["onnx_threads"] = onnx_threads
    return {"store": str(store), "models": [entry], "http": {"port": port or free_port()}}


@contextlib.contextmanager
def service(url: str | None = None, config: dict[str, Any] | None = None, num_cpus: int | None = None) -> Iterator[str]:
    """Yield `url`, or start trapline's Serve app from `config` with serve.local.run_local (on a
    local Ray of `num_cpus` unless one is running) and yield its base URL once /readyz answers 200;
    whatever was started is shut down on exit."""
    if url:
        yield url.rstrip("/")
        return
    from serve.config import parse_serve_config
    from serve.local import run_local

    # Started here rather than by run_local to keep Ray's and the replicas' logs off the benchmark's output.
    with local_ray(num_cpus=num_cpus), run_local(parse_serve_config(config)) as base_url:
        yield str(base_url).rstrip("/")


def load_payloads(images: str | None, count: int, size: str) -> list[bytes]:
    if images:
        paths = sorted(p for p in Path(images).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        return [p.read_bytes() for p in paths[:count]]
    from benchmarks.images import ensure_images, parse_size

    return [p.read_bytes() for p in ensure_images(count, parse_size(size))]


def add_service_arguments(parser: argparse.ArgumentParser, image_count: int) -> None:
    """Where the service is (or how to start it) and what to send: shared by serve_load and soak."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="base URL of a running service")
    where.add_argument("--start", action="store_true", help="start the service locally (serve.local.run_local)")
    parser.add_argument("--model", default="bench-yolov8n", help="model NAME served (query parameter `model`)")
    parser.add_argument("--images", default=None, help="directory of images (default: generated)")
    parser.add_argument("--count", type=int, default=image_count)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--store", default=str(DEFAULT_STORE), help="with --start: the model store")
    parser.add_argument("--max-batch-size", type=int, default=None,
                        help="with --start: images a forward pass (default: the embedded default's)")
    parser.add_argument("--batch-wait-timeout-s", type=float, default=0.005)
    parser.add_argument("--num-replicas", type=int, default=None,
                        help="with --start: replicas (default: the embedded default's sizing for this machine)")
    parser.add_argument("--num-cpus", type=float, default=None,
                        help="with --start: CPUs per replica (default: the embedded default's sizing)")
    parser.add_argument("--onnx-threads", type=int, default=None,
                        help="with --start: ONNX Runtime threads per replica (default: the embedded default's sizing)")


def sizing(args: argparse.Namespace) -> dict[str, Any]:
    """Replicas, CPUs, threads and batch size for `--start`: what `trapline serve` deploys on this machine with no
    config (serve.defaults.default_sizing: a replica per core, one thread each on a small box, batches of 2), each
    overridable by its flag. Measuring another sizing than the users' would measure a service nobody runs."""
    from serve.defaults import default_sizing

    default, _ = default_sizing(len(os.sched_getaffinity(0)), detectors=1, classifiers=0)
    given = {"num_replicas": args.num_replicas, "num_cpus": args.num_cpus, "onnx_threads": args.onnx_threads,
             "max_batch_size": args.max_batch_size}
    return {**default, **{k: v for k, v in given.items() if v is not None}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_service_arguments(parser, image_count=32)
    parser.add_argument("--version", default=None, help="pin a version (query parameter `version`)")
    parser.add_argument("--mode", choices=["open", "closed"], default="closed")
    parser.add_argument("--rates", default="2,4", help="open loop: requests/s, comma list")
    parser.add_argument("--concurrency", default="1,8", help="closed loop: clients, comma list")
    parser.add_argument("--fixed-interval", action="store_true", help="open loop: fixed gaps instead of Poisson")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load level")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--num-gpus", type=float, default=0.0)
    parser.add_argument("--out", default=None, help="write the result JSON here")
    args = parser.parse_args(argv)
    payloads = load_payloads(args.images, args.count, args.size)
    config = None
    if args.start:
        ensure_if_bench_model(args.store, args.model)
        config = serve_config(args.store, args.model, batch_wait_timeout_s=args.batch_wait_timeout_s,
                              num_gpus=args.num_gpus, **sizing(args))
    levels = parse_list(args.rates, float) if args.mode == "open" else parse_list(args.concurrency)
    rows = []
    with service(args.url, config) as url:
        for level in levels:
            r = run_load(url, args.model, payloads, args.mode, level, args.duration, args.version, args.warmup,
                         poisson=not args.fixed_interval)
            rows.append(r)
    table = [{"level": r.get("offered_rps", r.get("concurrency")), "rps": r["throughput_rps"],
              "p50_ms": r["latency"]["p50_ms"], "p95_ms": r["latency"]["p95_ms"], "p99_ms": r["latency"]["p99_ms"],
              "error_rate": r["error_rate"], "mean_batch": (r["server_batches"] or {}).get("mean_batch_size")
              or r["mean_batch_size_seen_by_requests"]} for r in rows]
    print_table(table, ["level", "rps", "p50_ms", "p95_ms", "p99_ms", "error_rate", "mean_batch"])
    if args.out:
        write_json(args.out, {"mode": args.mode, "config": config, "runs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
