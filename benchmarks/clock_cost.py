"""The cost of placing pictures in time on every read: `Tables.current_images` with deployments and clock
corrections recorded against the same read without them (issue 47's target: within 10 %).

`python -m benchmarks.clock_cost [--count 1000000] [--cameras 100] [--work DIR] [--repeats 3]`

The tables: COUNT image rows (no detections) from CAMERAS cameras over 2025, a picture every few minutes, written
through the job's own writer in parts of 100,000 rows. The book: two deployments per camera (moved on 1 July, in
Europe/Amsterdam: both daylight-saving changes fall inside), and a clock correction on every other camera. Timed
in one process, alternating (without, with) REPEATS times; the median and the fastest of each, and the placing alone
(`apply_clock` on the frame read without), and `trapline tables check`'s clock part (`check_clock`) with its findings
by kind: the synthetic cameras take no setup or pickup pictures (hints), and a correction over a clock that was
right makes a jump where it begins.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from batch.deployments import records
from model_store.tables.clock import TimeBook, apply_clock
from model_store.tables.clock_check import check_clock
from model_store.tables.commit import write_results
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import RESULT_SCHEMA

PART_ROWS = 100_000
YEAR_START = np.datetime64("2025-01-01T00:00:00", "us")


def write_tables(out: Path, count: int, cameras: int) -> None:
    """COUNT image rows, cameras round-robin, each camera's times increasing through 2025."""
    per_camera = -(-count // cameras)
    step_us = int(365 * 86400 * 1e6 // (per_camera + 1))
    for start in range(0, count, PART_ROWS):
        n = min(PART_ROWS, count - start)
        i = np.arange(start, start + n)
        cam, k = i % cameras, i // cameras
        times = YEAR_START + (k * step_us + cam * 1_000_000).astype("timedelta64[us]")
        uris = pa.array([f"/archive/cam{c:03d}/IMG_{j:06d}.JPG" for c, j in zip(cam, k, strict=True)])
        table = pa.table({
            "uri": uris, "rel_path": pa.compute.utf8_slice_codeunits(uris, 9), "content_id": pa.array(["size=1"] * n),
            "size_bytes": pa.array(np.ones(n, np.int64)), "camera_id": pa.array([f"cam{c:03d}" for c in cam]),
            "capture_time": pa.array(times), "capture_time_source": pa.array(["exif"] * n),
            "width": pa.array(np.full(n, 64, np.int32)), "height": pa.array(np.full(n, 48, np.int32)),
            "status": pa.array(["empty"] * n), "error_reason": pa.nulls(n, pa.string()),
            "error": pa.nulls(n, pa.string()), "detection_count": pa.array(np.zeros(n, np.int32)),
            "raw_detection_count": pa.array(np.zeros(n, np.int32)), "max_score": pa.nulls(n, pa.float64()),
            "detections": pa.array([[]] * n, RESULT_SCHEMA.field("detections").type),
        }, schema=RESULT_SCHEMA)
        write_results(table, out_url=str(out), model_name="bench", model_version="1", model_sha256="0" * 64,
                      filters_hash="f", run_id=f"20260101T000000Z-{start // PART_ROWS:06x}", metadata={})


def record_book(out: Path, cameras: int) -> None:
    rows = []
    for c in range(cameras):
        for name, start, end in (("a", "2025-01-01T00:00:00", "2025-07-01T00:00:00"),
                                 ("b", "2025-07-01T00:00:01", "2026-01-01T06:00:00")):
            rows.append({"deploymentID": f"cam{c:03d}-{name}", "cameraID": f"cam{c:03d}", "latitude": 52.0,
                         "longitude": 5.0, "deploymentStart": start, "deploymentEnd": end})
    records.import_deployments(str(out), rows, "bench", timezone="Europe/Amsterdam")
    for c in range(0, cameras, 2):
        records.correct_clock(str(out), "bench", camera_id=f"cam{c:03d}", recorded_from="2025-03-01T00:00:00",
                              recorded_until="2025-09-01T00:00:00", offset_s=3780)


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--cameras", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--work", help="a directory for the two tables (default: a temporary one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        plain, placed = work / "plain", work / "placed"
        t_write, _ = timed(lambda: [write_tables(d, args.count, args.cameras) for d in (plain, placed)])
        record_book(placed, args.cameras)
        print(f"wrote 2 x {args.count} image rows in {t_write:.0f} s", flush=True)
        without, with_ = [], []
        for _ in range(args.repeats):  # one frame alive at a time: the last one's memory is not in the next read
            frame = out = None
            gc.collect()
            t, frame = timed(lambda: Tables(open_location(str(plain))).current_images("bench", "1", "f"))
            without.append(t)
            del frame
            gc.collect()
            t, out = timed(lambda: Tables(open_location(str(placed))).current_images("bench", "1", "f"))
            with_.append(t)
        del out
        gc.collect()
        frame = Tables(open_location(str(plain))).current_images("bench", "1", "f")
        book = TimeBook.load(open_location(str(placed)))
        t_apply, placed_frame = timed(lambda: apply_clock(frame, book))
        assert placed_frame["deployment_id"].notna().all(), "every picture has a deployment"
        t_check, found = timed(lambda: check_clock(Tables(open_location(str(placed)))))
        result = {"images": args.count, "cameras": args.cameras, "deployments": len(book.deployments),
                  "corrections": len(book.corrections), "read_without_s": statistics.median(without),
                  "read_with_s": statistics.median(with_), "runs_without": without, "runs_with": with_,
                  "apply_clock_s": t_apply, "check_clock_s": t_check,
                  "check_findings": dict(Counter(f.kind for f in found))}
        result["ratio"] = result["read_with_s"] / result["read_without_s"]
        result["ratio_of_fastest"] = min(with_) / min(without)  # the machine's other load adds to either at random
        result["placing_share"] = t_apply / min(without)
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
