"""Every option is checked before anything is written (issue 81): each option `reprocess`, `postprocess`, `export`,
`identify` and `jobs submit` refuse, given on its own, is an `error: ...` (exit 2), or a typed refusal of the
submit with no job submitted, and the output directory is found exactly as it was: no lease file, no manifest, no
part, no package directory. No Ray: every one of these is refused before a run would start it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from batch.jobs.control import JobControl
from ground.errors import TraplineError
from model_store import ModelStore
from model_store.demo.photos import PHOTOS
from model_store.demo.publish import publish_demo
from serve.jobs_config import JobsConfig
from tests.fixtures.occurrences import write_sheet_tables
from tests.unit.test_jobs_stop import JobManager
from trapline.cli import main


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A store with the demo detector (input 320x320) and two identifiers, an archive of two photos, and sheet
    tables (labels moth, deer) under `tables/`."""
    root = tmp_path_factory.mktemp("checked-first")
    store = ModelStore(str(root / "store"))
    publish_demo(store, with_torch=False)
    store.publish(None, "zebra-coats", "1", {"backend": "keypoints", "applies_to": ["zebra"]})
    (root / "archive" / "cam1").mkdir(parents=True)
    for photo in sorted(PHOTOS.glob("*.jpg"))[:2]:
        shutil.copy(photo, root / "archive" / "cam1" / photo.name)
    write_sheet_tables(root / "sheet")
    return root


def listing(root: Path) -> list[tuple[str, int]]:
    """Every file and directory under `root`, with its size (-1: a directory)."""
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*"))


REPROCESS = {  # refused option -> what the refusal says
    "tiling larger than the model's input": (["--tiling", '{"tile_size": 1280}'], "larger than the model's input"),
    "tiling with read tasks": (["--tiling", "on", "--decode", "tasks"], "--tiling needs --decode actors"),
    "a classifier not in the store": (["--classify", "nope"], "no model 'nope'"),
    "a filter naming a label the model lacks": (["--filters", '{"class_mask": {"allowed_labels": ["unicorn"]}}'],
                                                 "unicorn"),
    "a model not in the store": (["--model", "nope"], "no model 'nope'"),
    "an invalid path pattern": (["--path-pattern", "(?P<camera>"], "not a valid regular expression"),
}
POSTPROCESS = {
    "a label the tables' model lacks": (["--filter", "class_mask", "--config", '{"allowed_labels": ["unicorn"]}'],
                                        "unicorn"),
    "a config the filter refuses": (["--filter", "score", "--config", '{"min_score": 7}'], "min_score"),
    "an image not in the tables": (["--filter", "score", "--config", '{"min_score": 0.5}', "--image", "no.jpg"],
                                   "no image 'no.jpg'"),
    "an occurrence not in the tables": (["--filter", "score", "--config", '{"min_score": 0.5}', "--occurrence",
                                         "nope"], "no occurrence nope"),
    "a filter set not in the tables": (["--filter", "score", "--config", '{"min_score": 0.5}', "--filters-hash",
                                        "ffffffffffffffff"], "no rows with filters hash"),
    "a classifier filter without classifications": (["--filter", "species_ensemble", "--config", "{}"],
                                                    "no classifications"),
}
EXPORT = {
    "cameras without deployments": (["--format", "camtrap-dp", "--out", "{out}/package"], "no deployment for camera"),
    "a deployments file that is not there": (["--format", "camtrap-dp", "--out", "{out}/package", "--deployments",
                                              "{out}/missing.csv"], "cannot read"),
    "a bad time zone": (["--format", "camtrap-dp", "--out", "{out}/package", "--timezone", "CET"], "--timezone"),
    "a filter set not in the tables": (["--format", "megadetector", "--out", "{out}/md.json", "--filters-hash",
                                        "ffffffffffffffff"], "no rows with filters hash"),
    "a model not in the tables": (["--format", "coco", "--out", "{out}/coco.json", "--model", "nope"],
                                  "no rows for model 'nope'"),
}
IDENTIFY = {
    "an identifier not in the store": (["--identifier", "nope@production"], "no model 'nope'"),
    "an identifier of labels the tables lack": (["--identifier", "zebra-coats:1"], "identifies zebra"),
    "a model version not in the tables": (["--identifier", "zebra-coats:1", "--model", "nope:1"],
                                          "no rows for nope:1"),
    "a threshold out of range": (["--identifier", "zebra-coats:1", "--threshold", "7"], "--threshold"),
}


