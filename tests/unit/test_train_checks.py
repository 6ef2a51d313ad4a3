"""`trapline models train` before Ray starts (no Ray here): how a version carries its trainable weights
(model_store/store/trainable.py) and every bad input refused with exit 2, a clear message and nothing published. The
run itself (Ray Train, a killed worker resuming, the published version) is tests/integration/test_train_ray.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from batch.train.architectures import build
from batch.train.crops import open_crops, split_inputs, squared
from batch.train.loop import load_state
from batch.train.run import fault_hook
from ground.errors import BatchError, ChecksumError, NotFoundError, StoreError
from model_store import ModelStore
from model_store.demo.publish import publish_demo
from model_store.demo.scenes import KINDS
from model_store.store.trainable import TRAINABLE_FILE, TRAINABLE_RECORD
from tests.fixtures.crops_sets import publish_trainable, write_crops_set
from trapline.cli import main


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    store = ModelStore(str(root / "models"))
    publish_trainable(store, "species", "1")
    publish_trainable(store, "species-onnx", "1", trainable=False)
    write_crops_set(root / "set", {"train": 12, "test": 6})
    return root, store


def train(root, *flags: str) -> int:
    return main(["models", "train", "--store", str(root / "models"), *flags])


def test_a_trainable_version_carries_its_state_dict_verified_and_loadable(place):
    root, store = place
    record, state = store.trainable("species:1")
    assert record.architecture == "demo-tiny-classifier" and record.labels == tuple(KINDS)
    doc = json.loads((root / "models" / "species" / "1" / TRAINABLE_RECORD).read_text())
    assert doc["sha256"] == record.sha256 and doc["file"] == TRAINABLE_FILE
    model = build(record.architecture, list(record.labels))
    model.load_state_dict(load_state(state))  # the bytes are the network's whole state_dict


def test_a_version_published_as_onnx_only_has_none_and_says_how_to_get_them(place, tmp_path):
    _, store = place
    with pytest.raises(NotFoundError, match="no trainable weights: it was published as ONNX only"):
        store.trainable("species-onnx:1")
    demo = ModelStore(str(tmp_path / "demo"))
    publish_demo(demo, with_torch=False)
    with pytest.raises(NotFoundError, match="demo-species:1 has no trainable weights"):
        demo.trainable("demo-species@production")


def test_tampered_trainable_weights_are_refused(place, tmp_path):
    root, _ = place
    shutil.copytree(root / "models", tmp_path / "models")
    (tmp_path / "models" / "species" / "1" / TRAINABLE_FILE).write_bytes(b"not the weights")
    with pytest.raises(ChecksumError, match="refusing to train from it"):
        ModelStore(str(tmp_path / "models")).trainable("species:1")
    (tmp_path / "models" / "species" / "1" / TRAINABLE_RECORD).write_text("{}")
    with pytest.raises(StoreError, match="not a trainable-weights record"):
        ModelStore(str(tmp_path / "models")).trainable("species:1")


def test_the_crops_set_is_read_by_split_and_cut_into_the_classifiers_input(place):
    root, store = place
    cfg = store.get("species:1").config
    crops = open_crops(str(root / "set"), list(cfg.labels))
    assert (crops.count("train"), crops.count("val"), crops.count("test")) == (12, 0, 6)
    x, y = split_inputs(crops, "train", cfg)
    assert x.shape == (12, 3, 64, 64) and x.dtype.name == "float32" and set(y) <= set(range(len(KINDS)))
    assert crops.provenance()["id"] == crops.manifest_id and len(crops.manifest_id) == 64


@pytest.mark.parametrize(("flags", "message"), [
    (["species-onnx:1", "--version", "2"], "species-onnx:1 has no trainable weights"),
    (["species:1", "--version", "1"], "species:1 already exists"),
    (["species:1", "--version", "2", "--workers", "0"], "--workers"),
    (["species:1", "--version", "2", "--cpus-per-worker", "0"], "--cpus-per-worker"),
    (["species:1", "--version", "2", "--epochs", "0"], "--epochs"),
    (["species:1", "--version", "2", "--workers", "50"], "fewer than --workers 50"),
    (["nothing:1", "--version", "2"], "of model 'nothing'"),
])
def test_bad_arguments_exit_2_before_ray_and_publish_nothing(place, capsys, flags, message):
    root, store = place
    before = {n: store.list_versions(n) for n in store.list_models()}
    assert train(root, *flags, "--crops", str(root / "set")) == 2
    assert message in capsys.readouterr().err
    assert {n: store.list_versions(n) for n in store.list_models()} == before


def test_crops_that_are_not_a_crops_set_for_this_classifier_are_refused(place, tmp_path, capsys):
    root, _ = place
    assert train(root, "species:1", "--version", "2", "--crops", str(tmp_path)) == 2
    assert "has no manifest.json" in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(root / "set", other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "label_dirs": {"moth": "moth"}}))
    assert train(root, "species:1", "--version", "2", "--crops", str(other)) == 2
    assert "label(s) ['moth'] the classifier has no output for" in capsys.readouterr().err
    (other / "manifest.json").write_text(json.dumps({**manifest, "format": "yolo"}))
    assert train(root, "species:1", "--version", "2", "--crops", str(other)) == 2
    assert "is a 'yolo' set, not a crops set" in capsys.readouterr().err


def test_a_detector_is_not_fine_tuned_here(place, capsys):
    root, _ = place
    demo = root / "models"
    publish_demo(ModelStore(str(demo)), with_torch=False)
    assert train(root, "demo-detector:1", "--version", "9", "--crops", str(root / "set")) == 2
    assert "demo-detector:1 is a detector" in capsys.readouterr().err


def test_the_fault_hook_and_unknown_architectures_say_what_is_wrong(monkeypatch):
    monkeypatch.setenv("TRAPLINE_TRAIN_FAULT", "2:/tmp/marker")
    assert fault_hook() == {"epoch": 2, "marker": "/tmp/marker"}
    monkeypatch.setenv("TRAPLINE_TRAIN_FAULT", "two")
    with pytest.raises(BatchError, match="give EPOCH:MARKER"):
        fault_hook()
    with pytest.raises(BatchError, match="which trapline cannot build"):
        build("resnet-9000", list(KINDS))


def test_trainable_weights_publish_from_the_command_line_and_must_fit_their_network(place, tmp_path, capsys):
    root, store = place
    _, onnx_path = store.fetch("species-onnx:1")
    _, state = store.trainable("species:1")
    (tmp_path / "weights.pt").write_bytes(state)
    (tmp_path / "config.json").write_text(json.dumps(store.get("species-onnx:1").config.model_dump(
        mode="json", exclude={"graph", "weights"})))
    publish = ["models", "publish", str(onnx_path), "--name", "cli-species", "--config", str(tmp_path / "config.json"),
               "--store", str(tmp_path / "models")]
    assert main([*publish, "--version", "1", "--trainable", str(tmp_path / "weights.pt")]) == 2
    assert "--trainable and --architecture go together" in capsys.readouterr().err
    assert main([*publish, "--version", "1", "--trainable", str(tmp_path / "weights.pt"),
                 "--architecture", "demo-tiny-classifier"]) == 0
    record, data = ModelStore(str(tmp_path / "models")).trainable("cli-species:1")
    assert data == state and record.labels == tuple(KINDS)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main([*publish, "--version", "2", "--trainable", str(tmp_path / "junk.pt"),
                 "--architecture", "demo-tiny-classifier"]) == 0  # the store moves bytes; the trainer judges them
    capsys.readouterr()
    assert main(["models", "train", "cli-species:2", "--crops", str(root / "set"), "--version", "3",
                 "--store", str(tmp_path / "models")]) == 2
    assert "its trainable weights do not fit a demo-tiny-classifier network" in capsys.readouterr().err


def test_a_square_cropping_classifier_trains_on_crops_padded_square(place):
    """The export cuts a crop to its box (and margin); a classifier that crops square in use sees the animal's
    proportions kept, so the fine-tune sees them kept too: the crop is padded to a square, not stretched into one."""
    cfg = place[1].get("species:1").config
    assert cfg.preprocess.crop_square
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 255  # a white bar in the middle third
    sq = squared(wide, cfg)
    assert sq.shape == (30, 30, 3) and np.array_equal(sq[10:20], wide)
    assert squared(wide, cfg.model_copy(update={"preprocess": cfg.preprocess.model_copy(
        update={"crop_square": False})})) is wide
    assert squared(np.zeros((9, 4, 3), np.uint8), cfg).shape == (9, 9, 3)
