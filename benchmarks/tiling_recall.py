"""Recall and false boxes per box-size bucket, tiled against plain (issue 70), on a labelled set made here.

    flock /tmp/trapline-bench.lock python -m benchmarks.tiling_recall --mosaics 20

The labelled set: the demo scenes (model_store/demo/scenes.py; synthetic camera-trap-like scenes, held-out seed
2424, never trained on) four by four into one 2560x1440 frame, so every object is a quarter of the size it was
trained at against the frame: small animals on a large frame, with exact boxes. The detector: the trained demo
YOLOv8 (tests/fixtures/reference/trained_demo_yolov8.onnx, Ultralytics' export at 320, published as its user
would). Plain = one letterboxed pass; tiled = 320-px tiles at 0.2 overlap plus the whole-image pass, greedy NMM by
IoS (the defaults). A truth box is found by a same-class box at IoU >= 0.5 (greedy, best score first); a box that
finds none is a false box. Buckets by the truth box's (or the false box's) longer side in frame pixels.
Synthetic scenes, not real photos: say so beside any figure.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import machine_info, print_table, write_json
from model_store import ModelStore
from model_store.core.metrics import greedy_match
from model_store.demo.scenes import render_dataset

MODEL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference" / "trained_demo_yolov8.onnx"
GRID, SCENE = 4, (640, 360)
BUCKETS = [(0, 32), (32, 64), (64, 128), (128, 10_000)]


def mosaics(n: int, seed: int = 2424) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n` frames of GRID x GRID held-out scenes with their boxes moved into the frame."""
    scenes = render_dataset(seed, n * GRID * GRID, *SCENE)
    out = []
    for k in range(n):
        frame = np.zeros((SCENE[1] * GRID, SCENE[0] * GRID, 3), np.uint8)
        boxes = []
        for j in range(GRID * GRID):
            img, b = scenes[k * GRID * GRID + j]
            x0, y0 = (j % GRID) * SCENE[0], (j // GRID) * SCENE[1]
            frame[y0:y0 + SCENE[1], x0:x0 + SCENE[0]] = img
            boxes += [[x1 + x0, y1 + y0, x2 + x0, y2 + y0, c] for x1, y1, x2, y2, c in b.tolist()]
        out.append((frame, np.asarray(boxes, np.float64).reshape(-1, 5)))
    return out


def bucket(box: np.ndarray) -> int:
    side = max(box[2] - box[0], box[3] - box[1])
    return next(i for i, (lo, hi) in enumerate(BUCKETS) if lo <= side < hi)


def score(records, truths, agnostic: bool = False) -> dict[str, list[float]]:
    """Recall, truth boxes and false boxes an image per bucket; `agnostic`: any label finds a truth box (class 0)."""
    found, total, false = np.zeros(len(BUCKETS)), np.zeros(len(BUCKETS)), np.zeros(len(BUCKETS))
    for record, truth in zip(records, truths, strict=True):
        preds = np.array([[*d.box_px, 0 if agnostic else d.class_id, d.score]
                          for d in record.detections]).reshape(-1, 6)
        for t in truth:
            total[bucket(t)] += 1
        for c in np.unique(np.concatenate([truth[:, 4], preds[:, 4]])):
            p, t = preds[preds[:, 4] == c], truth[truth[:, 4] == c]
            p = p[np.argsort(-p[:, 5], kind="stable")]
            claimed = greedy_match(p, t)
            for k in claimed[claimed >= 0]:
                found[bucket(t[k])] += 1
            for box in p[claimed < 0]:
                false[bucket(box)] += 1
    n = len(records)
    return {"recall": [round(f / t, 3) if t else None for f, t in zip(found, total, strict=True)],
            "truth": total.astype(int).tolist(), "false_per_image": (false / n).round(2).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mosaics", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/tiling_recall.json")
    args = parser.parse_args()
    data = mosaics(args.mosaics)
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(str(Path(tmp) / "store"), cache_dir=str(Path(tmp) / "cache"))
        store.publish(MODEL, "demo", "1")
        det = store.load_detector("demo:1")
        plain = det.predict_batch([f for f, _ in data], tiling="off")
        tiled = det.predict_batch([f for f, _ in data], tiling="on")
    truths = [t for _, t in data]
    result = {"plain": score(plain, truths), "tiled": score(tiled, truths)}
    rows = [{"bucket": f"{lo}-{hi if hi < 10_000 else ''} px", "truth": result["plain"]["truth"][i],
             "recall_plain": result["plain"]["recall"][i], "recall_tiled": result["tiled"]["recall"][i],
             "false_per_image_plain": result["plain"]["false_per_image"][i],
             "false_per_image_tiled": result["tiled"]["false_per_image"][i]} for i, (lo, hi) in enumerate(BUCKETS)]
    print_table(rows, list(rows[0]))
    write_json(args.out, {"machine": machine_info(), "mosaics": args.mosaics, "frame": [SCENE[0] * GRID,
                                                                                      SCENE[1] * GRID],
                          "rows": rows})


if __name__ == "__main__":
    main()
