"""`trapline models train` on the session's real local Ray: a Ray Train TorchTrainer of two workers (half a CPU each)
fine-tunes a trainable classifier on a crops set made at test time; its first worker is killed at the start of epoch
2 (`TRAPLINE_TRAIN_FAULT`), Ray Train restarts the workers from epoch 1's checkpoint, and the result is published
once, as a version that serves (ONNX), is itself trainable, and whose card and training.json carry the set's manifest
and its held-out top-1 with its Wilson interval; the run's record in --tables says so too."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from batch.train.architectures import build
from batch.train.crops import open_crops, split_inputs
from batch.train.loop import load_state
from model_store import ModelStore
from model_store.demo.species import run_onnx
from model_store.tables.archive import open_location
from model_store.tables.manifest import read_manifests
from tests.fixtures.crops_sets import publish_trainable, write_crops_set
from trapline.cli import main

pytestmark = pytest.mark.ray


def test_a_killed_worker_resumes_from_its_checkpoint_and_the_result_is_published_once(ray_cluster, tmp_path,
                                                                                      monkeypatch, capsys):
    store = ModelStore(str(tmp_path / "models"))
    publish_trainable(store, "species", "1")
    write_crops_set(tmp_path / "set", {"train": 160, "test": 48})
    marker, checkpoints = tmp_path / "killed", tmp_path / "checkpoints"
    monkeypatch.setenv("TRAPLINE_TRAIN_FAULT", f"2:{marker}")
    code = main(["models", "train", "species:1", "--crops", str(tmp_path / "set"), "--version", "2",
                 "--workers", "2", "--cpus-per-worker", "0.5", "--epochs", "2", "--batch-size", "32",
                 "--checkpoints", str(checkpoints), "--store", str(store.root), "--tables", str(tmp_path / "tables"),
                 "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    done = json.loads(out.out[out.out.index("{\n"):])  # after any line Ray's raylet printed about the killed worker
    assert marker.exists()  # the first attempt's worker did exit at epoch 2
    assert store.list_versions("species") == ["1", "2"]  # published once
    training = json.loads((tmp_path / "models" / "species" / "2" / "training.json").read_text())
    assert training == done["training"]
    run = training["run"]
    assert run["resumed_from"] == [1] and run["epochs_run"] == 1 and run["workers"] == 2  # epoch 2 only, again
    assert not any(checkpoints.iterdir())  # published: the run's checkpoints are gone
    # --tables: the run's record, written after each epoch (epoch 2 again after the restart) and at its end
    [record] = read_manifests(open_location(str(tmp_path / "tables")))
    assert (record.kind, record.status, record.published, record.error) == ("train", "succeeded", "species:2", None)
    assert record.counts["epoch"] == record.counts["epochs"] == 2 and record.counts["loss"] == run["final_loss"]
    assert "val_top1" not in record.counts  # the set has no val split

    # the card carries the set's manifest and the held-out accuracy, measured on the test split's 48 crops
    manifest_id = hashlib.sha256((tmp_path / "set" / "manifest.json").read_bytes()).hexdigest()
    s, h = training["training_set"], training["heldout"]
    assert s["id"] == manifest_id and s["decisions"]["count"] == 3 and s["tables"] == "s3://traps/tables"
    assert s["crops"] == {"train": 160, "val": 0, "test": 48}
    top1 = h["top1"]
    assert top1["n"] == 48 and top1["low"] <= top1["value"] <= top1["high"] and h["source_top1"]["n"] == 48
    assert sum(r["n"] for r in h["per_label"].values()) == 48
    assert main(["models", "show", "species:2", "--store", str(store.root)]) == 0
    card = capsys.readouterr().out
    assert manifest_id in card and f"top-1: {top1['value']:.2f}" in card and "resumed from the checkpoint" in card

    # what serves is what was trained: the ONNX and the new trainable weights give the same logits, and the
    # held-out figure is theirs on the test split; the weights moved away from the source's
    new = store.get("species:2")
    crops = open_crops(str(tmp_path / "set"), list(new.config.labels))
    x, y = split_inputs(crops, "test", new.config)
    _, onnx_path = store.fetch("species:2")
    logits = run_onnx(onnx_path, x)
    assert int((logits.argmax(axis=1) == y).sum()) == top1["k"]
    record, state = store.trainable("species:2")
    model = build(record.architecture, list(record.labels)).eval()
    model.load_state_dict(load_state(state))
    import torch

    with torch.no_grad():
        assert np.allclose(model(torch.from_numpy(x)).numpy(), logits, atol=1e-3)
    assert new.sha256 != store.get("species:1").sha256
    assert store.load_classifier("species:2") is not None
