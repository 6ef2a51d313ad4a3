"""`trapline people ...` and `trapline audit` on a store's registry: the token printed once and kept as a digest,
the list without secrets, a revoked person listed as such, and each change in the audit log."""

from __future__ import annotations

import json

from serve.people import PEOPLE_FILE, digest
from trapline.cli import main


def run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_people_commands_over_a_store(tmp_path, capsys):
    store = str(tmp_path / "models")
    added = json.loads(run(capsys, "people", "add", "ana", "--role", "reviewer", "--store", store, "--json"))
    token = added["token"]
    kept = (tmp_path / "models" / "_people" / PEOPLE_FILE).read_text()
    assert token not in kept and digest(token) in kept  # a digest, never the token
    assert main(["people", "add", "ana", "--role", "admin", "--store", store]) == 2  # registered already: typed
    capsys.readouterr()
    rotated = json.loads(run(capsys, "people", "rotate", "ana", "--store", store, "--json"))["token"]
    assert rotated != token and digest(token) not in (tmp_path / "models" / "_people" / PEOPLE_FILE).read_text()
    run(capsys, "people", "revoke", "ana", "--store", store)
    assert "nobody registered" in run(capsys, "people", "list", "--store", store)
    [row] = json.loads(run(capsys, "people", "list", "--revoked", "--store", store, "--json"))
    assert row["name"] == "ana" and row["revoked"] and "token" not in row and "digest" not in row
    log = json.loads(run(capsys, "audit", "--store", store, "--json"))
    assert [e["action"] for e in log] == ["people revoke ana", "people rotate ana", "people add ana"]
    assert all(e["who"].endswith("(command line)") for e in log) and token not in json.dumps(log)


def test_promote_and_rollback_on_the_command_line_are_audited(tmp_path, capsys, fixture_models):
    from model_store import ModelStore
    from tests.fixtures.onnx_models import fixture_config

    store = str(tmp_path / "models")
    for version in ("1", "2"):
        ModelStore(store).publish(fixture_models["yolov8"], "m", version, fixture_config("yolov8"))
    run(capsys, "models", "promote", "m:1", "--store", store)
    run(capsys, "models", "promote", "m:2", "--store", store)
    run(capsys, "models", "rollback", "m", "--store", store)
    assert main(["models", "promote", "m:9", "--store", store]) == 2  # no such version: refused, and recorded
    capsys.readouterr()
    log = json.loads(run(capsys, "audit", "--store", store, "--json"))
    assert [(e["action"], e["outcome"]) for e in reversed(log)] == [
        ("models promote m:1 @production", "done"), ("models promote m:2 @production", "done"),
        ("models rollback m @production", "done"), ("models promote m:9 @production", "failed")]
    assert log[1]["answer"]["version"] == "1" and "no version '9'" in log[0]["error"]
