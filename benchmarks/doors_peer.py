"""The peer section of benchmarks/doors.py: Ultralytics `predict` against `trapline reprocess` (fp32, int8,
int8 + reduced decode) on one Ultralytics export and one folder, and each fast path's boxes against fp32."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.common import local_ray
from benchmarks.doors_jobs import batch_run

PEER_ONNX = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference" / "yolov8n_dynamic.onnx"


def peer_section(store, images: list[Path], work: Path, peer_python: str, count: int, cpus: int) -> dict[str, Any]:
    """Ultralytics predict vs trapline reprocess (fp32, int8) on one Ultralytics export and one folder."""
    from model_store.store.quantize import quantize_version

    folder = work / f"peer-{count}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for i in range(count):  # a flat folder of copies: Ultralytics does not recurse, trapline skips symlinks
            shutil.copyfile(images[i % len(images)], folder / f"{i:05d}.jpg")
    if "1" not in store.list_versions("peer-yolov8n"):
        store.publish(PEER_ONNX, "peer-yolov8n", "1")  # config derived from the export, as a user would
    quant = None
    if "int8" not in store.list_versions("peer-yolov8n"):
        rep = quantize_version(store, "peer-yolov8n:1", images[0].parent, "int8", force=True)
        quant = {"recall": rep.total.recall, "precision": rep.total.precision, "parent_boxes": rep.total.parent_boxes,
                 "verdict": rep.verdict, "map50": rep.map50, "parent_ms": rep.parent_ms, "int8_ms": rep.int8_ms}
    if "int8-reduced" not in store.list_versions("peer-yolov8n"):  # int8 + the reduced JPEG decode (opt-in)
        mv, weights = store.fetch("peer-yolov8n:int8")
        config = mv.config.model_dump(mode="json", exclude={"weights"})
        config["preprocess"]["reduced_decode"] = True
        store.publish(weights, "peer-yolov8n", "int8-reduced", config)
    out = subprocess.run([peer_python, str(Path(__file__).with_name("peer_ultralytics.py")), "--model", str(PEER_ONNX),
                          "--images", str(folder)], capture_output=True, text=True, check=True)
    ultra = json.loads(out.stdout.strip().splitlines()[-1])
    rows = {"ultralytics": ultra["images_per_s"], "quantize": quant,
            "agreement": {v: fast_path_agreement(store, "peer-yolov8n:1", f"peer-yolov8n:{v}", images[:16])
                          for v in ("int8", "int8-reduced")}}
    with local_ray(cpus):
        for version in ("1", "int8", "int8-reduced"):
            rows[f"trapline_{version}"] = batch_run(folder, work, store.root, f"peer-yolov8n:{version}", "actors",
                                                    "actors", cpus)
    return rows


def fast_path_agreement(store, reference: str, fast: str, images: list[Path]) -> dict[str, Any]:
    """Boxes of `fast` against those of `reference` on the same JPEGs, through the detector core (the
    parity yardstick of model_store.core.agreement: same class, IoU >= 0.9 or every corner within 1 px,
    |score difference| <= 0.02, boxes scoring >= 0.3)."""
    from model_store.core.agreement import Agreement, boxes_of, compare

    ref, cand = store.load_detector(reference, threads=1), store.load_detector(fast, threads=1)
    total = Agreement()
    for path in images:
        records = []
        for detector in (ref, cand):
            prepared, meta = detector.prepare_bytes(path.read_bytes(), 10**9)
            records += detector.run_prepared([prepared], [meta])
        total += compare(boxes_of(records[0]), boxes_of(records[1]), path.name)
    return {"reference_boxes": total.reference, "matched": total.matched, "extra": len(total.extras),
            "match_rate": round(total.match_rate, 4), "images": len(images)}
