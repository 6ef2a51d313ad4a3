"""The `train` job kind without Ray: `POST /v1/jobs` kind `train` (`trapline jobs submit train`) takes the options of
`trapline models train`, refuses bad ones with a typed error before anything is submitted, records into the tables the
crops came from, and its record in their `_runs/` is what the job's progress shows (epoch k of n, loss, validation
top-1, the version published). The run itself on a real service's Ray: tests/integration/test_jobs_http.py."""

from __future__ import annotations

import json
import re
import shlex
import sys
from types import SimpleNamespace

import pytest

from batch.jobs.cli import _progress_text
from batch.jobs.control import JobControl
from batch.jobs.kinds import KINDS
from batch.train.record import RunRecord, write_epoch
from batch.train.run import check_options
from ground.errors import (
    InvalidOptionsError,
    InvalidParameterError,
    NotFoundError,
    PathNotAllowedError,
    TraplineError,
)
from model_store import ModelStore
from model_store.tables.archive import open_location
from model_store.tables.manifest import read_manifests
from serve.jobs_config import JobsConfig
from tests.fixtures.crops_sets import publish_trainable, write_crops_set
from tests.fixtures.job_manager import JobManager


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-job")
    store = ModelStore(str(root / "models"))
    publish_trainable(store, "species", "1")
    publish_trainable(store, "species-onnx", "1", trainable=False)
    for name, tables in (("set", str(root / "tables")), ("set-s3", None)):
        manifest = write_crops_set(root / name, {"train": 8, "val": 4})
        if tables:  # exported from local tables under the roots (the fixture's own say s3://traps/tables)
            (root / name / "manifest.json").write_text(json.dumps({**manifest, "tables": tables}))
    (root / "coco").mkdir()
    (root / "coco" / "manifest.json").write_text(json.dumps({"format": "coco-dataset"}))
    return root, store


def control_of(place) -> tuple[JobControl, JobManager]:
    root, store = place
    manager = JobManager()
    return JobControl(JobsConfig(roots=[str(root)]).resolved(str(root)), store.root, client=manager), manager


def asked(root, **extra) -> dict:
    return {"ref": "species:1", "crops": str(root / "set"), "version": "2", "epochs": 3, "cpus_per_worker": 0.25,
            **extra}


def test_a_train_job_runs_models_train_on_the_service_store_recording_into_the_crops_tables(place):
    root, store = place
    control, manager = control_of(place)
    job = control.submit("train", asked(root), name="fine-tune")
    assert job["kind"] == "train" and job["model"] == "species:1" and job["resumes"] is False
    options = job["options"]
    assert options["tables"] == str(root / "tables")  # from the crops' manifest, named in the job itself
    assert options["store"] == store.root and "address" not in options
    [submitted] = manager.jobs.values()
    words = shlex.split(submitted.entrypoint)
    assert words[1:6] == ["-m", "trapline.cli", "models", "train", "species:1"]
    assert {f"--tables={root / 'tables'}", "--cpus-per-worker=0.25", "--epochs=3", "--version=2"} <= set(words)
    assert KINDS["train"].parse(words[5:]).model_dump() == {**options, "address": None}
    # --tables given: the job records there, and nothing is read from the crops' manifest for it
    job = control.submit("train", asked(root, version="3", tables=str(root / "elsewhere")))
    assert job["options"]["tables"] == str(root / "elsewhere")


