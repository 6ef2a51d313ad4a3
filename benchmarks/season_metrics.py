"""The season's signals at scale (issue 68): scraping GET /metrics over 1,000,000 image rows, what keeping the gauges
costs a reprocess, and `trapline health` over the same tables.

`python -m benchmarks.season_metrics [--rows 1000000] [--cameras 100] [--scrapes 300] [--work DIR] [--out FILE]`

The tables are seeded with `--rows` image rows over `--cameras` cameras (1 % failed, capture times over a season) in
parts of 50,000 rows, written by the product's `write_results` (as benchmarks/planning.py seeds its own). Then:

1. `Season.refresh` (model_store/tables/season.py): the first (every part read, three columns, and the clock
   checks), one with nothing new (a listing), and one after a reprocess-sized part of 1,000 rows is committed.
2. `--scrapes` sequential GET /metrics on the service's app (its ingress with the house's features, on uvicorn, a
   real HTTP client), once the watcher's first refresh is done: p50, p99, max. A scrape renders the figures the
   watcher keeps; the watcher refreshes every 30 s on its own thread meanwhile. Then scrapes while the watcher runs
   the clock checks (every 10 minutes at most; they read every capture time, in the same process): the worst case.
3. The gauges' cost to a reprocess: the watcher reads each part a run commits once, so its cost per image is one
   incremental refresh over a 1,000-row part divided by its 1,000 images, against an image's time in a reprocess
   (`bench-yolov8n:1`'s ceiling here, 20 ms an image: BENCHMARKS.md's first row); the clock checks (every 10
   minutes at most, while images are added) are timed apart and given as a share of those 10 minutes.
4. `trapline health --tables T --json`, the whole process (wall seconds, peak RSS).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import uvicorn

from batch.views import season as season_view
from benchmarks.common import DEFAULT_ROOT, machine_info, markdown_table, timed_rss, write_json
from model_store.tables.clock_check import check_clock
from model_store.tables.commit import write_results
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import RESULT_SCHEMA
from model_store.tables.season import Season
from serve.ingress import IngressCore, token_digest
from serve.jobs_config import JobsConfig
from serve.local import free_port
from serve.polling import wait_until
from trapline.service import service_features

PART_ROWS = 50_000
IMAGE_MS = 20.0  # bench-yolov8n:1 at its ceiling on this machine (50 images/s; BENCHMARKS.md)
TOKEN = "season-bench"


def rows(start: int, n: int, cameras: int) -> pa.Table:
    """`n` image rows from number `start`: camera i % cameras, a capture every 10 minutes per camera, 1 % failed."""
    i = np.arange(start, start + n)
    base = dt.datetime(2026, 4, 1)
    times = (np.datetime64(base, "us") + (i // cameras * 600_000_000).astype("timedelta64[us]"))
    cams = np.char.add("cam", np.char.zfill((i % cameras).astype(str), 3))
    rel = np.char.add(np.char.add(cams, "/IMG_"), np.char.zfill(i.astype(str), 8))
    failed = i % 100 == 0
    columns = {
        "uri": pa.array(np.char.add("/archive/", np.char.add(rel, ".jpg")).tolist()),
        "rel_path": pa.array(np.char.add(rel, ".jpg").tolist()),
        "content_id": pa.array([f"size=1000;mtime_us={k}" for k in i.tolist()]),
        "size_bytes": pa.array(np.full(n, 1000)), "camera_id": pa.array(cams.tolist()),
        "capture_time": pa.array(times, pa.timestamp("us")), "capture_time_source": pa.array(["path"] * n),
        "status": pa.array(np.where(failed, "failed", "empty").tolist()),
        "error_reason": pa.array([("decode_error" if f else None) for f in failed.tolist()], pa.string()),
        "kind": pa.array(["image"] * n),
        "detections": pa.array([[]] * n, RESULT_SCHEMA.field("detections").type),
    }
    return pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in RESULT_SCHEMA}, schema=RESULT_SCHEMA)


def seed(out: Path, total: int, cameras: int) -> None:
    for start in range(0, total, PART_ROWS):
        write_results(rows(start, min(PART_ROWS, total - start), cameras), out_url=str(out), model_name="bench",
                      model_version="1", model_sha256="0" * 64, filters_hash="f" * 16, run_id=f"seed{start:08d}",
                      metadata={})


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    value = fn()
    return round(time.perf_counter() - t0, 4), value


def scrape_times(tables: Path, work: Path, n: int) -> dict:
    """GET /metrics `n` times on the service's app over real HTTP (after the watcher's first refresh)."""
    jobs = JobsConfig.model_validate({"roots": [str(work)], "working_dir_allowed": False,
                                      "pictures": [{"name": "season", "tables": str(tables), "archive": str(work)}]})
    config = {"models": [{"name": "bench"}], "store": str(work / "store"), "jobs": jobs.resolved().model_dump()}
    app = IngressCore(config, {}, api_token_sha256=token_digest(TOKEN),
                      features=service_features()).__serve_build_asgi_app__()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    try:
        wait_until(lambda: server.started, 30, "the app to listen", 0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=300) as client:
            first, answer = timed(lambda: client.get("/metrics"))
            assert answer.status_code == 200, answer.text
            season = season_view.WATCH.season(str(tables))
            wait_until(lambda: not season.refreshing, 600, "the watcher's first refresh and clock checks", 0.1)
            steady = _scrapes(client, n)  # the usual: refreshes of what is new, in ms, between scrapes
            season.recheck_clock()  # the worst: scrapes while the clock checks read every capture time
            season_view.WATCH._wake.set()
            wait_until(lambda: season.refreshing, 60, "the clock checks to start", 0.01)
            during = []
            while season.refreshing:
                during += _scrapes(client, 1)
            size = len(client.get("/metrics").content)
        return {"first_scrape_s": first, "scrapes": n, **_summary("", steady),
                "scrapes_during_clock_checks": len(during), **_summary("clock_", during), "bytes": size}
    finally:
        server.should_exit = True


def _scrapes(client: httpx.Client, n: int) -> list[float]:
    took = []
    for _ in range(n):
        t0 = time.perf_counter()
        answer = client.get("/metrics")
        took.append((time.perf_counter() - t0) * 1e3)
        assert answer.status_code == 200
    return took


def _summary(prefix: str, took: list[float]) -> dict:
    if not took:
        return {}
    took = sorted(took)
    return {f"{prefix}p50_ms": round(statistics.median(took), 2), f"{prefix}p99_ms": round(took[int(0.99 * (len(took)
            - 1))], 2), f"{prefix}max_ms": round(took[-1], 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.season_metrics", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--cameras", type=int, default=100)
    p.add_argument("--scrapes", type=int, default=300)
    p.add_argument("--work", default=str(DEFAULT_ROOT / "season-metrics"))
    p.add_argument("--out", default=str(DEFAULT_ROOT / "season_metrics.json"))
    args = p.parse_args(argv)
    work = Path(args.work)
    tables = work / "tables"
    shutil.rmtree(work, ignore_errors=True)
    seed_s, _ = timed(lambda: seed(tables, args.rows, args.cameras))
    print(f"{args.rows} rows over {args.cameras} cameras seeded in {seed_s} s", flush=True)

    season = Season(str(tables), clock_every_s=1e9)  # the clock checks timed apart, below
    season._clock_at = -1e9
    first_s, s = timed(season.refresh)
    assert s.up and sum(c.images for c in s.cameras.values()) == args.rows, s.error
    idle_s, _ = timed(season.refresh)
    write_results(rows(args.rows, 1000, args.cameras), out_url=str(tables), model_name="bench", model_version="1",
                  model_sha256="0" * 64, filters_hash="f" * 16, run_id="onepart", metadata={})
    part_s, _ = timed(season.refresh)
    clock_s, found = timed(lambda: check_clock(Tables(open_location(str(tables)))))
    refresh = {"first_refresh_s": first_s, "refresh_nothing_new_s": idle_s, "refresh_one_part_s": part_s,
               "clock_checks_s": clock_s, "clock_findings": len(found),
               "gauges_per_image_ms": round(part_s * 1e3 / 1000, 4),
               "gauges_share_of_image": round(part_s * 1e3 / 1000 / IMAGE_MS, 5),
               "clock_share_of_10_min": round(clock_s / 600, 4)}
    print(markdown_table([refresh], list(refresh)), flush=True)
    scrape = scrape_times(tables, work, args.scrapes)
    print(markdown_table([scrape], list(scrape)), flush=True)
    health = timed_rss([sys.executable, "-m", "trapline.cli", "health", "--tables", str(tables), "--json"],
                       ok_codes=(0, 1))
    health_row = {"health_wall_s": health["wall_s"], "health_peak_rss_mib": health["peak_rss_mib"],
                  "load": health["load"]}
    print(markdown_table([health_row], list(health_row)), flush=True)
    write_json(args.out, {"machine": machine_info(), "rows": args.rows, "cameras": args.cameras, "seed_s": seed_s,
                          "refresh": refresh, "scrape": scrape, "health": health_row,
                          "command": shlex.join(["python", "-m", "benchmarks.season_metrics",
                                                 *(argv if argv is not None else sys.argv[1:])])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
