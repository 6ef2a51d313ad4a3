"""Both doors give the same masks: a segmentation model served over HTTP and run over an archive by a Ray Data
job writes, detection for detection, the RLE the online answer carries (and the boxes Ultralytics predicted)."""

from __future__ import annotations

import shutil

import httpx
import pytest

from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from model_store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from tests.fixtures.segment_parity import SEG, expected, image_path
from tests.fixtures.serving import QUICK_STOP

serve_local = pytest.importorskip("serve.local", reason="serve/ (the online door) is not in this checkout")
pytestmark = pytest.mark.ray
MODEL = "yolo26n_e2e_seg"


def test_served_and_archive_masks_are_the_same(ray_cluster, tmp_path):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(SEG.parent / expected()["models"][MODEL]["file"], MODEL, "1")
    store.promote(f"{MODEL}:1")
    images = sorted(expected()["models"][MODEL]["images"])
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in images:
        shutil.copy(image_path(name), archive / name)

    config = {"store": store.root, "cache_dir": str(tmp_path / "serve-cache"),
              "http": {"port": 0, "ingress_num_cpus": 0.05},
              "models": [{"name": MODEL, "num_cpus": 0.2, "alias_poll_interval_s": 0, **QUICK_STOP}]}
    online: dict[str, list[tuple]] = {}
    with serve_local.run_local(config) as url, httpx.Client(timeout=120, trust_env=False) as client:
        for name in images:
            r = client.post(f"{url}/v1/detect", params={"model": MODEL}, content=(archive / name).read_bytes(),
                            headers={"content-type": "image/jpeg"})
            assert r.status_code == 200, r.text
            online[name] = sorted((d["class_id"], round(d["score"], 5), d["mask"]["counts"])
                                  for d in r.json()["detections"])
    assert sum(map(len, online.values())) > 10

    out = tmp_path / "out"
    report = run_reprocess(ReprocessOptions(archive=str(archive), out=str(out), model=f"{MODEL}:1", store=store.root,
                                            via="actors", num_cpus=0.5, read_cpus=0.2, batch_size=4,
                                            read_batch_size=2))
    assert report.status == "succeeded" and report.failed == 0, report.error
    tables = Tables(open_location(str(out)))
    rel = {r.uri: r.rel_path for r in tables.read(IMAGES, MODEL, "1").to_pandas().itertuples()}
    archived: dict[str, list[tuple]] = {name: [] for name in images}
    for d in tables.read(DETECTIONS, MODEL, "1").to_pylist():
        archived[rel[d["uri"]]].append((d["class_id"], round(d["score"], 5), d["mask"]["counts"]))
    assert {k: sorted(v) for k, v in archived.items()} == online
