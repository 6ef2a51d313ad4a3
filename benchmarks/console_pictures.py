"""The console's pictures at size: the Cameras page over 200 cameras and the Captures page over 100,000 images.

Builds (once, cached under bench-results/console-pictures/) an archive of N small JPEGs (hard links of a few distinct
frames, so 100,000 files cost seconds and no space) and its tables, written through the tables' own commit
(`model_store.tables.commit.write_results`, parts of the reprocess default size) with a detector's row shapes: 88%
of the
images with 1-3 kept boxes (and a dropped one now and then), 10% empty, 2% failed. Then serves the real ingress app
(its FastAPI app, pictures routes attached; uvicorn, no Ray) and measures:

- the service's own time per request (cold: the first request; warm: the median of the next ones), for the routes
  each page calls, and for the page's thumbnails (made once, then from the cache);
- in headless Chromium: first contentful paint, the time the tiles / cards are in the page, the time every picture
  of the page has loaded, and the bytes the page load transferred (Resource Timing's transferSize), cold (thumbnails
  not made yet) and warm (browser cache emptied, thumbnails cached beside the tables).

    python -m benchmarks.console_pictures [--images 100000] [--cameras 200] [--out bench-results/console-pictures]

Writes console_pictures.json in --out. Uses the test suite's Chromium driver and site server (tests/fixtures).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
from PIL import Image

from benchmarks.common import DEFAULT_ROOT, machine_info
from model_store.tables.commit import write_results
from model_store.tables.manifest import new_run_id
from model_store.tables.schema import RESULT_SCHEMA
from tests.fixtures.browser import Browser
from tests.fixtures.pictures import API, served, set_token_script, site_config

LABELS = ["deer", "fox", "boar", "badger", "hare"]
ROWS_PER_PART = 1000  # ReprocessOptions.rows_per_file's default


def frames(n: int = 8) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = np.clip(rng.normal(150 + 8 * i, 25, (480, 640, 3)), 0, 255).astype(np.uint8)
        img[160:300, 200:420] = (70, 55, 40)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=80)
        out.append(buf.getvalue())
    return out


def build(root: Path, images: int, cameras: int) -> dict[str, Any]:
    """The archive and its tables (cached: a second run reuses them)."""
    archive, tables = root / "archive", root / "tables"
    done = root / "built.json"
    if done.exists() and json.loads(done.read_text()) == {"images": images, "cameras": cameras}:
        return {"archive": archive, "tables": tables, "built_s": 0.0}
    t0 = time.perf_counter()
    src = root / "frames"
    src.mkdir(parents=True, exist_ok=True)
    originals = []
    for i, data in enumerate(frames()):
        p = src / f"frame{i}.jpg"
        p.write_bytes(data)
        originals.append(p)
    rng = np.random.default_rng(1)
    start = dt.datetime(2025, 3, 1)
    run_id = new_run_id()
    rows: list[dict[str, Any]] = []
    meta = {"model": {"name": "trapcam", "version": "1", "labels": LABELS}, "filters": {"hash": "f00d", "specs": []}}
    for i in range(images):
        cam = f"cam{i % cameras:03d}"
        when = start + dt.timedelta(minutes=7 * i + int(rng.integers(0, 5)))
        rel = f"{cam}/{when:%Y-%m-%d}/IMG_{i:06d}.jpg"
        path = archive / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.link(originals[i % len(originals)], path)
        roll = rng.random()
        status = "failed" if roll < 0.02 else "empty" if roll < 0.12 else "ok"
        dets = []
        if status == "ok":
            for j in range(int(rng.integers(1, 4))):
                w, h = float(rng.uniform(0.1, 0.4)), float(rng.uniform(0.1, 0.4))
                dets.append({"detection_index": j, "label": LABELS[int(rng.integers(0, len(LABELS)))], "class_id": 0,
                             "score": float(rng.uniform(0.3, 0.98)), "bbox_x": float(rng.uniform(0, 1 - w)),
                             "bbox_y": float(rng.uniform(0, 1 - h)), "bbox_w": w, "bbox_h": h, "kept": True,
                             "flags": []})
            if rng.random() < 0.2:
                dets.append({**dets[-1], "detection_index": len(dets), "score": 0.05, "kept": False,
                             "flags": ["score"]})
        kept = [d for d in dets if d["kept"]]
        rows.append({"uri": str(path), "rel_path": rel, "content_id": f"size=1;mtime_us={i}", "size_bytes": 1,
                     "camera_id": cam, "capture_time": when, "capture_time_source": "path",
                     "width": None if status == "failed" else 640, "height": None if status == "failed" else 480,
                     "status": status, "error_reason": "decode_error" if status == "failed" else None,
                     "error": "cannot decode" if status == "failed" else None, "detection_count": len(kept),
                     "raw_detection_count": len(dets), "max_score": max((d["score"] for d in kept), default=None),
                     "detections": dets})
        if len(rows) == ROWS_PER_PART or i == images - 1:
            write_results(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA), out_url=str(tables), model_name="trapcam",
                          model_version="1", model_sha256="0" * 64, filters_hash="f00d", run_id=run_id, metadata=meta)
            rows = []
    done.write_text(json.dumps({"images": images, "cameras": cameras}))
    return {"archive": archive, "tables": tables, "built_s": round(time.perf_counter() - t0, 1)}


def service_times(url: str, path: str, repeats: int = 5) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {API}"}
    times, size = [], 0
    with httpx.Client(base_url=url, headers=headers, timeout=120, trust_env=False) as c:
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            r = c.get(path)
            times.append(time.perf_counter() - t0)
            r.raise_for_status()
            size = len(r.content)
    return {"path": path, "cold_ms": round(1000 * times[0], 1),
            "warm_p50_ms": round(1000 * statistics.median(times[1:]), 1), "bytes": size}


def thumbs(url: str, page: str, key: str) -> dict[str, Any]:
    """The page's thumbnails fetched one after another: made cold, then from the cache."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API}"}, timeout=120, trust_env=False) as c:
        data = c.get(page).json()
        items = data[key]
        urls = [(x["latest"]["image"] if key == "cameras" else x)["thumb_url"] for x in items
                if (x.get("latest") if key == "cameras" else x)]
        out = {}
        for run in ("cold", "warm"):
            t0 = time.perf_counter()
            sizes = [len(c.get(u).content) for u in urls]
            out[run + "_ms"] = round(1000 * (time.perf_counter() - t0), 1)
        out.update(count=len(urls), bytes=sum(sizes))
    return out


