"""A YOLOv8s-sized export for timing (issue 34): `YOLO("yolov8s.yaml").export(format="onnx")`, random weights.

Runs in the reference venv (Ultralytics), never the project's, and downloads nothing (offline, as
tests/fixtures/reference/build_reference.py):

    /work/refenv/bin/python benchmarks/peers/build_yolov8s.py --out bench-results/yolov8s/yolov8s.onnx

Ultralytics' export defaults: static batch 1, square 640, opset of the installed exporter, its
metadata (imgsz, names, stride) written into the file, 11.2 M parameters, ~43 MB. Random weights
cost what trained ones cost to run (same graph, same shapes); they detect little, which is fine for
speed (NMS of a handful of boxes). The file is not committed: it is rebuilt in about a minute.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench-results/yolov8s/yolov8s.onnx")
    p.add_argument("--arch", default="yolov8s.yaml", help="any Ultralytics architecture yaml")
    args = p.parse_args()
    out = Path(args.out).resolve()
    work = Path(tempfile.mkdtemp(prefix="trapline-yolov8s-"))
    os.environ.update(YOLO_OFFLINE="1", YOLO_VERBOSE="False", YOLO_CONFIG_DIR=str(work / "config"))
    os.chdir(work)  # Ultralytics writes the export beside its source: keep it out of the repository
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO(args.arch)
    exported = Path(model.export(format="onnx"))
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exported, out)
    shutil.rmtree(work, ignore_errors=True)
    params = sum(p.numel() for p in model.model.parameters())
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB, {params / 1e6:.1f} M parameters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
