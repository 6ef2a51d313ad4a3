"""Reprocess from an S3 archive into S3 tables, on a real S3-compatible server (moto) and real Ray Data."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import s3fs

from batch.export.options import ExportOptions
from batch.export.run import run_export
from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from ground.errors import BatchError
from model_store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import IMAGES
from tests.fixtures.archive import PATH_PATTERN, brightness_config, brightness_model, build_archive, write_s3
from tests.fixtures.postprocess import postprocess

pytestmark = [pytest.mark.ray, pytest.mark.s3]


def test_s3_archive_to_s3_tables_resume_and_export(ray_cluster, s3_server, s3_bucket, tmp_path):
    store = ModelStore(f"{s3_bucket}/models", cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    store.promote("trapcam:1")
    spec = build_archive()
    archive = write_s3(spec, f"{s3_bucket}/archive", s3_server)
    out = f"{s3_bucket}/tables"
    opts = {"archive": archive, "out": out, "model": "trapcam", "store": store.root, "path_pattern": PATH_PATTERN,
            "num_cpus": 0.5, "read_cpus": 0.25, "rows_per_file": 10, "progress_interval_s": 1}

    first = run_reprocess(ReprocessOptions(**opts, limit=20))
    assert (first.found, first.processed, first.held_back) == (len(spec.images), 20, len(spec.images) - 20)
    rest = run_reprocess(ReprocessOptions(**opts))
    assert (rest.already_done, rest.processed) == (20, len(spec.images) - 20)
    assert run_reprocess(ReprocessOptions(**opts)).processed == 0

    images = Tables(open_location(out)).read(IMAGES, "trapcam", "1").to_pandas()
    assert len(images) == len(spec.images) and images["uri"].is_unique
    assert all(u.startswith(f"{archive}/") for u in images["uri"])
    assert all(c.startswith("etag=") for c in images["content_id"])  # S3 identity: ETag + size
    assert images[images.status == "failed"].set_index("rel_path")["error_reason"].to_dict() == spec.failed
    assert (images.status == "empty").sum() == len(spec.blank)

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server})
    opts_pd = {"client_kwargs": {"endpoint_url": s3_server}}
    assert len(pd.read_parquet(f"{out}/images", storage_options=opts_pd)) == len(spec.images)
    assert len(pd.read_parquet(f"{out}/detections", storage_options=opts_pd)) == first.detections + rest.detections
    runs = [p for p in fs.ls(f"{out}/_runs") if p.endswith(".json")]
    assert len(runs) == 3 and all(json.loads(fs.cat_file(p))["status"] == "succeeded" for p in runs)

    report = run_export(ExportOptions(tables=out, format="megadetector", out=f"{s3_bucket}/exports/md.json"))
    md = json.loads(fs.cat_file(f"{s3_bucket}/exports/md.json"))
    assert report.images == len(md["images"]) == len(spec.images)
    dp = f"{s3_bucket}/exports/dp"  # a Camtrap DP package streamed to S3 a camera at a time (multipart uploads)
    package = run_export(ExportOptions(tables=out, format="camtrap-dp", out=dp,
                                       allow_missing_deployments=True), slice_images=1)
    assert package.images == len(spec.images)
    assert len(fs.cat_file(f"{dp}/media.csv").decode().splitlines()) == 1 + len(spec.images) - len(spec.failed)
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(dp)) == ["datapackage.json", "deployments.csv", "media.csv",
                                                               "observations.csv"]
    with pytest.raises(BatchError, match="no deployment for camera"):  # refused after its first slice's upload
        run_export(ExportOptions(tables=out, format="camtrap-dp", out=f"{s3_bucket}/exports/refused"), slice_images=1)
    assert not fs.exists(f"{s3_bucket}/exports/refused/media.csv")  # the multipart upload was aborted
    refilter = postprocess(out, "score", {"min_score": 0.95})
    assert refilter.became_empty == len(spec.good) - len(spec.blank)
