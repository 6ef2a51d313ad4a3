"""One way to get a Storage for a location (model_store/tables/locations.py): a URL goes through open_location's
checks, an opened Storage travels as it is, and no product code builds `Storage(...)` itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ground.errors import ArchiveError
from ground.storage import Storage
from model_store.tables.decisions import DecisionsLog
from model_store.tables.deployments import DeploymentsTable
from model_store.tables.locations import storage_for
from model_store.tables.reader import Tables

ROOT = Path(__file__).resolve().parents[2]
# Where `Storage(...)` is built on purpose: the one opener, the class itself, and the model store (its own options).
BUILDS_STORAGE = {"model_store/tables/archive.py", "ground/storage.py", "model_store/store/store.py"}


def test_a_url_is_opened_with_the_checks_and_a_storage_travels_as_it_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opened = storage_for("tables")
    assert opened.url().endswith(str(tmp_path / "tables"))  # a relative directory made absolute
    for holder in (DecisionsLog, DeploymentsTable):
        assert holder(opened).storage is opened
        assert holder("tables").storage.url() == opened.url()
    assert Tables(opened).storage is opened
    with pytest.raises(ArchiveError, match="unsupported location"):
        DecisionsLog("ftp://example.org/tables")  # once built with Storage(tables), past the checks


def test_no_product_code_builds_a_storage_itself():
    builds = []
    for package in ("batch", "model_store", "serve", "trapline", "benchmarks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in BUILDS_STORAGE:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) \
                        == "Storage":
                    builds.append(f"{rel}:{node.lineno}")
    assert not builds, f"open it with model_store.tables.locations (storage_for / cached_location): {builds}"
    assert isinstance(storage_for(str(ROOT)), Storage)
