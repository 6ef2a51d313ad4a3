"""Parity and per-image cost of each output head against its own library (issue 45).

Rebuilds every export of tests/fixtures/reference/build_heads.py with the reference libraries (a separate
virtualenv: Ultralytics 8.4, pixeltable-yolox), or takes a directory it already built, then for each model:
publishes it as its user would (no config for Ultralytics; YOLOX's reference config), runs every image through
trapline's bytes -> record path and matches the boxes against the library's own predictions (same class,
IoU >= 0.9, |score difference| <= 0.01). The cost of a head is timed on the same weights where the library
exports both forms (YOLO26 default vs end2end, YOLOv8 default vs nms=True): ONNX Runtime on one thread,
median per image of the forward pass and of decode (+ NMS where the head needs it). Last, what each
preprocessing field buys: the zamba-style YOLOX model published with one field of its reference config
changed back to what trapline did before (centred, 114 grey, OpenCV cubic or linear), against the same
reference predictions.

    flock /tmp/trapline-heavy.lock python -m benchmarks.heads_parity [--exports DIR] [--refenv /work/refenv]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import print_table, write_json
from model_store import ModelStore
from model_store.core.imaging import DEFAULT_MAX_PIXELS
from tests.fixtures.heads_parity import MAX_DSCORE, MIN_IOU, agreement, expected, image_path, publish

BUILD = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference" / "build_heads.py"


def build_exports(refenv: Path, out: Path) -> None:
    subprocess.run([str(refenv / "bin" / "python"), str(BUILD), "--out", str(out)], check=True)


def per_image_ms(det, name: str, root: Path, reps: int) -> tuple[float, float]:
    """Median ms per image of the forward pass and of decode (+ NMS), over `reps` passes of every image."""
    infer, decode = [], []
    for image in expected(root)["models"][name]["images"]:
        prepared, meta = det.prepare_bytes(image_path(image, root).read_bytes(), DEFAULT_MAX_PIXELS)
        for _ in range(reps):
            t0 = time.perf_counter()
            [raw] = det.infer([prepared])
            t1 = time.perf_counter()
            det.postprocess(raw, meta)
            t2 = time.perf_counter()
            infer.append(t1 - t0)
            decode.append(t2 - t1)
    return statistics.median(infer) * 1000, statistics.median(decode) * 1000


# zamba's MegadetectorLite preprocessing with one field put back to trapline's former only choice
VARIANTS = {
    "reference config": {},
    "OpenCV cubic instead of PIL bicubic": {"interpolation": "cubic"},
    "linear instead of PIL bicubic": {"interpolation": "linear"},
    "centred instead of top-left": {"pad_anchor": "center"},
    "114 grey instead of black": {"pad_value": 114},
}


def preprocessing_rows(store, root: Path) -> list[dict]:
    """Parity of `yolox_nano_zamba` with each VARIANTS change to its reference preprocessing."""
    name = "yolox_nano_zamba"
    spec = expected(root)["models"][name]
    rows = []
    for k, (label, change) in enumerate(VARIANTS.items()):
        cfg = {**spec["config"], "preprocess": {**spec["config"]["preprocess"], **change}}
        store.publish(root / spec["file"], f"variant{k}", "1", cfg)
        det = store.load_detector(f"variant{k}:1", threads=1)
        total = agreement(det, name, root)
        loose = agreement(det, name, root, max_dscore=1.0)  # same boxes by IoU, however far the score moved
        rows.append({"preprocessing": label, "matched": f"{total.matched}/{total.reference}",
                     "matched_pct": round(100 * total.match_rate, 1), "extras": len(total.extras),
                     "same_box_any_score": f"{loose.matched}/{loose.reference}",
                     "max_dscore_same_box": round(max(loose.dscores, default=0.0), 3)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exports", type=Path, default=None, help="a directory build_heads.py wrote (default: build)")
    ap.add_argument("--refenv", type=Path, default=Path("/work/refenv"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="bench-results/heads_parity.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="heads-parity-") as tmp:
        root = args.exports
        if root is None:
            root = Path(tmp) / "exports"
            build_exports(args.refenv, root)
        store = ModelStore(str(Path(tmp) / "store"), cache_dir=str(Path(tmp) / "cache"))
        rows = []
        for name, spec in expected(root)["models"].items():
            det = store.load_detector(publish(store, name, root), threads=1)
            total = agreement(det, name, root)
            infer_ms, decode_ms = per_image_ms(det, name, root, args.reps)
            rows.append({"model": name, "layout": det.config.output_layout, "ref_boxes": total.reference,
                         "matched": f"{total.matched} ({100 * total.match_rate:.1f} %)",
                         "max_dscore": round(max(total.dscores, default=0.0), 5),
                         "mean_dscore": round(total.mean_abs_dscore, 6), "extras": len(total.extras),
                         "infer_ms": round(infer_ms, 2), "decode_ms": round(decode_ms, 3),
                         "MB": round((root / spec["file"]).stat().st_size / 1e6, 1),
                         "misses": total.misses[:5], "extra_boxes": total.extras[:5]})
        print(f"parity bar: same class, IoU >= {MIN_IOU}, |dscore| <= {MAX_DSCORE}")
        print_table(rows, ["model", "layout", "ref_boxes", "matched", "max_dscore", "mean_dscore", "extras",
                           "infer_ms", "decode_ms", "MB"])
        for r in rows:
            for line in r["misses"] + r["extra_boxes"]:
                print("  ", line)
        variants = preprocessing_rows(store, root)
        print_table(variants, ["preprocessing", "matched", "matched_pct", "extras", "same_box_any_score",
                               "max_dscore_same_box"])
        write_json(args.out, {"rows": rows, "preprocessing": variants, "versions": expected(root)["versions"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
