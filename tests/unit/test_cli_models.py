"""`trapline models ...` as a user runs it: a real subprocess, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fixtures.onnx_models import fixture_config


def start(*args, store) -> subprocess.Popen:
    """A command started, read with `done`: commands that only read (or are refused) run side by side, each one's
    start-up (seconds of imports) at once."""
    return subprocess.Popen([sys.executable, "-m", "trapline.cli", *args, "--store", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def done(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run(*args, store):
    return done(start(*args, store=store))


@pytest.fixture
def cfg_file(tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(fixture_config("yolov8")))
    return p


def test_models_cli_flow(tmp_path, fixture_models, cfg_file):
    store = tmp_path / "store"
    card = tmp_path / "card.md"
    card.write_text("# fixture\nA constant detector.")
    r = run("models", "publish", str(fixture_models["yolov8"]), "--name", "fx", "--version", "1",
            "--config", str(cfg_file), "--card", str(card), store=store)
    assert r.returncode == 0, r.stderr
    assert "published fx:1" in r.stdout
    assert run("models", "publish", str(fixture_models["yolov8"]), "--name", "fx", "--version", "2",
               "--config", str(cfg_file), store=store).returncode == 0
    r = run("models", "promote", "fx:1", store=store)
    assert r.returncode == 0 and "fx@production -> 1" in r.stdout
    assert run("models", "promote", "fx:2", store=store).returncode == 0
    listed, shown = start("models", "list", "--json", store=store), start("models", "show", "fx", "--json", store=store)
    assert json.loads(done(listed).stdout) == [{"name": "fx", "versions": ["1", "2"],
                                                "aliases": {"production": "2", "latest": "2"}, "refused": []}]
    shown = json.loads(done(shown).stdout)
    assert shown["version"] == "2" and shown["aliases"] == ["latest", "production"]
    r = run("models", "rollback", "fx", store=store)
    assert r.returncode == 0 and "fx@production -> 1" in r.stdout
    card, verified = start("models", "show", "fx@production", store=store), start("models", "verify", "fx:1",
                                                                                 store=store)
    assert "A constant detector" in done(card).stdout
    assert done(verified).returncode == 0
    # The same store, one file changed under it: verify names the checksum.
    with open(store / "fx" / "1" / "model.onnx", "ab") as f:
        f.write(b"!")
    r = run("models", "verify", "fx:1", store=store)
    assert r.returncode == 2 and "sha256" in r.stderr


REFUSALS = [
    (["models", "show", "../etc"], "invalid model name"),
    (["models", "show", "nope:1"], "no version '1'"),
    (["models", "promote", "fx:..", ], "invalid version"),
    (["models", "rollback", "nope"], "no alias 'production'"),
]


def test_models_cli_refusals(tmp_path):
    started = [(args, needle, start(*args, store=tmp_path / "store")) for args, needle in REFUSALS]  # all at once
    for args, needle, proc in started:
        r = done(proc)
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
