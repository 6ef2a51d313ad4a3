"""One way to get a Storage for a location (model_store/tables/locations.py): a URL goes through open_location's
checks at the door, the opened Storage travels as it is (the tables handles take nothing else), and no product code
builds `Storage(...)` itself."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ground.errors import ArchiveError
from ground.storage import Storage
from model_store.tables.clock import TimeBook
from model_store.tables.decisions import DecisionsLog
from model_store.tables.deployments import DeploymentsTable
from model_store.tables.identities import SIGHTINGS, current, latest_run, read_result
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables

ROOT = Path(__file__).resolve().parents[2]
# Where `Storage(...)` is built on purpose: the one opener, the class itself, and the model store (its own options).
BUILDS_STORAGE = {"model_store/tables/archive.py", "ground/storage.py", "model_store/store/store.py"}


def test_a_url_is_opened_with_the_checks_and_the_opened_location_travels_as_it_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opened = open_location("tables")
    assert opened.url().endswith(str(tmp_path / "tables"))  # a relative directory made absolute
    for holder in (DecisionsLog, DeploymentsTable, Tables):
        assert holder(opened).storage is opened
        with pytest.raises(TypeError, match="takes the location the door opened"):
            holder("tables")  # one constructor: a URL below the door is a programming error, said at once
    for reader in (TimeBook.load, latest_run, lambda where: read_result(where, SIGHTINGS), current):
        with pytest.raises(TypeError, match="takes the location the door opened"):
            reader("tables")
    with pytest.raises(ArchiveError, match="unsupported location"):
        open_location("ftp://example.org/tables")  # once built with Storage(tables), past the checks


def test_no_product_code_takes_a_url_or_an_opened_location_in_one_parameter():
    """`str | Storage` was the second way to hand a function the tables; the door opens them once instead."""
    both = []
    for package in ("batch", "model_store", "serve", "trapline", "ground"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"\bstr \| Storage\b|\bStorage \| str\b|\bTables \| str\b|\bstr \| Tables\b", line):
                    both.append(f"{path.relative_to(ROOT).as_posix()}:{n}")
    assert both == []


def test_no_product_code_builds_a_storage_itself():
    builds = []
    for package in ("batch", "model_store", "serve", "trapline", "ground", "benchmarks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in BUILDS_STORAGE:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) \
                        == "Storage":
                    builds.append(f"{rel}:{node.lineno}")
    assert not builds, f"open it with model_store.tables.locations (open_location / cached_location): {builds}"
    assert isinstance(open_location(str(ROOT)), Storage)
