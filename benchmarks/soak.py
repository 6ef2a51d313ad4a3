"""Soak and spike: hold ~80% of measured capacity for minutes with memory sampled, then a spike above it.

`python -m benchmarks.soak --start --minutes 10 --out bench-results/soak`
`python -m benchmarks.soak --url http://127.0.0.1:8000 --model demo-detector --pid <ray head pid> --minutes 30`
The season mode, an hour: `python -m benchmarks.soak --start --minutes 60 --memory-interval-s 5 --people 3 --record
--out bench-results/soak-hour` (ten minutes cannot tell a leak from a warm-up; the second half's slope can): every
request with a person's token while one person more is added a minute (each replica re-reads the registry), through
the recording door (POST /v1/images: each upload a picture of its own, kept with its rows).

1. capacity: a short closed-loop run (serve_load.closed_loop) gives the saturation throughput;
2. soak: open loop (serve_load.open_loop, Poisson arrivals) at `--load` x capacity for `--minutes`, in
   windows, while the memory (PSS) of the service's process tree is sampled: reports the trend as a
   least-squares slope in MiB/min, the tree's and each process's by Ray's titles (every replica, the proxy,
   the controller, raylet, GCS, the driver) over the run's second half (each process's RSS slope too, which
   another program's exit does not move: benchmarks.common.process_rss), and each window's errors, p50 and p99
   beside the machine's load in that window (/proc/loadavg and the CPU other programs took:
   benchmarks/machine_load.py), so a window over the p99 target on a busy machine is told apart from a slow
   service;
3. spike: `--spike-factor` x capacity at fixed gaps for `--spike-s`: counts 503 answers that carry
   `Retry-After` (the documented back-pressure) apart from any other error;
4. recovery: back to the soak rate until a window has no error and its p50 latency is back near
   the soak's, or over it only because other programs took the CPU (`recover`: `recovered`, `recovery_s`
   after the spike ended, `latency_judged`).

With `--start` the service (and Ray) run under this process, so the sampled tree is the whole
service; with `--url`, pass `--pid` of the service's root process (e.g. the Ray head's raylet's
parent) to sample memory, else memory is not reported.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.bench_model import ensure_if_bench_model
from benchmarks.common import DEFAULT_ROOT, latency_summary, machine_info, write_json
from benchmarks.machine_load import LoadWindow, describe, serve_processes
from benchmarks.serve_load import (
    RECORD_PATH,
    Door,
    add_service_arguments,
    arrivals,
    closed_loop,
    load_payloads,
    open_loop,
    queueing_floor_p99_ms,
    serve_config,
    service,
    sizing,
)
from benchmarks.soak_memory import MemoryTrend, memory_table
from serve.people import PeopleRegistry

# A recovery window whose service spent up to this many times the soak's CPU per answer did the soak's work
# (30-38 CPU-ms an answer across the tiny soak's soak and recovery windows at one rate on a shared 2-core box).
COST_SLACK = 1.5
P99_TARGET_MS = 1000.0  # issue 60: p99 <= 1 s in every 30-s window at 80 % of capacity, on a quiet machine


async def spike(base_url: str, payloads: Sequence[bytes], rate: float, duration_s: float, door: Door,
                timeout_s: float = 30.0) -> dict[str, Any]:
    """Send at a fixed `rate` for `duration_s` whatever the server does; classify every answer. A 503
    with Retry-After counts as `503_retry_after`; `typed_503` says how many of them had trapline's JSON
    error body (the replica's refusal) rather than Serve's proxy's plain text."""
    url = base_url.rstrip("/") + door.path
    outcomes: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    refusal_latencies: list[float] = []
    typed = 0

    async def one(client: httpx.AsyncClient, body: bytes) -> None:
        nonlocal typed
        t0 = time.perf_counter()
        try:
            r = await client.post(url, content=door.body(body), params=door.params, headers=door.headers)
        except httpx.HTTPError as exc:
            outcomes[f"client_{type(exc).__name__}"] += 1
            return
        if r.is_success:  # 200; the recording door's 201 (kept) too
            outcomes["200"] += 1
            latencies.append(time.perf_counter() - t0)
        elif r.status_code == 503 and r.headers.get("retry-after"):
            outcomes["503_retry_after"] += 1
            refusal_latencies.append(time.perf_counter() - t0)
            typed += r.headers.get("content-type", "").startswith("application/json")
        else:
            outcomes[f"{r.status_code}_other"] += 1

    tasks = []
    async with httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=None,
                                                                         max_keepalive_connections=256)) as client:
        t0 = time.perf_counter()
        for i in range(max(1, round(rate * duration_s))):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, payloads[i % len(payloads)])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    total = sum(outcomes.values())
    other = total - outcomes["200"] - outcomes["503_retry_after"]
    return {"offered_rps": round(rate, 2), "duration_s": duration_s, "requests": total, "ok": outcomes["200"],
            "rejected_503_retry_after": outcomes["503_retry_after"], "other_errors": other,
            "typed_503": typed, "outcomes": dict(outcomes), "elapsed_s": round(elapsed, 2),
            "throughput_rps": round(outcomes["200"] / elapsed, 2) if elapsed else None,
            "latency_ok": latency_summary(latencies), "latency_503": latency_summary(refusal_latencies)}


