"""What benchmarks/doors.py sends over HTTP: closed loops (also timing the 503s), an open loop at light
load, and requests one at a time whose answers say where the time went."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from benchmarks.serve_load import Door, closed_loop, open_loop


def http_closed(url: str, payloads: list[bytes], concurrency: int, seconds: float) -> dict[str, Any]:
    res = asyncio.run(closed_loop(url, payloads, concurrency, seconds, Door()))
    return {"concurrency": concurrency, "rps": res["throughput_rps"], "p50_ms": res["latency"]["p50_ms"],
            "statuses": res["statuses"], "requests": res["requests"]}


def refused_latency(url: str, payloads: list[bytes], concurrency: int, seconds: float,
                    honour_retry_after: bool = False) -> dict[str, Any]:
    """Closed loop that also times the 503 answers (how fast the excess is told to come back later).
    After a 503 a client waits 50 ms (impatient), or what its Retry-After header says."""
    import httpx

    ok, refused, statuses = [], [], {}

    async def client(c: httpx.AsyncClient, k: int, deadline: float) -> None:
        i = k
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            r = await c.post(url + "/v1/detect", content=payloads[i % len(payloads)])
            (ok if r.status_code == 200 else refused).append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 503:
                await asyncio.sleep(float(r.headers.get("retry-after", 1)) if honour_retry_after else 0.05)
            i += concurrency

    async def go() -> float:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as c:
            t0 = time.perf_counter()
            await asyncio.gather(*(client(c, k, t0 + seconds) for k in range(concurrency)))
            return time.perf_counter() - t0

    elapsed = asyncio.run(go())
    def p50(xs: list[float]) -> float | None:
        return round(1000 * sorted(xs)[len(xs) // 2], 1) if xs else None

    return {"concurrency": concurrency, "honour_retry_after": honour_retry_after,
            "rps": round(len(ok) / elapsed, 2), "ok_p50_ms": p50(ok),
            "refused_share": round(len(refused) / max(1, len(ok) + len(refused)), 3), "refused_p50_ms": p50(refused),
            "statuses": statuses}


def light_load(url: str, payloads: list[bytes], rate: float, seconds: float) -> dict[str, Any]:
    res = asyncio.run(open_loop(url, payloads, rate, seconds, Door()))
    return {"rate": rate, "p50_ms": res["latency"]["p50_ms"], "p95_ms": res["latency"]["p95_ms"],
            "statuses": res["statuses"]}


def one_at_a_time(url: str, payloads: list[bytes], count: int, gap_s: float = 0.5,
                  between: Callable[[], float] | None = None) -> dict[str, Any]:
    """`count` requests, each sent `gap_s` after the last answer: no queueing, so the answer's own
    timing_ms says where a light-load request's time goes. Medians, ms; `hop` is what the replica did
    not time (proxy, HTTP, JSON, client). `between()`, when given, runs `gap_s` after each answer (e.g. one
    batch-1 pass in a plain process, returning its ms): paired with the requests, it sees the same load,
    and `over_between` is the median of each request's total minus its pair's."""
    import statistics

    import httpx

    rows = []
    with httpx.Client(timeout=60) as client:
        for i in range(count):
            time.sleep(gap_s)
            t0 = time.perf_counter()
            r = client.post(url + "/v1/detect", content=payloads[i % len(payloads)])
            r.raise_for_status()
            rows.append({"total": (time.perf_counter() - t0) * 1000, **r.json()["timing_ms"]})
            if between is not None:
                time.sleep(gap_s)
                rows[-1]["between"] = between()
    stages = ("decode", "preprocess", "queue", "inference", "postprocess")
    out = {k: round(statistics.median(r.get(k, 0.0) for r in rows), 1) for k in ("total", *stages)}
    if between is not None:
        out["between"] = round(statistics.median(r["between"] for r in rows), 1)
        out["over_between"] = round(statistics.median(r["total"] - r["between"] for r in rows), 1)
    out["hop"] = round(statistics.median(r["total"] - sum(r.get(k, 0.0) for k in stages) for r in rows), 1)
    return out
