"""Both doors agree with Ultralytics and YOLOv5 on their own exports, with the default configuration.

The reference exports (static batch 1 and dynamic; YOLOv8, YOLO11, YOLOv5, MegaDetector-v5 style)
are published with no config, served over real HTTP by one Serve app (default batching: the
static-batch graphs get formed batches) and reprocessed by a Ray Data job through a dedicated
actor pool and through the live deployment. See tests/fixtures/parity.py for the yardstick.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator

import httpx
import pytest

from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from model_store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from tests.fixtures.parity import (
    IMAGES as IMAGE_DIR,
)
from tests.fixtures.parity import (
    Agreement,
    Box,
    class_ties,
    compare,
    image_names,
    model_names,
    product_boxes,
    reference_boxes,
    reference_store,
)
from tests.fixtures.serving import QUICK_STOP

serve_local = pytest.importorskip("serve.local", reason="serve/ (the online door) is not in this checkout")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    return reference_store(tmp_path_factory.mktemp("parity-doors"))


@pytest.fixture(scope="module")
def ties(store):
    """ties(name, image): the tied anchors of the library path, where either class is the reference's answer."""
    cache: dict[tuple[str, str], list] = {}

    def get(name: str, image: str) -> list:
        if (name, image) not in cache:
            cache[name, image] = class_ties(store.load_detector(f"{name}:1"), (IMAGE_DIR / image).read_bytes())
        return cache[name, image]

    return get


@pytest.fixture(scope="module")
def url(ray_cluster, store, tmp_path_factory) -> Iterator[str]:
    # Every model with the service's default batching (max_batch_size 8): a static-batch-1 graph
    # must still serve, warm up and take concurrent requests. Small CPU shares fit 2 cores.
    config = {"store": store.root, "cache_dir": str(tmp_path_factory.mktemp("serve-cache")),
              "http": {"port": 0, "ingress_num_cpus": 0.05},
              "models": [{"name": n, "num_cpus": 0.1, **QUICK_STOP, "alias_poll_interval_s": 0} for n in model_names()]}
    with serve_local.run_local(config) as base_url:
        yield base_url


def post_all(url: str, name: str) -> dict[str, dict]:
    """Every reference image at once, so the replica forms batches."""
    async def go():
        async with httpx.AsyncClient(timeout=120, trust_env=False) as client:
            return await asyncio.gather(*(
                client.post(f"{url}/v1/detect", params={"model": name}, content=(IMAGE_DIR / image).read_bytes(),
                            headers={"content-type": "image/jpeg"}) for image in image_names()))

    out = {}
    for image, r in zip(image_names(), asyncio.run(go()), strict=True):
        assert r.status_code == 200, (name, image, r.text)
        out[image] = r.json()
    return out


@pytest.mark.parametrize("name", model_names())
def test_http_matches_the_reference_predictions(url, ties, name):
    total = Agreement()
    for image, body in post_all(url, name).items():
        assert body["model"]["name"] == name
        total += compare(reference_boxes(name, image), product_boxes(body), f"http {name}/{image}", ties(name, image))
    print(f"http {name}: {total.summary()}")
    assert total.ok, total.misses + total.extras


def table_boxes(out, name: str) -> dict[str, list[Box]]:
    images = Tables(open_location(str(out))).read(IMAGES, name, "1").to_pandas()
    assert set(images.status) <= {"ok", "empty"}, images[["rel_path", "status", "error"]].to_dict("records")
    dets = Tables(open_location(str(out))).read(DETECTIONS, name, "1").to_pandas()
    size = {r.uri: (r.width, r.height) for r in images.itertuples()}
    boxes: dict[str, list[Box]] = {r.rel_path: [] for r in images.itertuples()}
    rel = {r.uri: r.rel_path for r in images.itertuples()}
    for d in dets.itertuples():
        w, h = size[d.uri]
        boxes[rel[d.uri]].append(Box(d.class_id, d.score, (d.bbox_x * w, d.bbox_y * h, (d.bbox_x + d.bbox_w) * w,
                                                            (d.bbox_y + d.bbox_h) * h)))
    return boxes


# Every model through a dedicated actor pool; through the live deployment, one static-batch graph
# (square) and the rect MegaDetector-style one (each run costs ~15 s of Ray Data start-up here).
@pytest.mark.parametrize("via, names", [("actors", model_names()),
                                        ("serve", ["yolov8n_static", "mdv5_style_dynamic"])])
def test_batch_matches_the_reference_predictions(url, store, ties, tmp_path, via, names):
    archive = tmp_path / "archive"
    shutil.copytree(IMAGE_DIR, archive)
    failures = []
    for name in names:
        out = tmp_path / f"out-{name}"
        opts = {"archive": str(archive), "out": str(out), "model": f"{name}:1", "store": store.root, "via": via,
                "read_cpus": 0.2, "batch_size": 4, "read_batch_size": 2}
        if via == "actors":
            opts["num_cpus"] = 0.4
        report = run_reprocess(ReprocessOptions(**opts))
        assert report.status == "succeeded" and report.failed == 0, (name, report.error)
        total = Agreement()
        for image, boxes in table_boxes(out, name).items():
            total += compare(reference_boxes(name, image), boxes, f"batch/{via} {name}/{image}", ties(name, image))
        print(f"batch via {via} {name}: {total.summary()}")
        if not total.ok:
            failures += total.misses + total.extras
        if name == "mdv5_style_dynamic" and via == "actors":
            failures += exported_megadetector_disagreements(out, name, tmp_path, ties)
    assert not failures, failures


def exported_megadetector_disagreements(out, name: str, tmp_path, ties) -> list[str]:
    """The MegaDetector-style run, exported as MegaDetector batch output, still carries the reference boxes."""
    import json

    from batch.export.options import ExportOptions
    from batch.export.run import run_export

    path = tmp_path / f"{name}.json"
    run_export(ExportOptions(tables=str(out), format="megadetector", out=str(path), model=f"{name}:1"))
    md = json.loads(path.read_text())
    assert md["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    sizes = {
        r.rel_path: (r.width, r.height)
        for r in Tables(open_location(str(out))).read(IMAGES, name, "1").to_pandas().itertuples()
    }
    assert sorted(entry["file"] for entry in md["images"]) == sorted(image_names())  # every image, none twice
    assert sum(len(entry["detections"]) for entry in md["images"]) > 0
    problems = []
    for entry in md["images"]:
        w, h = sizes[entry["file"]]
        boxes = []
        for d in entry["detections"]:
            x, y, bw, bh = d["bbox"]
            boxes.append(Box(int(d["category"]) - 1, d["conf"], (x * w, y * h, (x + bw) * w, (y + bh) * h)))
        agreement = compare(reference_boxes(name, entry["file"]), boxes, f"export {entry['file']}",
                            ties(name, entry["file"]))
        problems += agreement.misses + agreement.extras
    return problems
