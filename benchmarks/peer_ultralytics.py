"""The peer: Ultralytics' own `predict` over a folder, timed the way `benchmarks.doors` times trapline.

Runs with the interpreter of a separate virtualenv that has Ultralytics (never the project's):

    python3 -m venv /work/refenv
    /work/refenv/bin/pip install --isolated --cert /etc/ssl/certs/ca-certificates.crt \
        --extra-index-url file:///opt/pypi/simple --extra-index-url file:///opt/pypi-more/simple \
        "setuptools<80" torch==2.14.1 torchvision==0.29.1 ultralytics onnx onnxruntime

(torch and torchvision pinned as a pair: `--isolated` skips pip's config, so an unpinned install pairs the
machine's CPU torch with a CUDA torchvision whose `_C.so` cannot load, and Ultralytics' first prediction fails
with "operator torchvision::nms does not exist"; the extra indexes are this machine's local ones.)
    /work/refenv/bin/python benchmarks/peer_ultralytics.py --model M.onnx --images DIR [--imgsz 640]

It imports nothing from trapline. `YOLO(model).predict(source=DIR, stream=True)` with the
library's defaults (what a user would pick instead of trapline: its own decode, letterbox, ONNX
Runtime session with default threads, NMS); one image first as a warm-up, not timed. Prints one
JSON line: images, seconds, images/s, boxes. With `--whole` there is no warm-up: the process is the
whole job, timed from outside by `benchmarks.whole_job`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="an ONNX file exported by Ultralytics")
    p.add_argument("--images", required=True, help="a folder of JPEGs (not recursive, as Ultralytics reads it)")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--whole", action="store_true", help="no warm-up image (the caller times the whole process)")
    args = p.parse_args()

    os.environ.setdefault("YOLO_OFFLINE", "1")  # no update checks, no downloads: the model is a local file
    from ultralytics import YOLO

    model = YOLO(args.model, task="detect")
    files = sorted(str(f) for f in Path(args.images).iterdir() if f.suffix.lower() in (".jpg", ".jpeg"))
    if not args.whole:
        list(model.predict(source=files[0], imgsz=args.imgsz, device="cpu", verbose=False))  # warm-up
    boxes, t0 = 0, time.perf_counter()
    for result in model.predict(source=args.images, imgsz=args.imgsz, device="cpu", stream=True, verbose=False):
        boxes += len(result.boxes)
    seconds = time.perf_counter() - t0
    print(json.dumps({"images": len(files), "seconds": round(seconds, 3),
                      "images_per_s": round(len(files) / seconds, 2), "boxes": boxes}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
