"""MegadetectorLite in trapline against zamba's own inference, on the demo's real camera-trap photos.

Fetches the pinned zamba wheel (model_store/demo/megadetector.py), publishes MegadetectorLite into a scratch
store the way `make demo` does, runs every photo of model_store/demo/assets/photos through trapline's detector,
and runs zamba's MegadetectorLiteYoloX over the same files in the reference virtualenv
(benchmarks/megadetector_reference.py). Boxes are paired one-to-one, best reference first, at IoU >= 0.9 with
no score tolerance, so |score difference| of each pair is reported rather than required::

    flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.megadetector_parity [--refenv /work/refenv]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import write_json
from model_store import ModelStore
from model_store.core.agreement import Box, match_boxes
from model_store.demo.megadetector import NAME, default_cache, fetch_wheel, publish_megadetector

PHOTOS = Path(__file__).resolve().parents[1] / "model_store" / "demo" / "assets" / "photos"
REFERENCE = Path(__file__).resolve().parent / "megadetector_reference.py"
MIN_IOU = 0.9


def reference_boxes(refenv: Path, wheel: Path, photos: list[Path], tmp: Path) -> dict[str, list[Box]]:
    unpacked = tmp / "zamba-wheel"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(unpacked)
    out = tmp / "zamba.json"
    env = {**os.environ, "PYTHONPATH": str(unpacked), "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([str(refenv / "bin" / "python"), str(REFERENCE), str(out), *map(str, photos)], check=True, env=env)
    return {name: [Box(0, d["score"], tuple(d["xyxy"])) for d in dets]
            for name, dets in json.loads(out.read_text()).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refenv", type=Path, default=Path("/work/refenv"))
    parser.add_argument("--cache", type=Path, default=default_cache())
    parser.add_argument("--json", type=Path, default=Path("bench-results/megadetector_parity.json"))
    args = parser.parse_args(argv)
    photos = sorted(PHOTOS.glob("*.jpg"))
    wheel = fetch_wheel(args.cache)
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(str(Path(tmp) / "store"))
        publish_megadetector(store, args.cache)
        det = store.load_detector(f"{NAME}@production")
        ours = {p.name: [Box(d.class_id, d.score, d.box_px) for d in det.predict_batch(
            [np.asarray(Image.open(p).convert("RGB"))])[0].detections] for p in photos}
        theirs = reference_boxes(args.refenv, wheel, photos, Path(tmp))
    rows, matched, total, extra, dscores = [], 0, 0, 0, []
    for p in photos:
        ref, cand = theirs[p.name], ours[p.name]
        pairs = match_boxes(ref, cand, min_iou=MIN_IOU, max_dscore=1.0, max_dpx=0.0)
        hit = [m for m in pairs if m.candidate is not None]
        ds = [abs(cand[m.candidate].score - ref[m.reference].score) for m in hit]
        ious = [m.iou for m in hit]
        matched, total, extra = matched + len(hit), total + len(ref), extra + len(cand) - len(hit)
        dscores += ds
        rows.append({"photo": p.name, "zamba": len(ref), "trapline": len(cand), "matched": len(hit),
                     "min_iou": round(min(ious), 4) if ious else None,
                     "max_dscore": round(max(ds), 5) if ds else None,
                     "zamba_scores": [round(b.score, 4) for b in ref],
                     "trapline_scores": [round(b.score, 4) for b in cand]})
    summary = {"matched": matched, "reference": total, "extra": extra,
               "max_dscore": max(dscores) if dscores else None,
               "mean_dscore": sum(dscores) / len(dscores) if dscores else None, "rows": rows}
    for r in rows:
        print(f"{r['photo']:26s} zamba {r['zamba']}  trapline {r['trapline']}  matched {r['matched']}  "
              f"min IoU {r['min_iou']}  max |dscore| {r['max_dscore']}")
    print(f"matched at IoU >= {MIN_IOU}: {matched}/{total} zamba boxes, {extra} extra trapline boxes; "
          f"|dscore| max {summary['max_dscore']}, mean {summary['mean_dscore']}")
    write_json(args.json, summary)
    return 0 if matched == total and not extra else 1


if __name__ == "__main__":
    raise SystemExit(main())
