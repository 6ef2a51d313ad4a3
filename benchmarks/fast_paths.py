"""Price each preprocessing fast path: its speed-up next to its deviation from the exact path.

Variants of one loaded model (same weights, same session; only `preprocess` changes):
- `exact`   — the default: full JPEG decode, linear resize (what Ultralytics and YOLOv5 do);
- `reduced` — `reduced_decode: true` (libjpeg decodes at 1/2, 1/4 or 1/8 scale);
- `area`    — `interpolation: area`;
- `legacy`  — reduced + area: trapline's default before the real-models issue.

Two yardsticks:
- the reference exports in tests/fixtures/reference (Ultralytics/YOLOv5, random-initialised from
  their yaml) on their images: reference boxes >= 0.3 matched by each variant (same class,
  IoU >= 0.9, |score difference| <= 0.02), against the libraries' own predictions and against `exact`;
- `demo-detector:2` on rendered 1920x1080 q90 JPEG scenes with ground truth: mAP@0.5 per variant
  and its box agreement with `exact`.

    python -m benchmarks.fast_paths [--scenes 100] [--out bench-results/fast_paths.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DEFAULT_ROOT, print_table, write_json
from model_store import Detector, ModelStore
from model_store.core.agreement import Agreement, Box, boxes_of, compare
from model_store.core.imaging import DEFAULT_MAX_PIXELS, encode_jpeg

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference"
VARIANTS = {
    "exact": {},
    "reduced": {"reduced_decode": True},
    "area": {"interpolation": "area"},
    "legacy": {"reduced_decode": True, "interpolation": "area"},
}


def variant(det: Detector, **preprocess: Any) -> Detector:
    """The same loaded model with other preprocessing settings."""
    pre = det.config.preprocess.model_copy(update=preprocess)
    return Detector(det.info, det.config.model_copy(update={"preprocess": pre}), det.backend)


def run(det: Detector, images: list[bytes]) -> tuple[list[list[Box]], float]:
    """Boxes per image through the served/batch path (bytes -> record), and ms per image of decode+letterbox."""
    out, prep_s = [], 0.0
    for data in images:
        t0 = time.perf_counter()
        prepared, meta = det.prepare_bytes(data, DEFAULT_MAX_PIXELS)
        prep_s += time.perf_counter() - t0
        [raw] = det.infer([prepared])
        out.append(boxes_of(det.postprocess(raw, meta)))
    return out, prep_s * 1000 / max(1, len(images))


def agree(truth: list[list[Box]], got: list[list[Box]]) -> Agreement:
    total = Agreement()
    for t, g in zip(truth, got, strict=True):
        total += compare(t, g)
    return total


def reference_rows(store: ModelStore) -> list[dict[str, Any]]:
    spec = json.loads((REFERENCE / "expected.json").read_text())
    names = sorted(next(iter(spec["models"].values()))["images"])
    images = [(REFERENCE / "images" / n).read_bytes() for n in names]
    rows = []
    for model, m in sorted(spec["models"].items()):
        store.publish(REFERENCE / m["file"], model, "1", preset="megadetector-v5" if m["family"] == "mdv5" else None)
        det = store.load_detector(f"{model}:1", threads=2)
        ref = [[Box(b["class_id"], b["score"], tuple(b["xyxy"])) for b in m["images"][n]["boxes"]] for n in names]
        exact, _ = run(det, images)
        for name, settings in VARIANTS.items():
            got, _ = run(variant(det, **settings), images)
            vs_ref, vs_exact = agree(ref, got), agree(exact, got)
            rows.append({"model": model, "variant": name, "vs_reference": vs_ref.summary(),
                         "ref_match": round(vs_ref.match_rate, 3), "vs_exact": vs_exact.summary(),
                         "exact_match": round(vs_exact.match_rate, 3)})
    return rows


def demo_rows(store: ModelStore, n_scenes: int) -> list[dict[str, Any]]:
    from model_store.core.metrics import average_precision_50
    from model_store.demo.evaluate import HELD_OUT_SEED
    from model_store.demo.publish import publish_demo
    from model_store.demo.scenes import LABELS, render_dataset

    publish_demo(store)
    det = store.load_detector("demo-detector:2", threads=2)
    scenes = render_dataset(HELD_OUT_SEED, n_scenes, 1920, 1080)
    images = [encode_jpeg(img, 90) for img, _ in scenes]
    truth = [gt for _, gt in scenes]
    exact, _ = run(det, images)
    rows = []
    for name, settings in VARIANTS.items():
        got, prep_ms = run(variant(det, **settings), images)
        preds = [np.asarray([[*b.xyxy, b.score, b.class_id] for b in boxes], np.float64).reshape(-1, 6)
                 for boxes in got]
        map50 = average_precision_50(preds, truth, len(LABELS))["map50"]
        vs_exact = agree(exact, got)
        rows.append({"model": "demo-detector:2", "variant": name, "prepare_ms": round(prep_ms, 2),
                     "map50": round(map50, 4), "vs_exact": vs_exact.summary(),
                     "exact_match": round(vs_exact.match_rate, 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=100, help="rendered 1080p scenes for the demo model")
    parser.add_argument("--store", default=str(DEFAULT_ROOT / "fast-paths-store"))
    parser.add_argument("--out", default=str(DEFAULT_ROOT / "fast_paths.json"))
    args = parser.parse_args()
    store = ModelStore(args.store)
    if store.list_models():
        raise SystemExit(f"{args.store} is not empty; pass --store NEW_DIR")
    ref = reference_rows(store)
    print_table(ref, ["model", "variant", "vs_reference", "ref_match", "vs_exact", "exact_match"])
    demo = demo_rows(store, args.scenes)
    print_table(demo, ["model", "variant", "prepare_ms", "map50", "vs_exact", "exact_match"])
    write_json(args.out, {"reference": ref, "demo": demo})


if __name__ == "__main__":
    main()