def refused(argv: list[str], said: str, watched: Path, capsys) -> None:
    before = listing(watched)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and said in err, (code, err)
    assert listing(watched) == before


def copy_of(site: Path, tmp_path: Path) -> Path:
    """A copy of the sheet tables: each case watches its own, so that no case can hide another's file."""
    return Path(shutil.copytree(site / "sheet", tmp_path / "sheet"))


@pytest.mark.parametrize("case", REPROCESS)
def test_reprocess_refuses_before_it_writes(site, tmp_path, capsys, case):
    extra, said = REPROCESS[case]
    out = tmp_path / "out"
    out.mkdir()
    argv = ["reprocess", "--archive", str(site / "archive"), "--out", str(out), "--store", str(site / "store"),
            "--model", "demo-detector", *extra]
    refused(argv, said, out, capsys)


@pytest.mark.parametrize("case", POSTPROCESS)
def test_postprocess_refuses_before_it_writes(site, tmp_path, capsys, case):
    extra, said = POSTPROCESS[case]
    sheet = copy_of(site, tmp_path)
    refused(["postprocess", "--tables", str(sheet / "tables"), *extra], said, sheet, capsys)


@pytest.mark.parametrize("case", EXPORT)
def test_export_refuses_before_it_writes(site, tmp_path, capsys, case):
    extra, said = EXPORT[case]
    sheet = copy_of(site, tmp_path)
    out = tmp_path / "exports"
    out.mkdir()
    argv = ["export", "--tables", str(sheet / "tables"), *[a.replace("{out}", str(out)) for a in extra]]
    refused(argv, said, tmp_path, capsys)


@pytest.mark.parametrize("case", IDENTIFY)
def test_identify_refuses_before_it_writes(site, tmp_path, capsys, case):
    extra, said = IDENTIFY[case]
    sheet = copy_of(site, tmp_path)
    refused(["identify", "--tables", str(sheet / "tables"), "--store", str(site / "store"), *extra], said, sheet,
            capsys)


SUBMIT = {  # kind, options over the base, what the refusal says
    "reprocess: tiling larger than the model's input": ("reprocess", {"tiling": {"tile_size": 1280}},
                                                        "larger than the model's input"),
    "reprocess: tiling with read tasks": ("reprocess", {"tiling": "on", "decode": "tasks"},
                                          "--tiling needs --decode actors"),
    "reprocess: a classifier not in the store": ("reprocess", {"classify": ["nope"]}, "no model 'nope'"),
    "reprocess: a filter naming a label the model lacks": (
        "reprocess", {"filters": {"class_mask": {"allowed_labels": ["unicorn"]}}}, "unicorn"),
    "postprocess: a label the tables' model lacks": (
        "postprocess", {"filter": "class_mask", "config": {"allowed_labels": ["unicorn"]}}, "unicorn"),
    "postprocess: a filter set not in the tables": (
        "postprocess", {"filter": "score", "config": {"min_score": 0.5}, "filters_hash": "ffffffffffffffff"},
        "no rows with filters hash"),
    "identify: an identifier not in the store": ("identify", {"identifier": "nope@production"}, "no model 'nope'"),
    "export: a model in neither": ("export", {"format": "coco", "out": "{out}/coco.json", "model": "nope"},
                                   "no model 'nope'"),
}


@pytest.mark.parametrize("case", SUBMIT)
def test_jobs_submit_refuses_before_it_submits(site, tmp_path, case):
    """`trapline jobs submit KIND ...` is the service's `POST /v1/jobs`, which is `JobControl.submit` (the job
    manager in memory: what is under test is that nothing reaches it)."""
    kind, given, said = SUBMIT[case]
    sheet = copy_of(site, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    base = {"reprocess": {"archive": str(site / "archive"), "out": str(out), "model": "demo-detector"},
            "postprocess": {"tables": str(sheet / "tables")}, "identify": {"tables": str(sheet / "tables")},
            "export": {"tables": str(sheet / "tables")}}[kind]
    options = {**base, **{k: v.replace("{out}", str(out)) if isinstance(v, str) else v for k, v in given.items()}}
    manager = JobManager()
    control = JobControl(JobsConfig(roots=[str(tmp_path), str(site)]).resolved(str(tmp_path)), str(site / "store"),
                         client=manager)
    before = listing(tmp_path)
    with pytest.raises(TraplineError, match=said):
        control.submit(kind, options)
    assert manager.jobs == {} and listing(tmp_path) == before
