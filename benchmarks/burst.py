"""Bursts above capacity, one model served in one hop: does the excess get its 503 at once, and typed?

`python -m benchmarks.burst [--model bench-null] [--factors 3,6] [--spike-s 2] [--out FILE]`

For each replica sizing, starts the service (serve.local.run_local, one replica), measures its
capacity (closed loop, 4 clients), then sends `--factors` x capacity at fixed gaps for `--spike-s`
(soak.spike) and reports how long the burst took to be answered, how many were served, refused
with 503 + Retry-After (typed: trapline's JSON from the replica; else Serve's proxy's plain text)
or lost to the client's 30 s timeout, and the latency of each kind of answer. The sizings:

- `headroom`: trapline's default max_ongoing_requests (what the replica admits + REFUSAL_HEADROOM);
- `plus4`: what the replica admits + 4, the default before REFUSAL_HEADROOM: a burst finds the
  replica full, and waits in Serve's router, whose routing tasks retry a full replica every 0.5 s.

The default model is the null model (no inference cost): capacity is then the HTTP plumbing's, the
case of a fast accelerator, where a burst of several times capacity is hundreds of requests/s.
The load generator shares the machine with the service (on 2 cores, it takes a good part of it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_model import ensure_if_bench_model
from benchmarks.common import DEFAULT_ROOT, DEFAULT_STORE, machine_info, parse_list, write_json
from benchmarks.serve_load import Door, closed_loop, load_payloads, serve_config, service
from benchmarks.soak import spike
from serve.config import DeploymentServeConfig

MAX_BATCH, MAX_QUEUED = 8, 32


def plus4(model: str) -> int:
    """max_ongoing_requests = what a one-hop replica admits + 4 (trapline's default before REFUSAL_HEADROOM)."""
    m = DeploymentServeConfig(name=model, max_batch_size=MAX_BATCH, max_queued_requests=MAX_QUEUED)
    rt = m.runtime(1, 1, queued_online=MAX_QUEUED)
    return rt.online_limit + rt.bulk_limit + 4


def run_sizing(args: argparse.Namespace, payloads: list[bytes], extra: dict[str, Any]) -> dict[str, Any]:
    cfg = serve_config(args.store, args.model, MAX_BATCH, 0.005, num_cpus=args.num_cpus,
                       max_queued_requests=MAX_QUEUED, **extra)
    door = Door(args.model)
    out: dict[str, Any] = {"extra": extra, "bursts": []}
    with service(None, cfg, num_cpus=args.ray_cpus) as url:
        asyncio.run(closed_loop(url, payloads, 2, 2.0, door))  # warm-up
        out["capacity_rps"] = capacity = asyncio.run(closed_loop(url, payloads, 4, 3.0, door))["throughput_rps"]
        for factor in args.factors:
            res = asyncio.run(spike(url, payloads, factor * capacity, args.spike_s, door))
            res["factor"] = factor
            out["bursts"].append(res)
            print(f"  {factor:g} x {capacity:.1f}/s for {args.spike_s:g} s: {res['requests']} requests answered in "
                  f"{res['elapsed_s']} s; {res['ok']} ok (p50 {res['latency_ok']['p50_ms']} ms), "
                  f"{res['rejected_503_retry_after']} 503 + Retry-After ({res['typed_503']} typed, p50 "
                  f"{res['latency_503']['p50_ms']} ms), {res['other_errors']} other", flush=True)
            time.sleep(2)  # let the tail drain before the next burst
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bench-null")
    parser.add_argument("--store", default=str(DEFAULT_STORE))
    parser.add_argument("--factors", default="3,6", help="burst rates as multiples of the measured capacity")
    parser.add_argument("--spike-s", type=float, default=2.0)
    parser.add_argument("--size", default="160x120", help="payload image size")
    parser.add_argument("--num-cpus", type=float, default=0.5, help="CPUs per replica")
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--sizings", default="headroom,plus4")
    parser.add_argument("--out", default=str(DEFAULT_ROOT / "burst.json"))
    args = parser.parse_args(argv)
    args.factors = parse_list(args.factors, float)
    ensure_if_bench_model(args.store, args.model)
    payloads = load_payloads(None, 4, args.size)
    result: dict[str, Any] = {"model": args.model, "spike_s": args.spike_s, "machine": machine_info(), "sizings": {}}
    for name in parse_list(args.sizings, str):
        extra = {} if name == "headroom" else {"max_ongoing_requests": plus4(args.model)}
        print(f"{name}: {extra or 'default max_ongoing_requests'}", flush=True)
        result["sizings"][name] = run_sizing(args, payloads, extra)
    print(f"wrote {write_json(Path(args.out), result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
