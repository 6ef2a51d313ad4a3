"""A model version whose every result set is retired or purged is no version the tables hold (issue 86): with two
versions and the older one's only set purged, every command and view that picks a version by default picks the
other without --model; the purge removes the partitions it emptied, and partitions an older trapline left empty
are ignored (and removed by a rerun of the purge). Locally and on S3 (moto); no Ray: the tables are written by the
reprocess stages in this process (tests/fixtures/review.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from batch.health import run_health
from batch.health_options import HealthOptions
from batch.jobs.locations import locations
from batch.postprocessing.occurrences import occurrence_table_set
from batch.views.season_metrics import render
from ground.errors import BatchError
from model_store import ModelStore
from model_store.tables import browse, lifecycle
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.season import Season
from model_store.tables.set_records import read_record
from model_store.tables.sets import SET_TABLES, listed
from model_store.tables.table_set import resolve_table_set
from tests.fixtures.review import two_version_tables
from trapline.cli import main

V1 = ("model_name=trapcam", "model_version=1")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, ModelStore]:
    """Tables holding trapcam:1 and trapcam:2 (one result set each), and a store with an identifier (of a label the
    fixture detector never finds: its refusal names the version it read)."""
    _, _, out, store = two_version_tables(tmp_path_factory.mktemp("purged-version"))
    store.publish(None, "coats", "1", {"backend": "keypoints", "applies_to": ["zebra"]})
    return out, store


@pytest.fixture(params=["local", "s3"])
def tables(request, made, tmp_path) -> str:
    """A fresh copy of the two versions' tables, in a directory or in a bucket of the moto server (uploaded as
    they are: the stages are S3-agnostic and slow against moto)."""
    out, _ = made
    if request.param == "local":
        shutil.copytree(out, tmp_path / "tables")
        return str(tmp_path / "tables")
    url = f"{request.getfixturevalue('s3_bucket')}/tables"
    storage = Tables(open_location(url)).storage
    storage.fs.put(str(out) + "/", storage.path(), recursive=True)
    return url


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    said = capsys.readouterr()
    return code, said.out, said.err


def test_with_the_older_versions_only_set_purged_every_default_picks_the_other(tables, made, tmp_path, capsys):
    _, store = made
    old = resolve_table_set(Tables(open_location(tables)), "trapcam:1").filters_hash
    md = str(tmp_path / "md.json")
    code, _, err = cli(capsys, "export", "--tables", tables, "--format", "megadetector", "--out", md)
    assert code == 2 and "several model versions (trapcam:1, trapcam:2)" in err

    # retired, as archive.md cleans up: the version is no longer one the tables hold, before any file goes
    lifecycle.retire(tables, f"trapcam:1/{old}", "a second run beside the first")
    assert Tables(open_location(tables)).versions() == [("trapcam", "2")]
    assert Tables(open_location(tables)).partitions() == [
        ("trapcam", "1"),
        ("trapcam", "2"),
    ]  # its files are still there
    assert resolve_table_set(Tables(open_location(tables))).model_version == "2"

    report = lifecycle.purge(tables, f"trapcam:1/{old}", store=store.root)
    assert report.images > 0 and report.files > 0
    storage = Tables(open_location(tables)).storage
    assert [t for t in SET_TABLES if storage.exists(t, *V1)] == []  # the partitions it emptied are gone
    assert storage.listdir("images") == ["model_name=trapcam"]  # the name's other version keeps it
    assert read_record(storage, "trapcam", "1", old).purge == "purged"  # `tables sets` still says so
    assert [(s.model_version, s.status) for s in listed(Tables(open_location(tables)))] == [
        ("1", "purged"),
        ("2", "whole"),
    ]
    assert Tables(open_location(tables)).partitions() == Tables(open_location(tables)).versions() == [("trapcam", "2")]

    every_default_picks_version_2(tables, store, tmp_path, capsys)

    # tables an older trapline purged keep the version's empty directories: readers pass over them, and a rerun of
    # the purge removes them
    for table in ("images", "detections"):
        if storage.is_local:
            Path(storage.path(table, *V1)).mkdir(parents=True)
        else:  # the zero-byte "directory" key S3 consoles and some sync tools leave for a prefix
            storage.fs.pipe_file(storage.path(table, *V1) + "/", b"")
    assert storage.exists("images", *V1) and Tables(open_location(tables)).partitions() == [("trapcam", "2")]
    assert resolve_table_set(Tables(open_location(tables))).model_version == "2"
    assert browse.facets(Tables(open_location(tables)), None)["models"] == ["trapcam:2"]
    assert lifecycle.purge(tables, f"trapcam:1/{old}").already_purged
    assert not storage.exists("images", *V1) and not storage.exists("detections", *V1)


def every_default_picks_version_2(tables: str, store: ModelStore, tmp_path: Path, capsys) -> None:
    """Each command with no --model, the console's pickers, the job forms' models, /metrics and `trapline health`."""
    md = tmp_path / "md.json"
    code, _, err = cli(capsys, "export", "--tables", tables, "--format", "megadetector", "--out", str(md))
    assert code == 0, err
    assert json.loads(md.read_text())["info"]["detector_metadata"]["model_version"] == "2"
    code, out, err = cli(capsys, "report", "--tables", tables, "--out", str(tmp_path / "report"), "--json")
    assert code == 0 and json.loads(out)["model"] == "trapcam:2", err
    code, out, err = cli(
        capsys, "postprocess", "--tables", tables, "--filter", "track", "--config", '{"max_gap_s": 100000}'
    )
    assert code == 0 and "trapcam:2" in out, err
    tracked = occurrence_table_set(Tables(open_location(tables)))  # the occurrences pages and `occurrences review`
    assert (tracked.model_version, tracked.filters_hash) == (
        "2",
        resolve_table_set(Tables(open_location(tables))).filters_hash,
    )
    code, out, err = cli(capsys, "occurrences", "review", "--tables", tables)
    assert code == 0, err
    code, out, err = cli(capsys, "events", "--tables", tables)
    assert code == 0 and Tables(open_location(tables)).storage.listdir("events", "model_name=trapcam") == [
        "model_version=2"
    ], err
    code, out, err = cli(capsys, "crops", "--tables", tables)
    assert code == 0 and Tables(open_location(tables)).storage.listdir("crops", "trapcam") == ["2"], err
    code, _, err = cli(capsys, "identify", "--tables", tables, "--identifier", "coats:1", "--store", store.root)
    assert code == 2 and "the kept detections of trapcam:2 are" in err, err

    # the console: its model picker, the captures and a capture it opens
    facets = browse.facets(Tables(open_location(tables)), None)
    assert (facets["models"], facets["model"]) == (["trapcam:2"], "trapcam:2")
    page = browse.captures(Tables(open_location(tables)), None)
    assert page["model"] == {"name": "trapcam", "version": "2"} and page["total"] > 0
    uri = page["captures"][0]["uri"]
    assert browse.capture(Tables(open_location(tables)), uri, None)["model"]["version"] == "2"
    if Tables(
        open_location(tables)
    ).storage.is_local:  # the job forms' tables and the versions each holds (a walk of directories)
        found = {loc["path"]: loc["models"] for loc in locations([str(Path(tables).parent)])["locations"]}
        assert found[tables] == ["trapcam:2"]

    # /metrics and `trapline health`: the bytes per version name the one left
    season = Season(tables, clock_every_s=float("inf")).refresh()
    assert season.up and {version for _, _, version, _ in season.table_bytes} == {"2"}
    assert 'version="1"' not in render({"site": season}).decode()
    assert {c.name: c.status for c in run_health(HealthOptions(tables=tables)).checks}["tables readable"] == "ok"


def test_a_version_whose_every_set_is_hidden_is_none_and_named_in_full_says_why(made, tmp_path):
    out, _ = made
    tables = str(tmp_path / "tables")
    shutil.copytree(out, tables)
    for version in ("1", "2"):
        set_hash = resolve_table_set(Tables(open_location(tables)), f"trapcam:{version}").filters_hash
        lifecycle.retire(tables, f"trapcam:{version}/{set_hash}")
    assert Tables(open_location(tables)).versions() == []
    with pytest.raises(BatchError, match="no model version .* has a result set readers take"):
        resolve_table_set(Tables(open_location(tables)))
    with pytest.raises(BatchError, match="no rows for model 'trapcam'.*every result set is retired or purged"):
        resolve_table_set(Tables(open_location(tables)), "trapcam")
    with pytest.raises(BatchError, match="trapcam:1 has no image rows but in sets hidden from readers"):
        resolve_table_set(Tables(open_location(tables)), "trapcam:1")
    assert browse.facets(Tables(open_location(tables)), None)["models"] == []
