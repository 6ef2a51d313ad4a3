"""How often a real detector boxes one animal twice (issue 69's part and duplicate boxes), on real photos.

    flock /tmp/trapline-bench.lock python -m benchmarks.part_boxes --store models --frames 16

The rate the tracking benchmark's mistakes take (tests/fixtures/detector_mistakes.py: part boxes in a share of
frames) measured where it can be here: MegadetectorLite, plain and tiled, on the real camera-trap photos of
model_store/demo/assets/photos, each whole and shrunk into 4K frames (benchmarks/tiling_recall_photos.py's
composites: real animals at 16-320 px, the layout synthetic). Per truth animal found (a kept box at IoU >= 0.5): the
other kept boxes lying inside or on it (IoS >= 0.8 against the truth box: a part or a duplicate). Printed: kept
boxes per found animal (the issue's 1.18 on its dark-headed beetles) and the share of found animals with a part box.
No trained Ultralytics weights can be had here, so that second model is not measured.
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from benchmarks.common import machine_info, print_table, write_json
from benchmarks.tiling_recall_photos import BOXES, PHOTOS, composites
from model_store import ModelStore

MATCH_IOU, PART_IOS = 0.5, 0.8


def _overlaps(boxes: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and IoS (intersection over the box's own area) of every box (rows) with every truth box (columns)."""
    x1 = np.maximum(boxes[:, None, 0], truth[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], truth[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], truth[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], truth[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_t = (truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1])
    return inter / (area_b[:, None] + area_t[None, :] - inter + 1e-9), inter / (area_b[:, None] + 1e-9)


def count(det, data: list[tuple[np.ndarray, np.ndarray]], tiling: str) -> dict[str, float]:
    found = boxes_on_found = with_part = 0
    for rgb, truth in data:
        record = det.predict_batch([rgb], tiling=tiling)[0]
        boxes = np.array([d.box_px for d in record.detections], np.float64).reshape(-1, 4)
        if not len(boxes) or not len(truth):
            continue
        iou, ios = _overlaps(boxes, truth[:, :4])
        for t in range(len(truth)):
            if iou[:, t].max() < MATCH_IOU:
                continue
            on_it = int(((ios[:, t] >= PART_IOS) | (iou[:, t] >= MATCH_IOU)).sum())
            found, boxes_on_found, with_part = found + 1, boxes_on_found + on_it, with_part + (on_it > 1)
    return {"found": found, "boxes_per_found_animal": round(boxes_on_found / found, 3) if found else None,
            "share_with_part_box": round(with_part / found, 3) if found else None}


def whole_photos() -> list[tuple[np.ndarray, np.ndarray]]:
    spec = json.loads(BOXES.read_text())["boxes"]
    return [(cv2.imread(str(PHOTOS / name))[:, :, ::-1].copy(), np.asarray(boxes, np.float64))
            for name, boxes in sorted(spec.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a model store holding (or to hold) megadetector-lite:1")
    parser.add_argument("--frames", type=int, default=16, help="composite 4K frames of the shrunk photos")
    parser.add_argument("--out", default="benchmarks/results/part_boxes.json")
    args = parser.parse_args()
    from model_store.demo.megadetector import publish_megadetector

    store = ModelStore(args.store)
    publish_megadetector(store)
    det = store.load_detector("megadetector-lite:1", threads=2)
    sets = (("4 whole photos", whole_photos()), (f"{args.frames} 4K frames", composites(args.frames)))
    rows = [{"photos": name, "pass": mode, **count(det, data, "on" if mode == "tiled" else "off")}
            for name, data in sets for mode in ("plain", "tiled")]
    print_table(rows, list(rows[0]))
    write_json(args.out, {"machine": machine_info(), "model": "megadetector-lite:1", "rows": rows})


if __name__ == "__main__":
    main()
