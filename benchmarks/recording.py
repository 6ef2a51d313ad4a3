"""What keeping costs: recorded uploads/s (`POST /v1/images`) against `/v1/detect` requests/s, same model, same
box, same clients; and the rows/s one flush of the journal commits.

`python -m benchmarks.recording [--model bench-yolov8n] [--clients 4] [--seconds 20] [--rounds 2] [--out FILE]`

One service (one replica, one hop) recording into a local archive and tables under the benchmark's directory.
Each round runs the two doors back to back with `--clients` closed-loop clients, so both see the same load;
every recorded upload is a distinct image (a replay would measure nothing), so `--images` must cover
`--seconds` of uploads. Then `flush`: `journal.commit` of `--flush-records` synthetic records (5 detections each)
into a fresh local table, timed alone (the part written is what one flush of that many uploads writes).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_model import ensure_if_bench_model
from benchmarks.common import DEFAULT_ROOT, DEFAULT_STORE, machine_info, ratio, write_json
from benchmarks.images import FULL_HD, ensure_images, load_bytes
from benchmarks.serve_load import serve_config, service
from ground.ray_output import mode


async def closed(url: str, path: str, payloads: list[bytes], clients: int, seconds: float,
                 params: Any = None) -> dict[str, Any]:
    """`clients` clients send `payloads` in order (each once, while they last) for `seconds`; 2xx counted."""
    statuses: dict[int, int] = {}
    queue = list(enumerate(payloads))
    latencies: list[float] = []

    async def one(client: httpx.AsyncClient, deadline: float) -> None:
        while queue and time.perf_counter() < deadline:
            i, data = queue.pop(0)
            t0 = time.perf_counter()
            r = await client.post(url + path, content=data, params=params(i) if params else None)
            latencies.append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(client, t0 + seconds) for _ in range(clients)))
        wall = time.perf_counter() - t0
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    latencies.sort()
    return {"ok": ok, "statuses": statuses, "wall_s": round(wall, 2), "rps": round(ok / wall, 2),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None}


def flush_rate(records: int, detections: int = 5) -> dict[str, Any]:
    """Rows/s of one `journal.commit` of `records` synthetic uploads into a fresh local table."""
    from model_store.tables import journal
    from model_store.tables.archive import open_location
    from model_store.tables.lease import RunLease

    tmp = Path(tempfile.mkdtemp(prefix="trapline-flush-"))
    try:
        storage = open_location(str(tmp / "tables"))
        writer = "20260101T000000Z-bench0"
        lease = RunLease(storage, *journal.lease_key(writer), writer).acquire()
        det = {"label": "animal", "class_id": 0, "score": 0.9, "bbox_x": 0.1, "bbox_y": 0.1, "bbox_w": 0.2,
               "bbox_h": 0.2, "kept": True, "flags": []}
        recs = [journal.Recorded(
            image_id=f"{i:032x}", writer=writer, model_name="m", model_version="1", model_sha256="0" * 64,
            filters_hash="f", metadata={"model": {"name": "m"}},
            row={"uri": f"/archive/cam/{i}.jpg", "rel_path": f"cam/{i}.jpg", "content_id": f"size={i}",
                 "size_bytes": 1000, "camera_id": "cam", "capture_time": dt.datetime(2026, 1, 1),
                 "capture_time_source": "received", "width": 1920, "height": 1080, "status": "ok",
                 "error_reason": None, "error": None, "detection_count": detections,
                 "raw_detection_count": detections, "max_score": 0.9,
                 "detections": [{**det, "detection_index": j} for j in range(detections)],
                 "classifications": [], "snips": []}) for i in range(records)]
        for rec in recs:  # as the uploads were journaled when they were answered
            journal.claim(storage, rec)
        t0 = time.perf_counter()
        n = journal.commit(storage, recs, writer)
        wall = time.perf_counter() - t0
        lease.release()
        return {"records": n, "detections": n * detections, "wall_s": round(wall, 3),
                "image_rows_per_s": round(n / wall, 1), "detection_rows_per_s": round(n * detections / wall, 1)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.recording", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="bench-yolov8n")
    p.add_argument("--store", default=str(DEFAULT_STORE))
    p.add_argument("--images", type=int, default=400, help="distinct 1080p JPEGs (each is recorded once)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--flush-records", type=int, default=1000)
    p.add_argument("--num-cpus", type=int, default=None)
    p.add_argument("--out", default=str(DEFAULT_ROOT / "recording.json"))
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)

    with mode(quiet=not args.verbose):
        ensure_if_bench_model(args.store, args.model)
        payloads = load_bytes(ensure_images(args.images, FULL_HD))
        work = Path(tempfile.mkdtemp(prefix="trapline-record-bench-"))
        config = serve_config(args.store, args.model, num_cpus=1.0)
        config["record"] = {"archive": str(work / "archive"), "tables": str(work / "tables"), "flush_rows": 1000,
                            "flush_interval_s": 5.0}
        rounds, fresh = [], list(payloads)
        try:
            with service(config=config, num_cpus=args.num_cpus) as url:
                asyncio.run(closed(url, "/v1/detect", payloads[:8], 1, 60))  # warm both paths
                for r in range(args.rounds):
                    detect = asyncio.run(closed(url, "/v1/detect", payloads, args.clients, args.seconds))
                    batch, fresh = fresh, []
                    record = asyncio.run(closed(url, "/v1/images", batch, args.clients, args.seconds,
                                                params=lambda i, r=r: {"camera": f"cam{(i + r) % 8:02d}"}))
                    if record["ok"] < len(batch):
                        fresh = batch[record["ok"]:]
                    rounds.append({"round": r + 1, "detect": detect, "record": record,
                                   "record_over_detect": ratio(record["rps"], detect["rps"])})
                    print(f"round {r + 1}: /v1/detect {detect['rps']} req/s (p50 {detect['p50_ms']} ms), "
                          f"/v1/images {record['rps']} uploads/s (p50 {record['p50_ms']} ms): "
                          f"{rounds[-1]['record_over_detect']} x", flush=True)
                    if not fresh:
                        print("out of distinct images: give --images more", file=sys.stderr)
                        break
        finally:
            shutil.rmtree(work, ignore_errors=True)
        flush = flush_rate(args.flush_records)
        print(f"one flush of {flush['records']} uploads: {flush['wall_s']} s, {flush['image_rows_per_s']} image rows/s "
              f"({flush['detection_rows_per_s']} detection rows/s)")
    write_json(args.out, {"machine": machine_info(), "model": args.model, "clients": args.clients,
                          "seconds": args.seconds, "rounds": rounds, "flush": flush})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
