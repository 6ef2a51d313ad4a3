"""What re-identification adds to `/v1/detect`: the ingress's own step (decode the upload, describe each covered
box, search the gallery, answer) against galleries of a real `trapline identify` run.

    flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.reid_online [--galleries 300,1000] [--queries 50]

For each gallery size N: an identity archive of N/3 individuals x 3 views (tests/fixtures/reid_tables.py: one
480x360 PNG per sighting), `trapline identify` over it, then the online identifier of a detector whose identify
route names those tables (serve/recording/identify.py, the code the ingress runs) answers `--queries` new views of
known individuals, one image at a time: p50 / p90 of the added milliseconds, and top-1 of the answers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from batch.identify.options import IdentifyOptions
from batch.identify.run import run_identify
from model_store.core.imaging import decode_image
from model_store.core.records import Detection, FiltersApplied, ImageDetections, ModelInfo
from model_store.store.store import ModelStore
from model_store.tables.identities import SIGHTINGS, read_result
from model_store.tables.locations import open_location
from serve.config import IdentifyRoute
from serve.recording.identify import OnlineIdentifier
from tests.fixtures.reid_scenes import sightings

W, H = 480, 360


def _png(snip: np.ndarray) -> tuple[bytes, tuple[int, int, int, int]]:
    canvas = np.full((H, W, 3), (90, 110, 70), np.uint8)
    h, w = snip.shape[:2]
    canvas[30:30 + h, 40:40 + w] = snip
    return cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))[1].tobytes(), (40, 30, 40 + w, 30 + h)


def measure(size: int, queries: int, root: Path) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fixture lives in tests/
    from tests.fixtures.reid_tables import write_identity_tables

    individuals = max(1, size // 3)
    tables, truth = write_identity_tables(root, individuals=individuals, views=3)
    store = str(root / "models")
    ModelStore(store).publish(None, "coats", "1", {"backend": "keypoints", "applies_to": ["zebra"]})
    t = time.perf_counter()
    run_identify(IdentifyOptions(tables=str(tables), identifier="coats:1", store=str(store)))
    identify_s = time.perf_counter() - t
    by_uri = {t["uri"]: t["individual"] for t in truth}
    id_of = {by_uri[r.uri]: r.individual_id for r in read_result(open_location(tables), SIGHTINGS).itertuples()}
    online = OnlineIdentifier(IdentifyRoute(identifier="coats:1", tables=tables), store)
    t = time.perf_counter()
    online.identify(np.zeros((H, W, 3), np.uint8), ImageDetections(  # the first request loads the gallery
        model=ModelInfo(name="d", version="1", sha256="0" * 64), width=W, height=H, detections=[],
        filters=FiltersApplied(names=[], hash="f", configs=[])), "warm")
    load_s = time.perf_counter() - t
    spent, hits = [], 0
    picked = np.random.default_rng(1).choice(individuals, size=min(queries, individuals), replace=False)
    for view in sightings([int(i) for i in picked], 1, seed=0, first_view=3, hard=0.6):
        data, box = _png(view.snip)
        record = ImageDetections(model=ModelInfo(name="d", version="1", sha256="0" * 64), width=W, height=H,
                                 filters=FiltersApplied(names=[], hash="f", configs=[]),
                                 detections=[Detection(label="zebra", class_id=0, score=0.9, box_px=box,
                                                       bbox=(0, 0, 0.1, 0.1))])
        t = time.perf_counter()
        [found] = online.identify(decode_image(data), record, str(len(spent)))
        spent.append((time.perf_counter() - t) * 1000)
        hits += found.answer["id"] == id_of.get(f"true{view.individual}")
    return {"gallery": online.gallery_size, "identify_run_s": round(identify_s, 1), "gallery_load_s": round(load_s, 1),
            "queries": len(spent), "p50_ms": round(statistics.median(spent), 1),
            "p90_ms": round(float(np.percentile(spent, 90)), 1), "top1": round(hits / len(spent), 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--galleries", default="300,1000")
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    rows = []
    for size in (int(s) for s in args.galleries.split(",")):
        with tempfile.TemporaryDirectory() as d:
            row = measure(size, args.queries, Path(d))
        rows.append(row)
        print(f"gallery {row['gallery']:>6}: identify adds p50 {row['p50_ms']} ms, p90 {row['p90_ms']} ms per image "
              f"(top-1 {row['top1']}, {row['queries']} queries); gallery loaded in {row['gallery_load_s']} s, "
              f"trapline identify over it {row['identify_run_s']} s", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
