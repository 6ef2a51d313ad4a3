"""`make demo`'s program, as a user runs it: a subprocess on the embedded default (local Ray)."""

from __future__ import annotations

import re
import subprocess
import sys

import pyarrow.dataset as pads

from model_store.demo.scenes import KINDS
from tests.e2e.test_quiet_output import named_logs_dir, ray_lines


def test_demo_end_to_end(tmp_path):
    store, samples, out = tmp_path / "models", tmp_path / "samples", tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "trapline.demo", "--store", str(store), "--samples", str(samples), "--out", str(out)],
        capture_output=True, text=True, timeout=420,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    served = [line for line in lines if line.strip().startswith("scene_") and "demo-detector:1" in line]
    assert len(served) == 8
    assert any("switched to version 2" in line for line in lines)
    assert any("HTTP 422 invalid_image" in line for line in lines)
    assert any("processed 8: ok" in line for line in lines)
    assert "done: service stopped" in proc.stdout
    # The species classifier ran on the animal detections: "scene_003.jpg  animal 0.87 -> species roe_deer 0.80 ..."
    species = [line for line in lines if re.search(r"scene_\d+\.jpg  animal [01]\.\d\d -> species \S+ [01]\.\d\d",
                                                  line)]
    assert species, proc.stdout[-3000:]
    assert any(kind in line for line in species for kind in KINDS)
    assert ray_lines(proc.stdout + proc.stderr) == [], "\n".join(ray_lines(proc.stdout + proc.stderr))
    named_logs_dir(proc.stderr)  # Ray's own lines went to the log file the output names
    images = pads.dataset(out / "images", partitioning="hive").to_table().to_pylist()
    assert len(images) == 8 and {r["status"] for r in images} <= {"ok", "empty"}
    detections = pads.dataset(out / "detections", partitioning="hive").to_table()
    assert detections.num_rows > 0
    classifications = pads.dataset(out / "classifications", partitioning="hive").to_table()
    assert classifications.num_rows > 0 and set(classifications["classifier_name"].to_pylist()) == {"demo-species"}