@pytest.mark.parametrize("what, extra, error, status, field, says", [
    ("an existing version", {"version": "1"}, InvalidParameterError, 422, "options", "species:1 already exists"),
    ("a version without trainable weights", {"ref": "species-onnx:1"}, NotFoundError, 404, None,
     "no trainable weights"),
    ("an unknown version", {"ref": "species:9"}, NotFoundError, 404, None, "no version '9'"),
    ("not a crops export", {"crops": "coco"}, InvalidParameterError, 422, "options", "not a crops set"),
    ("no crops there", {"crops": "nothing"}, InvalidParameterError, 422, "options", "has no manifest.json"),
    ("crops outside the roots", {"crops": "/etc"}, PathNotAllowedError, 422, "crops", "outside the allowed roots"),
    ("the crops' tables not allowed", {"crops": "set-s3"}, PathNotAllowedError, 422, "tables",
     "taken from the crops' manifest: give tables"),
    ("fewer crops than workers", {"workers": 9}, InvalidParameterError, 422, "options", "fewer than --workers 9"),
    ("no CPU", {"cpus_per_worker": 0}, InvalidOptionsError, 422, None, "--cpus-per-worker"),
    ("a Ray address", {"address": "ray://elsewhere:10001"}, InvalidOptionsError, 422, None, "address"),
])
def test_bad_options_are_refused_with_a_typed_error_before_anything_is_submitted(place, what, extra, error, status,
                                                                                  field, says):
    root, _ = place
    control, manager = control_of(place)
    given = {k: str(root / v) if k == "crops" and not v.startswith("/") else v for k, v in extra.items()}
    with pytest.raises(TraplineError) as err:
        control.submit("train", asked(root, **given))
    assert isinstance(err.value, error) and err.value.status == status, (what, err.value)
    assert says in err.value.message, (what, err.value.message)
    if field:
        assert err.value.extra.get("field") == field, (what, err.value.extra)
    assert not manager.jobs, what


def test_the_record_in_the_tables_is_the_jobs_progress_epoch_by_epoch_and_names_the_published_version(
        place, monkeypatch):
    root, _ = place
    control, manager = control_of(place)
    job = control.submit("train", asked(root, version="4"))
    assert control.show(job["id"])["progress"] is None  # submitted, not started: no record yet
    # The job's driver (here, without Ray: what it writes) under the job supervisor's submission id
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"metadata": {"job_submission_id": job["id"]}}))
    options = KINDS["train"].validate(job["options"])
    record = RunRecord(options.tables, options, check_options(options))
    p = control.show(job["id"])["progress"]
    assert (p["unit"], p["epoch"], p["epochs"], p["run_status"], p["published"]) == ("epochs", 0, 3, "running", None)
    assert p["stages"]["train"] == {"epoch": 0, "epochs": 3, "train_crops": 8, "val_crops": 4}
    # what the Ray Train callback writes after each epoch (on the run's controller)
    write_epoch(options.tables, record.manifest, {"epoch": 1, "loss": 1.25, "val_top1": 0.5, "val_crops": 4,
                                                  "crops_per_s": 80.0, "seconds": 0.1, "resumed_from": []})
    p = control.show(job["id"])["progress"]
    assert (p["epoch"], p["loss"], p["val_top1"], p["fraction"]) == (1, 1.25, 0.5, round(1 / 3, 4))
    assert _progress_text(p) == "epoch 1 of 3, loss 1.2500, val top-1 0.500"
    record.end("succeeded", published="species:4")
    manager.jobs[job["id"]].status = "SUCCEEDED"
    p = control.show(job["id"])["progress"]
    assert (p["run_status"], p["published"], p["epoch"], p["loss"]) == ("succeeded", "species:4", 1, 1.25)
    assert _progress_text(p) == "epoch 1 of 3, loss 1.2500, val top-1 0.500, published species:4"
    [m] = [m for m in read_manifests(open_location(options.tables)) if m.ray_job_id == job["id"]]
    assert m.kind == "train" and m.model["ref"] == "species:1" and m.source == str(root / "set")


def test_workers_that_the_clusters_cpus_cannot_hold_are_refused_at_the_door(place, monkeypatch):
    """At the door (a replica, connected to its Ray) the workers must fit the cluster at all: Ray Train would wait
    for them forever. Ray's answer stands in here (no Ray in unit tests): two CPUs, no GPU."""
    root, _ = place
    cluster = SimpleNamespace(is_initialized=lambda: True, cluster_resources=lambda: {"CPU": 2.0})
    monkeypatch.setitem(sys.modules, "ray", cluster)
    control, manager = control_of(place)
    for extra, says in (({"workers": 3, "cpus_per_worker": 1}, "is 3 CPUs, more than the cluster's 2: give a "
                                                               "fraction"),
                        ({"gpu": True}, "--gpu: 1 GPU(s) for --workers 1, the cluster has 0")):
        with pytest.raises(InvalidParameterError, match=re.escape(says)):
            control.submit("train", asked(root, **extra))
    assert not manager.jobs
    job = control.submit("train", asked(root, workers=4, cpus_per_worker=0.5))  # 2 CPUs: fits
    assert job["options"]["workers"] == 4
