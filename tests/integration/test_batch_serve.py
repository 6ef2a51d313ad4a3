"""`--via serve` (the live deployment's handle) and `--via actors` write the same rows, a clip's too; /v1/detect
agrees."""

from __future__ import annotations

import json

import httpx
import pytest

from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from ground.errors import BatchError
from model_store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from tests.fixtures.archive import PATH_PATTERN, brightness_config, brightness_model, build_archive, write_local
from tests.fixtures.clips import day_night_clip
from tests.fixtures.serving import QUICK_STOP

serve_local = pytest.importorskip("serve.local", reason="serve/ (the online door) is not in this checkout")
pytestmark = pytest.mark.ray
FILTERS = {"min_size": {"min_area_fraction": 0.01}}


def rows(out, table: str, drop: tuple[str, ...]):
    df = Tables(open_location(str(out))).read(table, "trapcam", "1").to_pandas().drop(columns=list(drop))
    keys = ["uri", "detection_index"] if table == DETECTIONS else ["uri"]
    return df.sort_values(keys).reset_index(drop=True)


def test_serve_and_actors_give_the_same_rows_and_match_http(ray_cluster, tmp_path, monkeypatch):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    store.promote("trapcam:1")
    spec = build_archive()
    archive = write_local(spec, tmp_path / "archive")
    day_night_clip(archive / "cam01" / "IMG_20240501_090000.mp4", "NDDDN", fps=10)  # a clip among the stills
    base = {"archive": str(archive), "model": "trapcam@production", "store": store.root, "path_pattern": PATH_PATTERN,
            "filters": FILTERS, "read_cpus": 0.25, "rows_per_file": 10, "batch_size": 8}
    config = {"store": store.root, "cache_dir": str(tmp_path / "serve-cache"), "http": {"port": 0},
              "models": [{"name": "trapcam", "num_cpus": 0.5, "max_batch_size": 8, "alias_poll_interval_s": 0,
                          **QUICK_STOP}]}
    with serve_local.run_local(config) as url:
        via_serve = run_reprocess(ReprocessOptions(**base, out=str(tmp_path / "serve"), via="serve"))
        via_actors = run_reprocess(ReprocessOptions(**base, out=str(tmp_path / "actors"), via="actors", num_cpus=0.5))
        assert via_serve.status == via_actors.status == "succeeded", (via_serve.error, via_actors.error)
        assert via_serve.filters_hash == via_actors.filters_hash
        for field in ("processed", "ok", "empty", "failed", "detections", "raw_detections"):
            assert getattr(via_serve, field) == getattr(via_actors, field), field
        per_run = ("run_id", "processed_at")
        a, b = rows(tmp_path / "serve", IMAGES, per_run), rows(tmp_path / "actors", IMAGES, per_run)
        # the clip is decoded in the client and its frames detected by the deployment: the actors' record
        [clip] = a[a.kind == "video"].itertuples()
        assert (clip.status, clip.frames_sampled, clip.detection_count) == ("ok", 5, 3 * clip.max_per_frame)
        diff = [(c, a[c][i], b[c][i]) for c in a.columns for i in range(len(a)) if str(a[c][i]) != str(b[c][i])]
        assert a.equals(b), diff[:6]  # the same failure reasons too, decoded in the replica or in the actor
        assert a[a.kind != "video"].content_digest.str.len().eq(64).all()  # each still's sha256, through both doors
        d_serve, d_actors = rows(tmp_path / "serve", DETECTIONS, ("run_id",)), rows(tmp_path / "actors", DETECTIONS,
                                                                                    ("run_id",))
        assert len(d_serve) == via_serve.raw_detections and d_serve.astype(str).equals(d_actors.astype(str))
        # A small job runs in the driver (no Ray Data plan); a large one as the streaming plan: the same rows.
        monkeypatch.setattr("batch.reprocess.dataset.INLINE_MAX_IMAGES", 0)
        planned = run_reprocess(ReprocessOptions(**base, out=str(tmp_path / "planned"), via="serve"))
        assert planned.status == "succeeded" and planned.processed == via_serve.processed, planned.error
        assert rows(tmp_path / "planned", IMAGES, per_run).equals(a)
        assert rows(tmp_path / "planned", DETECTIONS, ("run_id",)).astype(str).equals(d_serve.astype(str))

        # The online door answers with the same detections for the same image bytes.
        batch = d_actors[d_actors.kept]
        for rel in ("cam01/2024-05-01/IMG_20240501_080000.jpg", "cam02/DSC_0006.JPG", "cam01/2024-05-01/"
                    "IMG_20240501_060000.jpg"):
            r = httpx.post(f"{url}/v1/detect", content=spec.files[rel], params={"filters": json.dumps(FILTERS)},
                           headers={"content-type": "image/jpeg"}, timeout=60, trust_env=False)
            assert r.status_code == 200, r.text
            online = [(d["label"], round(d["score"], 4), *(round(v, 4) for v in d["bbox"]))
                      for d in r.json()["detections"]]
            mine = batch[batch.uri == str(archive / rel)]
            offline = [(d.label, round(d.score, 4), round(d.bbox_x, 4), round(d.bbox_y, 4), round(d.bbox_w, 4),
                        round(d.bbox_h, 4)) for d in mine.itertuples()]
            assert online == offline, rel
            assert r.json()["filters"]["hash"] == via_actors.filters_hash

        missing = ReprocessOptions(**{**base, "model": "trapcam:1"}, out=str(tmp_path / "x"), via="serve",
                                   serve_app="no-such-app")
        with pytest.raises(BatchError, match="cannot reach Serve deployment 'detector-trapcam'"):
            run_reprocess(missing)