def _measured_window(meter: LoadWindow, base_url: str, payloads: Sequence[bytes], rate: float, span: float,
                     door: Door, seed: int, index: int,
                     started: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """One open-loop window at `rate` for `span` s beside the machine's load (the soak's and the recovery's
    windows alike): (the open loop's result, the window's record: its figures, the load (LoadWindow.stop's
    fields) and the CPU the benchmark spent per answer)."""
    meter.start()
    result = asyncio.run(open_loop(base_url, payloads, rate, span, door, seed=seed))
    load = meter.stop()
    record = {"window": index, "t_s": round(time.perf_counter() - started, 1), "requests": result["requests"],
              "errors": result["errors"], "statuses": result["statuses"], "rps": result["throughput_rps"],
              "p50_ms": result["latency"]["p50_ms"], "p99_ms": result["latency"]["p99_ms"],
              "generator_lag_p99_ms": result.get("generator_lag_p99_ms"), **load,
              "cpu_ms_per_answer": _cpu_ms_per_answer(load, result)}
    return result, record


def _floors_text(floor: float | None, floor_replicas: float | None, replicas: int) -> str:
    if floor is None:
        return ""
    on_replicas = f", {floor_replicas:g} ms on {replicas} ideal replicas" if replicas > 1 else ""
    return f" (queueing floor {floor:g} ms{on_replicas})"


def soak_windows(base_url: str, door: Door, payloads: Sequence[bytes], rate: float, *, minutes: float,
                 window_s: float = 30.0, memory_pid: int | None = None, memory_interval_s: float = 2.0,
                 p99_target_ms: float = P99_TARGET_MS, capacity: float | None = None, replicas: int = 1,
                 service_pids: Sequence[int] = (), log=print) -> dict[str, Any]:
    """Open-loop Poisson arrivals at `rate` for `minutes`, in windows: each window's requests, errors, p50 and
    p99 beside the machine's load in that window (machine_load.LoadWindow: /proc/loadavg, and the CPU other
    programs took), so a window that misses the p99 target on a busy machine is told apart from a slow
    service; and, with `capacity`, beside its queueing floor (serve_load.queueing_floor_p99_ms: the same
    arrivals through an ideal server of that capacity), so a window over the target because of its own bursts
    is told apart from one the service made slow; with `replicas` > 1 also beside that many ideal replicas behind
    one queue (what the replicas could do at best: a window over the target there is over it because of its
    bursts and the replica count, not the service's own costs). The memory of `memory_pid`'s tree is sampled
    throughout (none without it). `service_pids` (the Serve processes of a service this benchmark started): the
    benchmark's CPU is theirs and this process's alone (`_meter`)."""
    windows: list[dict[str, Any]] = []
    latencies_p50 = []
    started = time.perf_counter()
    soak_s = minutes * 60
    meter = _meter(memory_pid, service_pids)
    with MemoryTrend(memory_pid, memory_interval_s) as memory:
        while time.perf_counter() - started < soak_s - 0.5:
            span = min(window_s, soak_s - (time.perf_counter() - started))
            res, record = _measured_window(meter, base_url, payloads, rate, span, door, len(windows),
                                           len(windows), started)
            due = arrivals(rate, span, len(windows))
            floor = queueing_floor_p99_ms(due, capacity) if capacity else None
            floor_replicas = queueing_floor_p99_ms(due, capacity, replicas) if capacity and replicas > 1 else floor
            windows.append({**record, "floor_p99_ms": floor, "floor_replicas_p99_ms": floor_replicas})
            if res["latency"]["p50_ms"] is not None:
                latencies_p50.append(res["latency"]["p50_ms"])
            log(f"  soak window {len(windows)}: {res['requests']} requests, {res['errors']} errors, "
                f"p50 {res['latency']['p50_ms']} ms, p99 {res['latency']['p99_ms']} ms"
                f"{_floors_text(floor, floor_replicas, replicas)}; {describe(record, meter.cpus)}")
    p99s = [w["p99_ms"] for w in windows if w["p99_ms"] is not None]
    missed = [w for w in windows if w["p99_ms"] is None or w["p99_ms"] > p99_target_ms]
    soak = {"offered_rps": round(rate, 2), "minutes": minutes, "window_s": window_s, "windows": windows,
            "requests": sum(w["requests"] for w in windows), "errors": sum(w["errors"] for w in windows),
            "p50_ms_median_window": round(float(np.median(latencies_p50)), 2) if latencies_p50 else None,
            "p99_ms_worst_window": max(p99s) if p99s else None, "p99_target_ms": p99_target_ms,
            "windows_over_p99_target": len(missed),
            "windows_over_p99_target_on_busy_machine": sum(bool(w.get("busy")) for w in missed),
            # over the target although an ideal server of the measured capacity would have met it on those arrivals
            "windows_over_p99_target_floor_under": sum(w["floor_p99_ms"] is not None
                                                       and w["floor_p99_ms"] <= p99_target_ms for w in missed),
            "windows_floor_over_p99_target": sum(w["floor_p99_ms"] is not None and w["floor_p99_ms"] > p99_target_ms
                                                 for w in windows),
            # over it although `replicas` ideal replicas of the measured capacity would have met it: the service's own
            "windows_over_p99_target_replicas_floor_under": sum(w["floor_replicas_p99_ms"] is not None
                                                                and w["floor_replicas_p99_ms"] <= p99_target_ms
                                                                for w in missed),
            "replicas": replicas,
            "windows_on_busy_machine": sum(bool(w.get("busy")) for w in windows), "cpus": meter.cpus,
            "memory": memory.summary()}
    log(f"soak: {soak['requests']} requests, {soak['errors']} errors; p99 over {p99_target_ms:g} ms in "
        f"{len(missed)} of {len(windows)} windows ({soak['windows_over_p99_target_on_busy_machine']} of them while "
        f"other programs were busy), worst {soak['p99_ms_worst_window']} ms"
        + ("" if capacity is None else f"; the arrivals alone put {soak['windows_floor_over_p99_target']} window(s) "
           f"over it on an ideal server, the service {soak['windows_over_p99_target_floor_under']}"
           + ("" if replicas < 2 else f" ({soak['windows_over_p99_target_replicas_floor_under']} of them under the "
              f"floor of {replicas} ideal replicas)")))
    return soak


def run_soak(base_url: str, door: Door, payloads: Sequence[bytes], *, minutes: float, load: float = 0.8,
             capacity_s: float = 10.0, capacity_concurrency: int = 8, window_s: float = 30.0,
             spike_factor: float = 3.0, spike_s: float = 20.0, recovery_s: float = 30.0,
             memory_pid: int | None = None, memory_interval_s: float = 2.0, replicas: int = 1,
             service_pids: Sequence[int] = (), log=print) -> dict[str, Any]:
    """Capacity, soak, spike and recovery against a running service, every request through `door`; returns the
    figures."""
    asyncio.run(closed_loop(base_url, payloads, 2, min(2.0, capacity_s), door))  # warm-up
    cap_run = asyncio.run(closed_loop(base_url, payloads, capacity_concurrency, capacity_s, door))
    capacity = cap_run["throughput_rps"] or 0.0
    if capacity <= 0:
        raise RuntimeError(f"the capacity run had no successful request: {cap_run['statuses']}")
    rate = load * capacity
    log(f"capacity {capacity:.2f} images/s (closed loop, {capacity_concurrency} clients, {capacity_s:g} s); "
        f"soak at {rate:.2f}/s for {minutes:g} min")

    soak = soak_windows(base_url, door, payloads, rate, minutes=minutes, window_s=window_s, memory_pid=memory_pid,
                        memory_interval_s=memory_interval_s, capacity=capacity, replicas=replicas,
                        service_pids=service_pids, log=log)
    mem = soak["memory"] or {}
    log(f"soak memory: slope "
        f"{mem.get('slope_mib_per_min')} MiB/min, second half {mem.get('slope_second_half_mib_per_min')} MiB/min "
        f"({mem.get('first_third_mean_mib')} -> "
        f"{mem.get('last_third_mean_mib')} MiB)")
    for line in memory_table(mem):
        log(line)

    spike_res = asyncio.run(spike(base_url, payloads, spike_factor * capacity, spike_s, door))
    spike_end = time.perf_counter()
    log(f"spike at {spike_factor:g}x ({spike_res['offered_rps']}/s, {spike_s:g} s): {spike_res['ok']} ok, "
        f"{spike_res['rejected_503_retry_after']} 503 + Retry-After, {spike_res['other_errors']} other errors")

    recovery = recover(base_url, payloads, rate, door, soak, spike_end, recovery_s,
                       _meter(memory_pid, service_pids), log)
    return {"capacity": {"images_per_s": capacity, "run": cap_run}, "soak": soak, "spike": spike_res,
            "recovery": recovery}


def _meter(memory_pid: int | None, service_pids: Sequence[int]) -> LoadWindow:
    """The windows' load meter. The benchmark is `service_pids` and this process alone where given (a service
    started in this process's Ray: its raylet, GCS and whatever else that Ray runs, another test's leftovers, are
    others' load, as they are to the service's latency), else `memory_pid`'s tree and this process's."""
    return LoadWindow(service_pids, trees=False) if service_pids else LoadWindow([memory_pid])


def _cpu_ms_per_answer(load: dict[str, Any], result: dict[str, Any]) -> float | None:
    """CPU the benchmark's trees (service and load generator) spent per answered request in a window."""
    if load.get("benchmark_cpus") is None or not result["ok"]:
        return None
    return round(load["benchmark_cpus"] * result["elapsed_s"] * 1000 / result["ok"], 2)


def recover(base_url: str, payloads: Sequence[bytes], rate: float, door: Door, soak: dict[str, Any],
            spike_end: float, recovery_s: float, meter: LoadWindow, log=print) -> dict[str, Any]:
    """Back to the soak's rate in windows until one is clean: no error, and a p50 back near the soak's
    (under max(2 x, + 50 ms) its median window) or over it only because the service waited for the CPU.

    `spike` waits for every answer, so the first window starts with the queue empty; a window over the bar then
    measures the machine or the service. Each is measured beside the machine's load, as the soak's windows are
    (LoadWindow): when other programs took more than BUSY_SHARE of the CPUs (`busy`) and the service spent no
    more CPU per answer than in the soak (COST_SLACK x its median window), the service did the same work and
    waited for the CPU, and the window counts as clean with its latency not judged (`latency_judged` False). A
    spike's aftermath that works (a backlog, a leak, a spinning thread) raises the CPU per answer and stays
    judged by the latency; one that only waits (a stuck lock) is told apart on a quiet machine alone."""
    baseline = soak["p50_ms_median_window"] or 0.0
    latency_ok = max(2 * baseline, baseline + 50)
    costs = [w["cpu_ms_per_answer"] for w in soak["windows"] if w.get("cpu_ms_per_answer")]
    usual_cost = float(np.median(costs)) if costs else None
    after, recovered_at, judged = [], None, True
    step = max(1.0, min(5.0, recovery_s / 3))
    while time.perf_counter() - spike_end < recovery_s:
        res, record = _measured_window(meter, base_url, payloads, rate, step, door, 1000 + len(after),
                                       len(after), spike_end)
        cost = record["cpu_ms_per_answer"]
        waited = (bool(record["busy"]) and cost is not None and usual_cost is not None
                  and cost <= COST_SLACK * usual_cost)
        after.append({**record, "waited_for_cpu": waited})
        p50 = res["latency"]["p50_ms"]
        log(f"  recovery window {len(after)}: {res['requests']} requests, {res['errors']} errors, p50 {p50} ms, "
            f"p99 {res['latency']['p99_ms']} ms, generator lag p99 {res.get('generator_lag_p99_ms')} ms; "
            f"{describe(record, meter.cpus)}; {cost} CPU-ms an answer (soak {usual_cost})")
        if res["errors"] == 0 and p50 is not None and (p50 <= latency_ok or waited):
            recovered_at, judged = time.perf_counter(), p50 <= latency_ok
            break
    recovery = {"recovered": recovered_at is not None, "windows": after, "latency_ok_below_ms": round(latency_ok, 2),
                "latency_judged": judged if recovered_at else None, "soak_cpu_ms_per_answer": usual_cost,
                "recovery_s": round(recovered_at - spike_end, 1) if recovered_at else None}
    log(f"recovery: {'yes' if recovery['recovered'] else 'NO'}"
        + (f", a clean window within {recovery['recovery_s']} s of the spike's end" if recovered_at else "")
        + ("" if judged else f" (its p50 over {latency_ok:.0f} ms while other programs took the CPU)"))
    return recovery


def people_tokens(location: Path, n: int) -> list[str]:
    """A fresh people registry at `location` with `n` readers; their tokens (shown once, as `trapline people add`)."""
    shutil.rmtree(location, ignore_errors=True)
    registry = PeopleRegistry(str(location))
    return [registry.add(f"soak-{i}", "reader") for i in range(n)]


class PeopleChanging:
    """Adds one person to the registry every `every_s` while the soak runs: each replica's PeopleView sees the
    document change and re-reads it (what a season of `trapline people add` and rotations does)."""

    def __init__(self, location: Path, every_s: float) -> None:
        self.registry, self.every_s, self.added = PeopleRegistry(str(location)), every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="people-changing", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.registry.add(f"added-{self.added}", "reader")
            self.added += 1

    def __enter__(self) -> PeopleChanging:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_service_arguments(parser, image_count=16)
    parser.add_argument("--minutes", type=float, default=10.0, help="soak duration")
    parser.add_argument("--load", type=float, default=0.8, help="soak rate as a fraction of measured capacity")
    parser.add_argument("--capacity-s", type=float, default=10.0, help="closed-loop capacity run length")
    parser.add_argument("--capacity-concurrency", type=int, default=8)
    parser.add_argument("--window-s", type=float, default=30.0, help="soak reporting window")
    parser.add_argument("--spike-factor", type=float, default=3.0)
    parser.add_argument("--spike-s", type=float, default=20.0)
    parser.add_argument("--recovery-s", type=float, default=30.0, help="longest wait for a clean window")
    parser.add_argument("--pid", type=int, default=None, help="with --url: root pid of the service to sample")
    parser.add_argument("--memory-interval-s", type=float, default=2.0)
    parser.add_argument("--max-queued-requests", type=int, default=64, help="with --start: the 503 threshold")
    parser.add_argument("--out", default=str(DEFAULT_ROOT / "soak"), help="directory for soak.json")
    parser.add_argument("--people", type=int, default=0, help=(
        "with --start: a people registry of this many personal tokens (in --out/people); every request carries "
        "the first one's, and one person more is added every --people-change-s, so each replica re-reads it"))
    parser.add_argument("--people-change-s", type=float, default=60.0)
    parser.add_argument("--record", action="store_true", help=(
        "with --start: the service records what it answers (uploads to --out/record/archive, rows to "
        "--out/record/tables) and the load goes to POST /v1/images"))
    parser.add_argument("--token", default=None, help="with --url: the bearer token to send")
    args = parser.parse_args(argv)
    if (args.people or args.record) and not args.start:
        parser.error("--people and --record set up the service: they need --start (with --url, pass --token)")
    payloads = load_payloads(args.images, args.count, args.size)
    config, replicas = None, args.num_replicas or 1
    if args.start:
        ensure_if_bench_model(args.store, args.model)
        sized = sizing(args)
        replicas = sized["num_replicas"]
        config = serve_config(args.store, args.model, batch_wait_timeout_s=args.batch_wait_timeout_s,
                              max_queued_requests=args.max_queued_requests, **sized)
    door = Door(args.model, token=args.token)
    out = Path(args.out)
    if args.record:
        config["record"] = {"archive": str(out / "record" / "archive"), "tables": str(out / "record" / "tables")}
        door = replace(door, path=RECORD_PATH)
    changing = contextlib.nullcontext()
    if args.people:
        config["people"] = {"location": str(out / "people")}
        door = replace(door, token=people_tokens(out / "people", args.people)[0])
        changing = PeopleChanging(out / "people", args.people_change_s)
    memory_pid = os.getpid() if args.start else args.pid
    t0 = time.perf_counter()
    with service(args.url, config) as url, changing:
        # A service started here lives in this process's Ray: its own processes are the benchmark (`_meter`).
        service_pids = serve_processes(os.getpid()) if args.start else ()
        result = run_soak(url, door, payloads, minutes=args.minutes, load=args.load,
                          capacity_s=args.capacity_s, capacity_concurrency=args.capacity_concurrency,
                          window_s=args.window_s, spike_factor=args.spike_factor, spike_s=args.spike_s,
                          recovery_s=args.recovery_s, memory_pid=memory_pid,
                          memory_interval_s=args.memory_interval_s, replicas=replicas,
                          service_pids=service_pids, log=lambda m: print(m, flush=True))
    result.update(config=config, payload_size=args.size, wall_s=round(time.perf_counter() - t0, 1),
                  door={"path": door.path, "personal_token": bool(args.people),
                        "people_added": getattr(changing, "added", 0)},
                  machine=machine_info(), argv=sys.argv[1:] if argv is None else list(argv))
    path = write_json(Path(args.out) / "soak.json", result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
