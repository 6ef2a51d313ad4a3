"""The Ray parts of the benchmarks end to end, tiny: HTTP load (open and closed loop), the batch job
both ways, the side-by-side report and a one-setting sweep. Outputs are checked, never timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import report
from benchmarks.images import ensure_images
from benchmarks.sweep import grid, run_sweep
from tests.conftest import REPO
from tests.e2e.test_quiet_output import ray_lines

pytestmark = pytest.mark.ray

BATCH_IMAGES = 4


def test_report_runs_every_path_and_computes_the_ratios(ray_cluster, local_store, tmp_path):
    local_store.promote("fixture:1")  # the service serves the production alias
    out = tmp_path / "report"
    argv = ["--profile", "tiny", "--model", "fixture:1", "--store", local_store.root, "--size", "64x48",
            "--max-batch-size", "4", "--batch-images", str(BATCH_IMAGES), "--work", str(tmp_path / "work"),
            "--out", str(out)]
    assert report.main(argv) == 0
    data = json.loads((out / "report.json").read_text())
    assert not {k: v["error"] for k, v in data.items() if isinstance(v, dict) and "error" in v}

    online = data["online"]
    assert online["images_per_s"] > 0 and online["saturation"]["error_rate"] == 0
    assert online["light_p50_ms"] > 0 and online["light"]["mode"] == "open"
    assert online["saturation"]["server_batches"]["batches"] > 0  # batch sizes read back from GET /v1/models
    # the light-load figure is the request's p50 minus the model's own batch-1 p50, from this run's measurements
    assert online["light_p50_over_batch1_ms"] == pytest.approx(online["light_p50_ms"] - online["batch1_p50_ms"],
                                                               abs=0.01)

    # the short soak: 80% of saturation in windows, each with its p99 and the machine's load, checked in summary
    soak = online["soak"]
    assert len(soak["windows"]) >= 1 and soak["requests"] > 0
    assert all(w["p99_ms"] is not None and w["load1"] is not None for w in soak["windows"])
    checks = {c["check"]: c for c in data["summary"]["checks"]}
    assert checks["online soak at 0.8 x saturation: worst window's p99 (ms)"]["value"] == soak["p99_ms_worst_window"]
    assert "others_cpus" in (out / "report.md").read_text()

    runs = {r["via"]: r for r in data["batch"]["runs"]}
    assert set(runs) == {"actors", "serve"}
    for run in runs.values():
        assert run["first"]["processed"] == BATCH_IMAGES
        assert run["rerun"]["processed"] == 0 and run["rerun"]["already_done"] == BATCH_IMAGES
        assert run["ten_x"]["processed"] == 10 * BATCH_IMAGES
        # the ratios are this run's own measurements, not placeholders
        assert run["rerun_ratio"] == pytest.approx(run["rerun"]["wall_s"] / run["first"]["wall_s"], rel=0.02)
        assert run["memory_growth_10x"] == pytest.approx(run["ten_x"]["peak_mib"] / run["first"]["peak_mib"] - 1,
                                                         abs=1e-3)
        assert run["first"]["peak_mib"] > 100  # the driver plus Ray's processes, not the driver alone

    rows = data["summary"]["rows"]
    trapline = [r for r in rows if r["path"].startswith("trapline")]
    assert len(trapline) == 3  # the constant fixture model makes the ratios tiny, but they are computed
    assert all(r["vs_ceiling"] > 0 and r["vs_naive"] > 0 for r in trapline)
    assert data["summary"]["checks"] and all(c["ok"] in (True, False) for c in data["summary"]["checks"])
    assert "trapline batch --via serve" in (out / "report.md").read_text()


def test_sweep_writes_results_and_plots(ray_cluster, local_store, tmp_path):
    local_store.promote("fixture:1")
    settings, _ = grid([2], [0.002], [1], [0.5], [0.0], ray_cpus=2)
    payloads = [p.read_bytes() for p in ensure_images(2, (64, 48), root=tmp_path / "images")]
    result = run_sweep("fixture", local_store.root, settings, payloads, tmp_path / "sweep", [0.5], duration_s=1.0,
                       warmup_s=0.3)
    modes = [r["mode"] for r in result["rows"]]
    assert modes == ["closed", "open"]
    assert result["best"]["max_batch_size"] == 2 and result["best"]["throughput_rps"] > 0
    for name in ("sweep.json", "sweep.csv", "throughput_vs_batch_size.png", "latency_vs_load.png"):
        assert (tmp_path / "sweep" / name).stat().st_size > 0


def test_burst_classifies_every_answer_of_a_burst(ray_cluster, local_store, tmp_path):
    from benchmarks import burst

    local_store.promote("fixture:1")
    out = tmp_path / "burst.json"
    argv = ["--model", "fixture", "--store", local_store.root, "--factors", "2", "--spike-s", "0.5",
            "--sizings", "headroom", "--out", str(out)]
    assert burst.main(argv) == 0
    data = json.loads(out.read_text())
    sizing = data["sizings"]["headroom"]
    assert sizing["extra"] == {} and sizing["capacity_rps"] > 0
    [b] = sizing["bursts"]
    assert b["factor"] == 2 and b["requests"] == b["ok"] + b["rejected_503_retry_after"] + b["other_errors"] > 0
    assert 0 <= b["typed_503"] <= b["rejected_503_retry_after"]
    assert b["ok"] > 0 and b["latency_ok"]["p50_ms"] > 0
    # the sizing it is compared with: a one-hop replica of max_batch_size 8 admits 16 + 32 queued + 16 archive
    assert burst.plus4("fixture") == 16 + 32 + 16 + 4


QUIET_SCRIPT = """
import ray, ray.data
from benchmarks.common import local_ray

@ray.remote
def work():
    print("a worker's print")
    return 1

with local_ray(num_cpus=1):
    assert ray.get(work.remote()) == 1
    print("rows", ray.data.range(8).map_batches(lambda b: b).count(), flush=True)
print("done", flush=True)
"""


def test_a_benchmarks_local_ray_prints_only_the_benchmarks_lines(tmp_path):
    """`benchmarks.common.local_ray` keeps Ray as quiet as `trapline`'s commands do: no INFO line of Ray, its
    workers or Ray Data on the console, one line naming the log directory; the benchmark's own lines all there."""
    done = subprocess.run([sys.executable, "-c", QUIET_SCRIPT], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "RAY_ADDRESS": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["rows 8", "done"]
    assert ray_lines(done.stdout + done.stderr) == [], done.stderr
    [logs] = done.stderr.strip().splitlines()
    assert logs.startswith("Ray logs: ")
