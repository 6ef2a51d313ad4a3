"""Hostile model references and store layouts on the command line: traversal is refused, nothing leaks out.

Every case runs the real `trapline` entry point in-process and expects exit status 2 with one
`error: ...` line (no traceback), and no file created or read outside the store root.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from model_store import ModelStore
from tests.fixtures.onnx_models import fixture_config
from trapline.cli import main

BAD_REFS = [
    "..", "../fixture", "fixture/../../etc", "/etc/passwd", "fixture:..", "fixture:../1", "fixture:1/../../x",
    "fixture@..", "fixture@../production", "fixture@/abs", "%2e%2e", "%2e%2e%2fetc", "fixture:%2e%2e",
    "..%2f..%2fetc", "fixture:..\\..\\1", "fixture\x00:1", ".hidden", "~root", "fixture:1:2",
]


@pytest.fixture
def store(tmp_path, fixture_models) -> ModelStore:
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.promote("fixture:1")
    return store


def refused(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, code, err)
    assert err.startswith("error: ") and "Traceback" not in err, (argv, err)
    return err


def snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("ref", BAD_REFS)
def test_models_commands_refuse_traversal(store, tmp_path, capsys, ref):
    before = snapshot(tmp_path)
    refused(capsys, ["models", "show", ref, "--store", store.root])
    refused(capsys, ["models", "verify", ref, "--store", store.root])
    refused(capsys, ["models", "promote", ref, "--store", store.root])
    name = ref.split(":")[0].split("@")[0]
    if name != "fixture":
        refused(capsys, ["models", "rollback", name, "--store", store.root])
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("bad", ["..", "../x", "/abs", "%2e%2e", "a/b", "x\x00"])
def test_publish_and_alias_names_refuse_traversal(store, tmp_path, fixture_models, capsys, bad):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(fixture_config("yolov8")))
    before = snapshot(tmp_path)
    weights = str(fixture_models["yolov8"])
    refused(capsys, ["models", "publish", weights, "--name", bad, "--version", "9", "--config", str(config),
                     "--store", store.root])
    refused(capsys, ["models", "publish", weights, "--name", "fixture", "--version", bad, "--config", str(config),
                     "--store", store.root])
    refused(capsys, ["models", "promote", "fixture:1", "--alias", bad, "--store", store.root])
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("ref", BAD_REFS)
def test_reprocess_refuses_traversal_before_doing_anything(store, tmp_path, capsys, ref):
    (tmp_path / "archive").mkdir()
    refused(capsys, ["reprocess", "--archive", str(tmp_path / "archive"), "--out", str(tmp_path / "out"),
                     "--model", ref, "--store", store.root])
    assert not (tmp_path / "out").exists()


def test_symlinks_out_of_the_store_are_refused(store, tmp_path, capsys):
    """A model directory, a weights file or an alias pointer that is a symlink leading outside the root."""
    root = Path(store.root)
    outside = tmp_path / "outside"
    shutil.copytree(root / "fixture", outside / "evil")  # a complete, valid-looking model, outside the root
    os.symlink(outside / "evil", root / "evil")
    version = root / "fixture" / "2"
    shutil.copytree(root / "fixture" / "1", version)
    weights = version / fixture_config("yolov8")["weights"]["file"]
    weights.unlink()
    os.symlink(outside / "evil" / "1" / weights.name, weights)
    alias = root / "fixture" / "_aliases" / "staging.json"
    (outside / "staging.json").write_text(json.dumps({"version": "1", "history": [], "updated_at": "x"}))
    os.symlink(outside / "staging.json", alias)

    for argv in (["models", "show", "evil:1"], ["models", "verify", "evil:1"], ["models", "verify", "fixture:2"],
                 ["models", "show", "fixture@staging"], ["models", "promote", "evil:1"]):
        err = refused(capsys, [*argv, "--store", store.root])
        assert "outside" in err or "refused" in err or "not found" in err.lower(), err
    (tmp_path / "archive").mkdir()
    refused(capsys, ["reprocess", "--archive", str(tmp_path / "archive"), "--out", str(tmp_path / "out"),
                     "--model", "evil:1", "--store", store.root])
    assert main(["models", "verify", "fixture:1", "--store", store.root]) == 0  # the real model is fine
