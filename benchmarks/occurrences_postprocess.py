"""`trapline postprocess --filter track` end to end on stored tables: how long linking and writing the occurrences
table takes at a given number of detections, and how long reading them back (what GET /v1/occurrences does) takes.

`flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.occurrences_postprocess [--detections 100000]
 [--cameras 10] [--appearance none]`: synthetic light-trap tables written directly (no model, no pixels: with
`--appearance colour` each frame is a small JPEG, so the descriptor's cost shows), one JSON line of figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from batch.postprocessing import occurrences
from model_store.core.imaging import encode_jpeg
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS_SCHEMA, IMAGES_SCHEMA
from model_store.tables.writer import part_name, write_part
from tests.fixtures.postprocess import postprocess

RUN = "20260101T000000Z-abcdef"


def write_tables(root: Path, detections: int, cameras: int, pixels: bool, seed: int = 0) -> tuple[Path, int]:
    """Sheets photographed every 20 s; ~10 moths per frame sitting for minutes with jitter, arriving and leaving."""
    rng = np.random.default_rng(seed)
    per_frame = 10
    frames = max(detections // (cameras * per_frame), 1)
    images, dets = [], []
    start = dt.datetime(2026, 6, 1, 21, 0)
    for cam in range(cameras):
        slots = rng.uniform(0.05, 0.9, size=(per_frame, 2))
        for f in range(frames):
            leaving = rng.random(per_frame) < 0.02  # a moth leaves, another lands elsewhere
            slots[leaving] = rng.uniform(0.05, 0.9, size=(int(leaving.sum()), 2))
            uri = str(root / "archive" / f"cam{cam:02d}" / f"{f:06d}.jpg")
            if pixels:
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
                rgb = np.full((120, 160, 3), 90, np.uint8)
                for x, y in slots:
                    rgb[int(y * 120):int(y * 120) + 5, int(x * 160):int(x * 160) + 6] = (120, 80, 40)
                Path(uri).write_bytes(encode_jpeg(rgb))
            images.append({"uri": uri, "content_id": f"c{cam}-{f}", "camera_id": f"cam{cam:02d}",
                           "capture_time": start + dt.timedelta(seconds=20 * f), "capture_time_source": "path",
                           "width": 160, "height": 120, "status": "ok", "detection_count": per_frame,
                           "raw_detection_count": per_frame, "filters_hash": "0" * 16, "run_id": RUN,
                           "processed_at": dt.datetime.now(dt.timezone.utc)})
            jitter = rng.normal(0, 0.002, size=(per_frame, 2))
            for j, (x, y) in enumerate(slots + jitter):
                dets.append({"uri": uri, "content_id": f"c{cam}-{f}", "detection_index": j, "label": "moth",
                             "class_id": 0, "score": 0.8, "bbox_x": float(x), "bbox_y": float(y), "bbox_w": 0.04,
                             "bbox_h": 0.04, "kept": True, "flags": [], "filters_hash": "0" * 16, "run_id": RUN})
    meta = {"model": {"name": "bench", "version": "1", "labels": ["moth"]}, "filters": {"hash": "0" * 16, "specs": []}}
    tables = root / "tables"
    write_part(open_location(str(tables)), "bench", "1", part_name(RUN, [(r["uri"], r["content_id"]) for r in images]),
               pa.Table.from_pylist(images, schema=IMAGES_SCHEMA), pa.Table.from_pylist(dets, schema=DETECTIONS_SCHEMA),
               meta)
    return tables, len(dets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detections", type=int, default=100_000)
    parser.add_argument("--cameras", type=int, default=10)
    parser.add_argument("--appearance", choices=["none", "colour"], default="none")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        tables, n = write_tables(Path(d), args.detections, args.cameras, args.appearance == "colour")
        lines: list[str] = []
        t0 = time.perf_counter()
        report = postprocess(str(tables), "track", {"appearance": args.appearance}, progress=lines.append,
                                 progress_interval=1e9)
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        shown = occurrences.load(Tables(open_location(str(tables))))
        read_s = time.perf_counter() - t1
    print(json.dumps({"detections": n, "cameras": args.cameras, "appearance": args.appearance,
                      "occurrences": report.occurrences, "frames_per_occurrence": report.frames_per_occurrence,
                      "postprocess_s": round(wall, 2), "detections_per_s": round(n / wall), "read_back_s":
                      round(read_s, 2), "read_back_rows": len(shown.rows), "load_1min": os.getloadavg()[0]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
