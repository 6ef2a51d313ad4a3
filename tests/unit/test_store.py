"""Model store on local disk: layout, aliases, rollback, refusals, atomicity."""

from __future__ import annotations

import json
import os
import threading

import pytest

from model_store import ChecksumError, ConfigError, InvalidRefError, ModelRef, ModelStore, NotFoundError, StoreError
from model_store.store.versions import version_sort_key
from tests.fixtures.onnx_models import fixture_config, plant_corrupt_version


def test_layout_on_disk(local_store):
    root = local_store.storage.root
    assert sorted(os.listdir(f"{root}/fixture/1")) == ["README.md", "config.json", "model.onnx"]
    config = json.loads(open(f"{root}/fixture/1/config.json").read())
    assert len(config["weights"]["sha256"]) == 64
    assert local_store.list_models() == ["fixture"]
    assert local_store.list_versions("fixture") == ["1", "2"]


def test_latest_is_implicit_and_production_needs_promote(local_store):
    assert local_store.resolve("fixture@latest") == ModelRef("fixture", version="2")
    with pytest.raises(NotFoundError, match="no alias 'production'"):
        local_store.resolve("fixture")


def test_promote_and_rollback(local_store):
    local_store.promote("fixture:1")
    assert local_store.resolve("fixture").version == "1"
    rec = local_store.promote("fixture:2")
    assert rec.version == "2" and rec.history == ("1",)
    assert local_store.resolve("fixture@production").version == "2"
    local_store.promote("fixture:1", alias="canary")
    assert local_store.aliases("fixture")["canary"].version == "1"
    assert local_store.rollback("fixture").version == "1"
    assert local_store.resolve("fixture").version == "1"
    with pytest.raises(StoreError, match="no earlier version"):
        local_store.rollback("fixture")


def test_publish_refuses_overwrite(local_store, fixture_models):
    with pytest.raises(StoreError, match="already exists"):
        local_store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))


@pytest.mark.parametrize("name,version", [("..", "1"), ("a/b", "1"), ("/etc", "1"), ("ok", "../x"), ("ok", "1/..")])
def test_traversal_refused(local_store, fixture_models, name, version):
    with pytest.raises(InvalidRefError):
        local_store.publish(fixture_models["yolov8"], name, version, fixture_config("yolov8"))
    parent = os.path.dirname(local_store.storage.root)
    assert sorted(os.listdir(parent)) == ["cache", "store"] or sorted(os.listdir(parent)) == ["store"]
    assert local_store.list_models() == ["fixture"]


@pytest.mark.parametrize("text", ["../etc:1", "m:..", "m@../../x", "m:1@2", "", "m:%2e%2e", "/abs:1"])
def test_bad_refs(text):
    with pytest.raises(InvalidRefError):
        ModelRef.parse(text)


def test_invalid_config_quotes_field_and_value(local_store, fixture_models):
    with pytest.raises(ConfigError, match=r"score_threshold.*1\.5"):
        local_store.publish(fixture_models["yolov8"], "m", "1", fixture_config("yolov8", score_threshold=1.5))
    with pytest.raises(ConfigError, match="bogus"):
        local_store.publish(fixture_models["yolov8"], "m", "1", fixture_config("yolov8", bogus=1))
    assert local_store.list_models() == ["fixture"]


def test_checksum_mismatch_never_loads(local_store):
    weights = os.path.join(local_store.storage.root, "fixture", "1", "model.onnx")
    with open(weights, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ChecksumError, match="refusing to load"):
        local_store.load_detector("fixture:1")
    with pytest.raises(ChecksumError):
        local_store.promote("fixture:1")


def test_publish_with_wrong_declared_sha_refused(local_store, fixture_models):
    cfg = fixture_config("yolov8", weights={"file": "model.onnx", "sha256": "0" * 64})
    with pytest.raises(ChecksumError):
        local_store.publish(fixture_models["yolov8"], "m", "1", cfg)


def test_failed_publish_leaves_nothing(local_store, fixture_models, monkeypatch):
    calls = {"n": 0}
    real = local_store.storage.write_atomic

    def failing(data, *parts):
        calls["n"] += 1
        if parts[-1] == "config.json":
            raise OSError("disk full")
        return real(data, *parts)

    monkeypatch.setattr(local_store.storage, "write_atomic", failing)
    with pytest.raises(OSError, match="disk full"):
        local_store.publish(fixture_models["yolov8"], "fixture", "3", fixture_config("yolov8"))
    assert calls["n"] >= 1
    assert sorted(os.listdir(os.path.join(local_store.storage.root, "fixture"))) == ["1", "2"]


def test_alias_reader_never_sees_partial_pointer(local_store):
    """Promote back and forth while readers resolve: every read is a whole, valid record."""
    stop = threading.Event()
    seen, errors = set(), []

    def reader():
        while not stop.is_set():
            try:
                seen.add(local_store.resolve("fixture@prod").version)
            except NotFoundError:
                pass
            except Exception as exc:  # a torn JSON write would land here
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(60):
        local_store.promote(f"fixture:{1 + i % 2}", alias="prod")
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert seen <= {"1", "2"} and seen
    leftovers = [f for f in os.listdir(os.path.join(local_store.storage.root, "fixture", "_aliases"))
                 if f.startswith(".tmp")]
    assert leftovers == []


def test_version_natural_sort():
    assert sorted(["10", "2", "1.10", "1.2", "1"], key=version_sort_key) == ["1", "1.2", "1.10", "2", "10"]


def test_missing_files_clear_errors(tmp_path):
    store = ModelStore(str(tmp_path / "s"))
    with pytest.raises(NotFoundError, match="weights file not found"):
        store.publish(tmp_path / "nope.onnx", "m", "1", {})
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(NotFoundError, match="config file not found"):
        store.publish(tmp_path / "w.onnx", "m", "1", tmp_path / "nope.json")
    with pytest.raises(NotFoundError, match="no model 'm'"):
        store.resolve("m")


def test_corrupt_onnx_is_refused_at_publish_and_at_load(tmp_path):
    from model_store import ModelLoadError

    store = ModelStore(str(tmp_path / "s"), cache_dir=str(tmp_path / "c"))
    (tmp_path / "w.onnx").write_bytes(b"definitely not onnx")
    with pytest.raises(ModelLoadError, match="w.onnx is not a loadable ONNX model: .*INVALID_PROTOBUF"):
        store.publish(tmp_path / "w.onnx", "broken", "1", fixture_config("yolov8"))
    assert store.list_models() == []  # nothing left behind
    plant_corrupt_version(store, "broken", "1", tmp_path)  # corrupted after publish
    with pytest.raises(ModelLoadError, match="cannot load"):
        store.load_detector("broken:1")


def test_symlink_out_of_store_refused(local_store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.onnx").write_bytes(b"secret")
    vdir = os.path.join(local_store.storage.root, "fixture", "1")
    os.remove(os.path.join(vdir, "model.onnx"))
    os.symlink(outside / "model.onnx", os.path.join(vdir, "model.onnx"))
    with pytest.raises(StoreError, match="outside the store root"):
        local_store.load_detector("fixture:1")
    import shutil

    shutil.copytree(os.path.join(local_store.storage.root, "fixture", "2"), outside / "1")
    os.symlink(outside, os.path.join(local_store.storage.root, "evil"))
    with pytest.raises(StoreError, match="outside the store root"):
        local_store.get("evil:1")
