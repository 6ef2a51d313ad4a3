"""The README's batch commands, run as a user would: `trapline reprocess` on the embedded local Ray, then
`python -m batch.reprocess` (the `ray job submit` entry point), `trapline export` and `trapline postprocess`."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_store import ModelStore
from tests.fixtures.archive import PATH_PATTERN, brightness_config, brightness_model, build_archive, write_local
from tests.fixtures.camtrap_dp import DEPLOYMENTS, META, validate_package

REPO = Path(__file__).resolve().parents[2]
TRAPLINE = str(Path(sys.executable).parent / "trapline")


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # the embedded default, not a test cluster
    return subprocess.run(list(args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(brightness_model(d / "m.onnx"), "trapcam", "1", brightness_config())
    store.promote("trapcam:1")
    spec = build_archive()
    return {"dir": d, "store": store.root, "spec": spec, "archive": str(write_local(spec, d / "archive"))}


def test_reprocess_export_postprocess_from_the_command_line(setup):
    d, spec = setup["dir"], setup["spec"]
    out = d / "tables"
    job = ["--archive", setup["archive"], "--out", str(out), "--model", "trapcam@production", "--store",
           setup["store"], "--path-pattern", PATH_PATTERN, "--rows-per-file", "10"]

    dry = run(TRAPLINE, "reprocess", *job, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was written" in dry.stdout and f"{len(spec.images)} to process" in dry.stdout
    assert not out.exists()

    first = run(TRAPLINE, "reprocess", *job, "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout)
    assert summary["status"] == "succeeded" and summary["processed"] == len(spec.images)
    assert summary["failed"] == len(spec.failed) and summary["empty"] == len(spec.blank)
    assert "processed 27/27 (100%)" in first.stderr  # the progress line

    again = run(sys.executable, "-m", "batch.reprocess", *job)  # what `ray job submit` runs: trapline reprocess
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{len(spec.images)} already done (skipped), 0 to process" in again.stdout

    md = run(TRAPLINE, "export", "--tables", str(out), "--format", "megadetector", "--out", str(d / "md.json"))
    assert md.returncode == 0, md.stderr
    assert len(json.loads((d / "md.json").read_text())["images"]) == len(spec.images)
    coco = run(TRAPLINE, "export", "--tables", str(out), "--format", "coco", "--out", str(d / "coco.json"))
    assert coco.returncode == 0 and isinstance(json.loads((d / "coco.json").read_text()), list)
    refused = run(TRAPLINE, "export", "--tables", str(out), "--format", "camtrap-dp", "--out", str(d / "dp"))
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "error: no deployment for camera(s) cam01, cam02, cam03: add them to --deployments "
        "(or pass --allow-missing-deployments to write them without coordinates)"]
    (d / "deployments.csv").write_text(DEPLOYMENTS)
    (d / "meta.yaml").write_text(META)
    dp = run(TRAPLINE, "export", "--tables", str(out), "--format", "camtrap-dp", "--out", str(d / "dp"),
             "--deployments", str(d / "deployments.csv"), "--package-meta", str(d / "meta.yaml"),
             "--timezone", "+02:00")
    assert dp.returncode == 0, dp.stderr
    assert "note:" not in dp.stdout and "datapackage.json" in dp.stdout
    with open(d / "dp" / "observations.csv", newline="") as f:
        assert {r["classificationMethod"] for r in csv.DictReader(f)} == {"machine"}
    assert validate_package(d / "dp")[0] == []  # the README's one command makes a package frictionless accepts

    post = run(TRAPLINE, "postprocess", "--tables", str(out), "--filter", "min_size", "--config",
               '{"min_area_fraction": 0.01}', "--camera", "cam01", "--json")
    assert post.returncode == 0, post.stderr
    report = json.loads(post.stdout)
    assert report["images"] == sum(r.startswith("cam01/") for r in spec.images) and report["flagged"] > 0

    bad = run(TRAPLINE, "postprocess", "--tables", str(out), "--filter", "min_size", "--config",
              '{"min_area_fraction": -1}')
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "min_area_fraction" in bad.stderr
    bad = run(TRAPLINE, "reprocess", *job, "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr and "Traceback" not in bad.stderr
