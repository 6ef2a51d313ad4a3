"""The naive baseline: read, decode and predict one image at a time in a loop, like a Celery worker.

`python -m benchmarks.naive --model bench-yolov8n:1 [--store DIR] [--images DIR | --count 32] [--seconds 10]`

One process, one detector, ONNX Runtime's default threads (or `--threads`), batch size 1,
no overlap between decoding and inference. It uses the product's own decode and detector,
so the difference to trapline is only in how the work is scheduled.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_model import ensure_if_bench_model
from benchmarks.common import DEFAULT_IMAGES, DEFAULT_MODEL, DEFAULT_STORE, latency_summary, write_json
from model_store import ModelStore, decode_image


def run_naive(paths: list[Path], ref: str = DEFAULT_MODEL, store_root: str = str(DEFAULT_STORE),
              threads: int | None = None, seconds: float = 10.0, min_images: int = 3,
              device: str = "cpu") -> dict[str, Any]:
    """Loop over `paths` (cycling) for `seconds`; returns images/s and per-image latency."""
    detector = ModelStore(store_root).load_detector(ref, device=device, threads=threads)
    detector.predict_batch([decode_image(paths[0].read_bytes())])  # first call pays allocation, not timed
    per_image, detections = [], 0
    start = time.perf_counter()
    i = 0
    while i < min_images or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        data = paths[i % len(paths)].read_bytes()
        result = detector.predict_batch([decode_image(data)])[0]
        per_image.append(time.perf_counter() - t0)
        detections += len(result.detections)
        i += 1
    wall = time.perf_counter() - start
    return {"model": ref, "threads": threads or "ort-default", "images": i, "wall_s": round(wall, 3),
            "images_per_s": round(i / wall, 2), "latency": latency_summary(per_image), "detections": detections}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--store", default=str(DEFAULT_STORE))
    parser.add_argument("--images", default=None, help="directory of JPEGs (default: generated 1920x1080 set)")
    parser.add_argument("--count", type=int, default=32, help="generated images when --images is not given")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: ORT's own)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", default=None, help="write the result JSON here")
    args = parser.parse_args(argv)
    if args.images:
        paths = sorted(p for p in Path(args.images).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    else:
        from benchmarks.images import ensure_images

        paths = ensure_images(args.count, root=DEFAULT_IMAGES)
    ensure_if_bench_model(args.store, args.model)
    result = run_naive(paths, args.model, args.store, args.threads, args.seconds)
    lat = result["latency"]
    print(f"naive loop: {result['images_per_s']:.2f} images/s over {result['images']} images; "
          f"per image p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms")
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
