"""What masks cost: a segmentation model against its detection twin, per image, on the library path.

The twins are YOLOv8n and YOLOv8n-seg (Ultralytics yaml, full nano width, random-initialised and made to
detect, exported at 640 with defaults) written by the reference script into a directory outside the repo::

    /work/refenv/bin/python tests/fixtures/reference/build_segment.py --twins /tmp/twins
    python -m benchmarks.segment_cost --twins /tmp/twins [--kept 5] [--score 0.05] [--seconds 20]

Both are published with no config but `max_detections` = `--kept`, so every image keeps at most that many
objects, and run through the bytes -> record path both doors take (`prepare_bytes`, `infer`, `postprocess`) on
the reference images (1920x1080, 1000x1000, 4000x3000, 97x61, 601x997 portrait), one image at a time.
Reported per image: the whole path, the forward pass alone, and postprocess alone (where the masks are
assembled and RLE-encoded); the mask work is seg postprocess minus detection postprocess.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine_info, print_table, ratio, write_json
from model_store import ModelStore
from model_store.core.imaging import DEFAULT_MAX_PIXELS

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference"
IMAGES = [REFERENCE / "images" / n for n in ("wide_1920x1080.jpg", "square_1000x1000.jpg", "photo_4000x3000.jpg",
                                             "tiny_97x61.jpg")] + [REFERENCE / "seg" / "portrait_601x997.jpg"]


def measure(det, images: list[bytes], seconds: float) -> dict[str, float]:
    """Median ms per image of each stage, over rounds of every image until `seconds` have passed."""
    stages: dict[str, list[float]] = {"prepare": [], "infer": [], "postprocess": [], "total": [], "kept": []}
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(stages["total"]) < 3 * len(images):
        for data in images:
            t0 = time.perf_counter()
            prepared, meta = det.prepare_bytes(data, DEFAULT_MAX_PIXELS)
            t1 = time.perf_counter()
            [raw] = det.infer([prepared])
            t2 = time.perf_counter()
            record = det.postprocess(raw, meta)
            t3 = time.perf_counter()
            for key, value in (("prepare", t1 - t0), ("infer", t2 - t1), ("postprocess", t3 - t2), ("total", t3 - t0)):
                stages[key].append(value * 1000)
            stages["kept"].append(len(record.detections))
    return {k: round(statistics.mean(v), 3) for k, v in stages.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twins", required=True, help="directory with yolov8n.onnx and yolov8n_seg.onnx")
    parser.add_argument("--kept", type=int, default=5, help="max_detections of both models")
    parser.add_argument("--score", type=float, default=None,
                        help="score_threshold of both models (default: the export's, 0.25); lower keeps more objects")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per model")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    parser.add_argument("--out", default="bench-results/segment_cost.json")
    args = parser.parse_args(argv)
    images = [p.read_bytes() for p in IMAGES]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(str(Path(tmp) / "store"), cache_dir=str(Path(tmp) / "cache"))
        for name in ("yolov8n", "yolov8n_seg"):
            config: dict = {"max_detections": args.kept}
            if args.score is not None:
                config["score_threshold"] = args.score
            store.publish(Path(args.twins) / f"{name}.onnx", name, "1", config=config)
            det = store.load_detector(f"{name}:1", threads=args.threads)
            det.warmup()
            rows.append({"model": name, "task": det.config.task, **measure(det, images, args.seconds)})
    det_row, seg_row = rows
    summary = {
        "seg / det, whole path": ratio(seg_row["total"], det_row["total"]),
        "seg / det, forward pass": ratio(seg_row["infer"], det_row["infer"]),
        "mask work ms / image": round(seg_row["postprocess"] - det_row["postprocess"], 3),
        "mask work / det whole path": ratio(seg_row["postprocess"] - det_row["postprocess"], det_row["total"]),
    }
    print_table(rows, ["model", "task", "kept", "prepare", "infer", "postprocess", "total"])
    for key, value in summary.items():
        print(f"{key}: {value}")
    write_json(args.out, {"rows": rows, "summary": summary, "kept": args.kept, "score": args.score,
                          "threads": args.threads, "machine": machine_info()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
