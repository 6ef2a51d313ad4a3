"""Recall and false boxes per box-size bucket, tiled against plain (issue 70), on real camera-trap photos.

    flock /tmp/trapline-bench.lock python -m benchmarks.tiling_recall_photos --store models --frames 16
    flock /tmp/trapline-bench.lock python -m benchmarks.tiling_recall_photos --store models \\
        --coco path/to/labels.json --images path/to/images     # any labelled folder (COCO / COCO Camera Traps)

The labelled set, by default: the real camera-trap photos of model_store/demo/assets/photos (LILA data sets by way
of the MegaDetector repository; credits in its ATTRIBUTION.md), one animal each, boxed by hand
(benchmarks/data/photo_boxes.json), each photo shrunk so its animal is 16-320 px long and laid twelve to a 3840x2160
frame (a 4x3 grid of 960x720 cells, one photo a cell at a random place in it, black between): real animals at the
sizes a wide frame gives distant ones, with boxes known exactly. The photos are real; the layout is not (say so
beside any figure). The frames are written as JPEGs with a COCO file and read back through `--coco`, the path a
user's own labelled folder takes (ENA24, Missouri or Caltech Camera Traps from LILA, for instance).

The detectors: MegadetectorLite (`megadetector-lite:1` from `--store`, published by `make demo` /
model_store/demo/megadetector.py when missing) and, as the Ultralytics model, the trained demo YOLOv8
(tests/fixtures/reference/trained_demo_yolov8.onnx, Ultralytics' export, 320 input, trained on the synthetic demo
scenes only: no trained Ultralytics weights could be had here). Matching is class-agnostic (every truth box is an
animal; any label of the model counts), a truth box found by a box at IoU >= 0.5 (greedy, best score first); a box
that finds none is a false box. Plain = one letterboxed pass; tiled = tiles of the model's input at 0.2 overlap plus
the whole-image pass, greedy NMM by IoS (the defaults).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import machine_info, print_table, write_json
from benchmarks.tiling_recall import BUCKETS, MODEL, score
from model_store import ModelStore

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "model_store" / "demo" / "assets" / "photos"
BOXES = Path(__file__).resolve().parent / "data" / "photo_boxes.json"
FRAME, GRID = (3840, 2160), (4, 3)
SIDES = (16.0, 320.0)  # the animal's longer side in the frame, drawn log-uniformly


def composites(n: int, seed: int = 70) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n` frames of hand-boxed photos shrunk into a grid; each with its truth boxes (x1, y1, x2, y2, 0)."""
    spec = json.loads(BOXES.read_text())["boxes"]
    photos = [(cv2.imread(str(PHOTOS / name))[:, :, ::-1], np.asarray(boxes, np.float64))
              for name, boxes in sorted(spec.items())]
    rng = np.random.default_rng(seed)
    cw, ch = FRAME[0] // GRID[0], FRAME[1] // GRID[1]
    out = []
    for _ in range(n):
        frame = np.zeros((FRAME[1], FRAME[0], 3), np.uint8)
        truth = []
        for cell in range(GRID[0] * GRID[1]):
            rgb, boxes = photos[int(rng.integers(len(photos)))]
            h, w = rgb.shape[:2]
            longest = float(np.max(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
            fit = min(cw / w, ch / h)  # the photo stays inside its cell
            side = float(np.exp(rng.uniform(np.log(SIDES[0]), np.log(min(SIDES[1], fit * longest)))))
            s = side / longest
            nw, nh = max(1, round(w * s)), max(1, round(h * s))
            small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            x0 = (cell % GRID[0]) * cw + int(rng.integers(cw - nw + 1))
            y0 = (cell // GRID[0]) * ch + int(rng.integers(ch - nh + 1))
            frame[y0:y0 + nh, x0:x0 + nw] = small
            truth += [[x1 * nw / w + x0, y1 * nh / h + y0, x2 * nw / w + x0, y2 * nh / h + y0, 0]
                      for x1, y1, x2, y2 in boxes.tolist()]
        out.append((frame, np.asarray(truth, np.float64)))
    return out


def write_coco(frames: list[tuple[np.ndarray, np.ndarray]], folder: Path) -> Path:
    """The frames as JPEGs (quality 95) and one COCO file of their boxes; returns the COCO file."""
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, (rgb, truth) in enumerate(frames):
        name = f"frame_{i:03d}.jpg"
        cv2.imwrite(str(folder / name), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append({"id": i, "file_name": name, "width": rgb.shape[1], "height": rgb.shape[0]})
        annotations += [{"id": len(annotations), "image_id": i, "category_id": 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1]} for x1, y1, x2, y2, _ in truth.tolist()]
    path = folder / "labels.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "animal"}]}))
    return path


def read_coco(labels: Path, images: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each labelled image (RGB) with its boxes as (x1, y1, x2, y2, 0): every box an animal (class-agnostic).
    Images with no box are kept (their detections are false boxes); categories named empty are not boxes."""
    coco = json.loads(labels.read_text())
    empty = {c["id"] for c in coco.get("categories", []) if str(c.get("name", "")).lower() == "empty"}
    by_image: dict = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        if a.get("bbox") and a.get("category_id") not in empty:
            x, y, w, h = a["bbox"]
            by_image[a["image_id"]].append([x, y, x + w, y + h, 0])
    out = []
    for im in coco["images"]:
        bgr = cv2.imread(str(images / im["file_name"]))
        if bgr is not None:
            out.append((bgr[:, :, ::-1].copy(), np.asarray(by_image[im["id"]], np.float64).reshape(-1, 5)))
    return out


def measure(det, data: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, dict]:
    frames, truths = [f for f, _ in data], [t for _, t in data]
    out = {}
    for mode in ("off", "on"):
        records = []
        for frame in frames:  # one at a time: a 4K frame's tiles are a batch of their own
            records += det.predict_batch([frame], tiling=mode)
        out["plain" if mode == "off" else "tiled"] = score(records, truths, agnostic=True)
    return out


def rows_of(model: str, result: dict) -> list[dict]:
    return [{"model": model, "bucket": f"{lo}-{hi if hi < 10_000 else ''} px", "truth": result["plain"]["truth"][i],
             "recall_plain": result["plain"]["recall"][i], "recall_tiled": result["tiled"]["recall"][i],
             "false_per_image_plain": result["plain"]["false_per_image"][i],
             "false_per_image_tiled": result["tiled"]["false_per_image"][i]} for i, (lo, hi) in enumerate(BUCKETS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a model store holding (or to hold) megadetector-lite:1")
    parser.add_argument("--frames", type=int, default=16, help="composite frames when no --coco is given")
    parser.add_argument("--coco", default=None, help="a COCO / COCO Camera Traps labels file instead of composites")
    parser.add_argument("--images", default=None, help="the folder --coco's file names are relative to")
    parser.add_argument("--out", default="benchmarks/results/tiling_recall_photos.json")
    args = parser.parse_args()
    from model_store.demo.megadetector import publish_megadetector

    store = ModelStore(args.store)
    publish_megadetector(store)
    with tempfile.TemporaryDirectory() as tmp:
        if args.coco:
            labels, images = Path(args.coco), Path(args.images or Path(args.coco).parent)
        else:
            labels = write_coco(composites(args.frames), Path(tmp) / "frames")
            images = labels.parent
        data = read_coco(labels, images)
        scratch = ModelStore(str(Path(tmp) / "store"), cache_dir=str(Path(tmp) / "cache"))
        scratch.publish(MODEL, "demo-yolov8", "1")
        rows = []
        for name, det in (("megadetector-lite:1", store.load_detector("megadetector-lite:1", threads=2)),
                          ("demo-yolov8:1 (Ultralytics)", scratch.load_detector("demo-yolov8:1", threads=2))):
            rows += rows_of(name, measure(det, data))
    print_table(rows, list(rows[0]))
    write_json(args.out, {"machine": machine_info(), "labels": args.coco or f"composites of {PHOTOS.name}",
                          "frames": len(data), "frame": None if args.coco else list(FRAME), "rows": rows})


if __name__ == "__main__":
    main()
