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