PAGE_PROBE = """(() => {
  window.__probe = {};
  new MutationObserver(() => {
    if (!window.__probe.content && document.querySelector('%s')) window.__probe.content = performance.now();
  }).observe(document, {subtree: true, childList: true});
})();"""
DONE = """(() => { const imgs = [...document.querySelectorAll('%s img')];
  if (!window.__probe.content || !imgs.length || !imgs.every(i => i.complete)) return null;
  if (!window.__probe.loaded) window.__probe.loaded = performance.now();
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  return {first_contentful_paint_ms: fcp ? Math.round(fcp.startTime) : null,
          content_in_page_ms: Math.round(window.__probe.content), all_pictures_ms: Math.round(window.__probe.loaded),
          pictures: imgs.length, broken: imgs.filter(i => !i.naturalWidth).length, requests: res.length + 1,
          transferred_bytes: nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0)}; })()"""


def browser_page(url: str, hash_: str, ready: str, runs: int = 2) -> list[dict[str, Any]]:
    out = []
    for run in range(runs):
        with Browser(1280, 900, timeout=300) as b:  # a fresh profile: an empty browser cache each time
            b.before_load(set_token_script())
            b.before_load(PAGE_PROBE % ready)
            b.navigate(f"{url}/console{hash_}")
            out.append({"run": "cold thumbnails" if run == 0 else "thumbnails cached",
                        **b.wait(DONE % ready, 300, hash_)})
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=100_000)
    p.add_argument("--cameras", type=int, default=200)
    p.add_argument("--out", type=Path, default=DEFAULT_ROOT / "console-pictures")
    args = p.parse_args(argv)
    root = args.out.resolve()
    built = build(root, args.images, args.cameras)
    for d in (root / "tables" / "_thumbs",):  # every run measures cold thumbnails first
        if d.exists():
            for f in d.rglob("*.jpg"):
                f.unlink()
    config = site_config(str(root / "store"), [str(root)], [("bench", built["tables"], built["archive"])])
    result: dict[str, Any] = {"images": args.images, "cameras": args.cameras, "built_s": built["built_s"],
                              "load_before": os.getloadavg(), "machine": machine_info()}
    with served(config) as url:
        result["service"] = [service_times(url, p) for p in (
            "/v1/pictures/sources", "/v1/pictures/cameras?limit=24", "/v1/pictures/facets",
            "/v1/pictures/captures?limit=48", "/v1/pictures/captures?limit=48&camera=cam007",
            "/v1/pictures/captures?limit=48&label=badger&min_score=0.9",
            "/v1/pictures/captures?limit=48&since=2025-03-20T00:00:00&until=2025-03-21T00:00:00",
            "/v1/pictures/captures?limit=48&state=empty&offset=4800")]
        result["thumbnails"] = {"cameras_page": thumbs(url, "/v1/pictures/cameras?limit=24", "cameras"),
                                "captures_page": thumbs(url, "/v1/pictures/captures?limit=48&offset=48", "captures")}
        for d in (root / "tables" / "_thumbs",):
            for f in d.rglob("*.jpg"):
                f.unlink()
        result["browser"] = {"cameras": browser_page(url, "#/cameras", "#camera-tiles"),
                             "captures": browser_page(url, "#/captures", "#captures")}
    result["load_after"] = os.getloadavg()
    (root / "console_pictures.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
