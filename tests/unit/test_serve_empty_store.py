"""`trapline serve` on a store with nothing to serve (a container's first start on an empty ./models): the demo models
when $TRAPLINE_SEED_DEMO asks (without torch, as in the image), else with --wait-for-models the way to publish one and
a wait that ends when one is promoted; without either, the embedded default's error as before. No Ray: the wait is
over before the service would start."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import pytest

from ground.errors import ServeConfigError, UserError
from model_store import ModelStore
from model_store.demo.publish import DEMO_NAME, SPECIES_NAME, TORCH_NAME, publish_demo
from serve import cli as serve_cli
from serve.defaults import discover_models, local_default
from tests.fixtures.onnx_models import fixture_config


def _args(store, wait: bool = False) -> argparse.Namespace:
    return argparse.Namespace(store=str(store), wait_for_models=wait)


def test_the_demo_seeding_without_torch_publishes_and_promotes_only_what_onnx_runtime_loads(tmp_path):
    store = ModelStore(str(tmp_path))
    assert publish_demo(store, with_torch=False) == [f"{DEMO_NAME}:1", f"{DEMO_NAME}:2", f"{SPECIES_NAME}:1"]
    assert store.list_versions(TORCH_NAME) == []
    assert sorted(discover_models(str(tmp_path))) == [DEMO_NAME, SPECIES_NAME]
    assert publish_demo(store, with_torch=False) == []


def test_seed_demo_fills_an_empty_store_and_leaves_a_served_one_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRAPLINE_SEED_DEMO", "1")
    serve_cli._until_models(_args(tmp_path))
    assert DEMO_NAME in discover_models(str(tmp_path))
    assert "TRAPLINE_SEED_DEMO: published the demo models" in capsys.readouterr().out
    serve_cli._until_models(_args(tmp_path))  # something to serve: nothing published, nothing said
    assert capsys.readouterr().out == ""


def test_wait_for_models_says_how_to_publish_and_starts_once_one_is_promoted(tmp_path, fixture_models, monkeypatch,
                                                                              capsys):
    monkeypatch.delenv("TRAPLINE_SEED_DEMO", raising=False)
    monkeypatch.setattr(serve_cli, "MODEL_WAIT_POLL_S", 0.05)
    store = ModelStore(str(tmp_path))

    promoted: list[float] = []

    def publish_later():
        time.sleep(0.5)
        store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
        time.sleep(0.3)  # a version without an alias is not yet something to serve
        promoted.append(time.monotonic())
        store.promote("fixture:1")

    publisher = threading.Thread(target=publish_later)
    publisher.start()
    serve_cli._until_models(_args(tmp_path, wait=True))
    returned = time.monotonic()
    publisher.join()
    assert promoted and promoted[0] <= returned  # it waited for the promote, not just for the version
    out = capsys.readouterr().out
    assert f"trapline models publish WEIGHTS.onnx --name NAME --version 1 --store {tmp_path}" in out
    assert f"trapline models promote NAME:1 --store {tmp_path}" in out
    assert f"found fixture in {tmp_path}: starting" in out


def test_without_the_flag_an_empty_store_is_the_default_error_as_before(tmp_path, monkeypatch):
    monkeypatch.delenv("TRAPLINE_SEED_DEMO", raising=False)
    serve_cli._until_models(_args(tmp_path))  # returns at once
    with pytest.raises(ServeConfigError, match="no models to serve"):
        local_default(str(tmp_path))


def test_a_config_file_naming_no_models_serves_the_stores_as_the_image_does(tmp_path, fixture_models):
    """The image's deploy/container/serve.yaml: jobs, pictures and recording over the volumes, the models found."""
    import yaml

    store = ModelStore(str(tmp_path / "models"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.promote("fixture:1")
    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy/container/serve.yaml").read_text())
    args = argparse.Namespace(store=store.root, models=None, host=None, port=None, address=None, num_cpus=2,
                              record=None, tables=None, config="serve.yaml")
    cfg = serve_cli._from_flags(data, args)
    assert [m.name for m in cfg.models] == ["fixture"] and cfg.store == store.root
    assert cfg.jobs.roots == ["/archive", "/tables"] and not cfg.jobs.working_dir_allowed
    assert cfg.record.archive == "/archive/uploads" and cfg.http.host == "0.0.0.0"


def test_seeding_a_store_this_user_cannot_write_says_how_to_fix_it(tmp_path, monkeypatch):
    """A container's user on a host directory it may read but not write (the suite runs as root, who writes anywhere:
    the store's refusal is the OS's, stood in for here)."""
    import model_store.demo.publish as demo_publish

    def refused(store, with_torch=None):
        raise PermissionError(13, "Permission denied", store.root)

    monkeypatch.setenv("TRAPLINE_SEED_DEMO", "1")
    monkeypatch.setattr(demo_publish, "publish_demo", refused)
    with pytest.raises(UserError, match=r"not writable by this user .*chown"):
        serve_cli._until_models(_args(tmp_path))
