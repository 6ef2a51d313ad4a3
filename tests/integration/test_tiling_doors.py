"""Tiled inference on every door (issue 70): `trapline reprocess --tiling` through the job's own actors and through the
live deployment (`--via serve`), stills and a clip, write the same rows, in a result set of their own; /v1/detect's
`tiling` answers the library's tiled boxes, and a bad setting is a typed 422; an Antenna pipeline with its own
`tiling` answers Antenna the same tiled boxes."""

from __future__ import annotations

import json

import httpx
import pytest

from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from model_store import ModelStore
from model_store.core.imaging import decode_image
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from tests.fixtures.archive import PATH_PATTERN, brightness_config, brightness_model, build_archive, write_local
from tests.fixtures.clips import day_night_clip
from tests.fixtures.files_server import serving_directory
from tests.fixtures.serving import QUICK_STOP

serve_local = pytest.importorskip("serve.local", reason="serve/ (the online door) is not in this checkout")
pytestmark = pytest.mark.ray
TILING = {"tile_size": 96, "overlap": 0.25, "merge": "nms", "match_metric": "iou"}  # 160x120 photos: 4 tiles


def rows(out, table: str, drop: tuple[str, ...], set_hash: str):
    df = Tables(open_location(str(out))).read(table, "trapcam", "1").to_pandas()
    df = df[df.filters_hash == set_hash].drop(columns=list(drop))
    keys = ["uri", "detection_index"] if table == DETECTIONS else ["uri"]
    return df.sort_values(keys).reset_index(drop=True)


def door_ready(door: str) -> bool:
    try:  # the door binds its port a moment after the ingress answers
        return httpx.get(f"{door}/readyz", timeout=10, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def test_tiling_on_every_door(ray_cluster, tmp_path):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    store.promote("trapcam:1")
    spec = build_archive()
    archive = write_local(spec, tmp_path / "archive")
    day_night_clip(archive / "cam01" / "IMG_20240501_090000.mp4", "DDN", fps=10)
    base = {"archive": str(archive), "model": "trapcam@production", "store": store.root, "path_pattern": PATH_PATTERN,
            "read_cpus": 0.25, "rows_per_file": 10, "batch_size": 8}
    door_port = serve_local.free_port()
    config = {"store": store.root, "cache_dir": str(tmp_path / "serve-cache"), "http": {"port": 0},
              "models": [{"name": "trapcam", "num_cpus": 0.5, "max_batch_size": 8, "alias_poll_interval_s": 0,
                          **QUICK_STOP}],
              "antenna": {"port": door_port, "pipelines": [{"slug": "tiled", "detector": "trapcam", "tiling": TILING}],
                          "fetch": {"private_hosts": ["127.0.0.1"]}}}
    with serve_local.run_local(config) as url, serving_directory(archive) as files:
        via_serve = run_reprocess(ReprocessOptions(**base, out=str(tmp_path / "serve"), via="serve", tiling=TILING))
        via_actors = run_reprocess(ReprocessOptions(**base, out=str(tmp_path / "actors"), via="actors", num_cpus=0.5,
                                                    tiling=TILING))
        assert via_serve.status == via_actors.status == "succeeded", (via_serve.error, via_actors.error)
        assert via_serve.filters_hash == via_actors.filters_hash
        per_run = ("run_id", "processed_at")
        a = rows(tmp_path / "serve", IMAGES, per_run, via_serve.filters_hash)
        b = rows(tmp_path / "actors", IMAGES, per_run, via_actors.filters_hash)
        [clip] = a[a.kind == "video"].itertuples()
        assert clip.status == "ok" and clip.frames_sampled == 3
        assert a.equals(b)
        d_serve = rows(tmp_path / "serve", DETECTIONS, ("run_id",), via_serve.filters_hash)
        d_actors = rows(tmp_path / "actors", DETECTIONS, ("run_id",), via_actors.filters_hash)
        assert len(d_serve) == via_serve.raw_detections > 0 and d_serve.astype(str).equals(d_actors.astype(str))

        # A plain run of the same tables is another result set: nothing of the tiled run counts as done for it.
        plain = run_reprocess(ReprocessOptions(**base, out=str(tmp_path / "actors"), via="actors", num_cpus=0.5))
        assert plain.status == "succeeded" and plain.filters_hash != via_actors.filters_hash
        assert plain.processed == via_actors.processed

        # The online door: the library's tiled boxes, the settings and tile count in the answer.
        det = store.load_detector("trapcam:1")
        rel = "cam01/2024-05-01/IMG_20240501_080000.jpg"
        [mine] = det.predict_batch([decode_image(spec.files[rel])], tiling=TILING)
        assert mine.tiling["tiles"] > 1
        r = httpx.post(f"{url}/v1/detect", content=spec.files[rel], params={"tiling": json.dumps(TILING)},
                       headers={"content-type": "image/jpeg"}, timeout=60, trust_env=False)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["tiling"]["tiles"] == mine.tiling["tiles"] and body["tiling"]["merge"] == "nms"
        assert [(d["label"], d["score"], d["bbox"]) for d in body["detections"]] == \
               [(d.label, d.score, list(d.bbox)) for d in mine.detections]
        offline = d_actors[(d_actors.uri == str(archive / rel)) & d_actors.kept]
        assert sorted(round(s, 5) for s in offline.score) == sorted(round(d.score, 5) for d in mine.detections)

        for bad, words in (({"overlap": 1}, "tiling.overlap"), ({"tile_size": 640}, "larger than the model's input")):
            r = httpx.post(f"{url}/v1/detect", content=spec.files[rel], params={"tiling": json.dumps(bad)},
                           headers={"content-type": "image/jpeg"}, timeout=60, trust_env=False)
            assert r.status_code == 422 and words in r.json()["error"]["message"], r.text
            assert r.json()["error"]["type"] == "invalid_tiling"
        clip_bytes = (archive / "cam01" / "IMG_20240501_090000.mp4").read_bytes()  # a clip's frames, tiled too
        r = httpx.post(f"{url}/v1/detect", content=clip_bytes, params={"tiling": json.dumps(TILING)}, timeout=60,
                       trust_env=False)
        assert r.status_code == 200 and r.json()["clip"]["frames_sampled"] == 3, r.text
        models = httpx.get(f"{url}/v1/models", timeout=30, trust_env=False).json()
        assert [v.get("tiling") for m in models["models"] for v in m["versions"]] == [None]  # none by default

        # The Antenna door: the pipeline's own tiling reaches the replica (the model itself does not tile).
        door = f"http://127.0.0.1:{door_port}"
        serve_local.wait_until(lambda: door_ready(door), 60, "the Antenna door")
        r = httpx.post(f"{door}/process", json={"pipeline": "tiled-v1", "source_images": [
            {"id": "1", "url": f"{files}/{rel}"}]}, timeout=60, trust_env=False)
        assert r.status_code == 200, r.text
        assert sorted((round(d["bbox"]["x1"], 3), round(d["bbox"]["y2"], 3)) for d in r.json()["detections"]) == \
            sorted((round(d.box_px[0], 3), round(d.box_px[3], 3)) for d in mine.detections)
        [plain] = det.predict_batch([decode_image(spec.files[rel])])
        assert len(plain.detections) != len(mine.detections)  # so the comparison above tells tiled from plain
