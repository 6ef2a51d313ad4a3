"""Held-out mAP@0.5 of a demo detector, measured through the product's own detector core."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from model_store.core.backends import create_backend
from model_store.core.config import parse_config
from model_store.core.detector import Detector
from model_store.core.metrics import average_precision_50
from model_store.core.records import ModelInfo
from model_store.demo.publish import demo_config
from model_store.demo.scenes import LABELS, render_dataset
from model_store.store.store import sha256_file

# Training renders from its own seeds (1 and 2, see train.VERSIONS), so this set is never trained on.
HELD_OUT_SEED = 12345


def evaluate_detector(
    detector: Detector, n_images: int = 200, seed: int = HELD_OUT_SEED, size: tuple[int, int] = (640, 480)
) -> dict[str, Any]:
    """Held-out mAP@0.5 of a loaded trapline `Detector` (its own preprocessing, decode, NMS and filters)."""
    data = render_dataset(seed, n_images, size[0], size[1])
    predictions: list[np.ndarray] = []
    for start in range(0, len(data), 16):
        results = detector.predict_batch([img for img, _ in data[start : start + 16]])
        for res in results:
            rows = [[*d.box_px, d.score, d.class_id] for d in res.detections]
            predictions.append(np.asarray(rows, np.float64).reshape(-1, 6))
    result = average_precision_50(predictions, [gt for _, gt in data], len(LABELS))
    result["n_images"] = n_images
    result["n_objects"] = int(sum(len(gt) for _, gt in data))
    return result


def detector_from_file(weights: str | Path, threads: int = 2) -> Detector:
    """A Detector for an unpublished demo export (the demo config, checksum computed here)."""
    weights = Path(weights)
    backend = "torch-export-yolo" if weights.suffix == ".pt2" else "onnx-yolo"  # a CLI convenience only
    cfg = demo_config(backend)
    cfg["weights"] = {"file": weights.name, "sha256": sha256_file(weights)}
    config = parse_config(cfg)
    info = ModelInfo(name="demo-detector", version="unpublished", sha256=config.weights.sha256)
    return Detector(info, config, create_backend(config, weights, threads=threads))


def evaluate_onnx(onnx_path: str | Path, n_images: int = 200, seed: int = HELD_OUT_SEED) -> dict[str, Any]:
    """Held-out mAP@0.5 of an exported (not yet published) demo model file."""
    return evaluate_detector(detector_from_file(onnx_path), n_images, seed)


def main() -> None:
    """CLI: print the held-out mAP@0.5 of a demo export as JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("weights", type=Path, help="model.onnx or model.pt2")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    args = ap.parse_args()
    print(json.dumps(evaluate_onnx(args.weights, args.n, args.seed), indent=2))


if __name__ == "__main__":
    main()
