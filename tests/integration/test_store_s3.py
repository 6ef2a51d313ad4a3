"""The model store on a real S3-compatible server (moto in server mode), through s3fs."""

from __future__ import annotations

import boto3
import numpy as np
import pytest

from model_store import ChecksumError, ModelStore, StoreError
from tests.fixtures.onnx_models import EXPECTED_640x480, fixture_config

pytestmark = pytest.mark.s3


def test_publish_promote_load_on_s3(s3_bucket, s3_server, fixture_models, tmp_path):
    store = ModelStore(f"{s3_bucket}/models", cache_dir=str(tmp_path / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.publish(fixture_models["yolov5"], "fixture", "2", fixture_config("yolov5"))
    assert store.list_models() == ["fixture"] and store.list_versions("fixture") == ["1", "2"]
    store.promote("fixture:1")
    store.promote("fixture:2")
    assert store.resolve("fixture").version == "2"
    assert store.rollback("fixture").version == "1"

    det = store.load_detector("fixture")
    [res] = det.predict_batch([np.zeros((480, 640, 3), np.uint8)])
    assert [(d.label, round(d.score, 2)) for d in res.detections] == [(e[0], e[1]) for e in EXPECTED_640x480]

    keys = sorted(o["Key"] for o in boto3.client("s3", endpoint_url=s3_server)
                  .list_objects_v2(Bucket=s3_bucket[5:])["Contents"])
    assert "models/fixture/1/config.json" in keys and "models/fixture/_aliases/production.json" in keys
    with pytest.raises(StoreError, match="already exists"):
        store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))


def test_s3_checksum_mismatch_and_failed_publish(s3_bucket, s3_server, fixture_models, tmp_path, monkeypatch):
    store = ModelStore(f"{s3_bucket}/m", cache_dir=str(tmp_path / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    boto3.client("s3", endpoint_url=s3_server).put_object(
        Bucket=s3_bucket[5:], Key="m/fixture/1/model.onnx", Body=b"swapped weights")
    with pytest.raises(ChecksumError):
        store.load_detector("fixture:1")

    real = store.storage.write_atomic

    def failing(data, *parts):
        if parts[-1] == "config.json":
            raise OSError("connection reset")
        return real(data, *parts)

    monkeypatch.setattr(store.storage, "write_atomic", failing)
    with pytest.raises(OSError):
        store.publish(fixture_models["yolov8"], "fixture", "9", fixture_config("yolov8"))
    listing = boto3.client("s3", endpoint_url=s3_server).list_objects_v2(Bucket=s3_bucket[5:], Prefix="m/fixture/9")
    assert listing.get("KeyCount", 0) == 0


def test_models_cli_on_s3(s3_bucket, s3_server, fixture_models, tmp_path):
    """`trapline models ...` against an s3:// store, as a user runs it (a subprocess)."""
    import json
    import os
    import subprocess
    import sys

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(fixture_config("yolov8")))
    store = f"{s3_bucket}/cli"
    env = {**os.environ, "TRAPLINE_MODEL_CACHE": str(tmp_path / "cache")}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "trapline.cli", "models", *args, "--store", store],
                              capture_output=True, text=True, timeout=120, env=env)

    for version in ("1", "2"):
        r = run("publish", str(fixture_models["yolov8"]), "--name", "fx", "--version", version, "--config", str(cfg))
        assert r.returncode == 0, r.stderr
    assert run("promote", "fx:1").returncode == 0
    assert run("promote", "fx:2").returncode == 0
    listed = json.loads(run("list", "--json").stdout)
    assert listed == [{"name": "fx", "versions": ["1", "2"], "aliases": {"production": "2", "latest": "2"},
                       "refused": []}]
    r = run("rollback", "fx")
    assert r.returncode == 0 and "fx@production -> 1" in r.stdout
    assert run("verify", "fx@production").returncode == 0
    r = run("publish", str(fixture_models["yolov8"]), "--name", "fx", "--version", "1", "--config", str(cfg))
    assert r.returncode == 2 and "already exists" in r.stderr
