"""The benchmark scripts run end to end in tiny configurations (no Ray here; no timing assertions).

The Ray parts (online load, batch job, sweep) run in tests/integration/test_benchmarks_tiny.py.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
import time

import pytest

from benchmarks import report
from benchmarks.common import MemorySampler, latency_summary, process_memory, process_tree, ratio
from benchmarks.images import camera_trap_frame, ensure_images, make_archive
from benchmarks.model_ceiling import main as ceiling_main
from benchmarks.model_ceiling import measure_ceiling
from benchmarks.naive import run_naive
from benchmarks.sweep import CSV_COLUMNS, grid, write_outputs
from model_store import decode_image
from model_store.core.imaging import encode_jpeg
from tests.conftest import REPO

TINY = (64, 48)


@pytest.fixture
def tiny_images(tmp_path):
    return ensure_images(3, TINY, root=tmp_path / "images")


def test_generated_images_are_deterministic_cached_and_decodable(tmp_path):
    first = ensure_images(2, TINY, root=tmp_path / "a")
    again = ensure_images(2, TINY, root=tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    stamps = [p.stat().st_mtime_ns for p in first]
    assert [p.stat().st_mtime_ns for p in ensure_images(2, TINY, root=tmp_path / "a")] == stamps
    assert decode_image(first[0].read_bytes()).shape == (48, 64, 3)
    archive = make_archive(first, tmp_path / "archive", 5, cameras=2)
    assert len(list(archive.rglob("*.jpg"))) == 5


def test_full_hd_frames_are_as_large_as_real_trap_images():
    data = encode_jpeg(camera_trap_frame(0), 90)
    assert 0.3e6 <= len(data) <= 0.7e6, len(data)


def test_bench_network_has_yolov8n_compute_and_publishes(tmp_path):
    pytest.importorskip("torch")
    from benchmarks.bench_model import build_network, check_outputs, count_params_and_flops, ensure_bench_models
    from model_store import ModelStore

    params, gflops = count_params_and_flops(build_network())
    assert 3.0e6 <= params <= 3.2e6 and 8.5 <= gflops <= 9.0
    store = ModelStore(str(tmp_path / "store"))
    assert ensure_bench_models(store, variants=[""], verbose=False) == ["bench-yolov8n:1"]
    assert store.resolve("bench-yolov8n").version == "1"  # promoted, so the service serves it
    checked = check_outputs(store, "bench-yolov8n:1")
    assert checked["output_shape"] == [1, 84, 8400]
    assert 0 < checked["detections"] < 100  # calibrated: a few boxes, not every anchor
    ensure_bench_models(store, variants=[""], verbose=False)  # cached: nothing to rebuild
    assert store.list_versions("bench-yolov8n") == ["1"]


def test_ceiling_measures_every_setting(local_store, tmp_path):
    result = measure_ceiling("fixture:1", local_store.root, [1, 2], [1], [1], seconds=0.1)
    assert {(r["threads"], r["batch_size"]) for r in result["rows"]} == {(1, 1), (1, 2)}
    assert result["ceiling_images_per_s"] == max(r["images_per_s"] for r in result["rows"]) > 0
    assert result["batch1_p50_ms_by_threads"][1] > 0
    out = tmp_path / "ceiling.json"
    # The CLI, with two side-by-side processes (the parallel path).
    assert ceiling_main(["--model", "fixture:1", "--store", local_store.root, "--batch-sizes", "1", "--threads", "1",
                         "--procs", "1,2", "--seconds", "0.1", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {r["procs"] for r in rows} <= {1, 2} and all(r["images_per_s"] > 0 for r in rows)


def test_naive_loop(local_store, tiny_images):
    result = run_naive(tiny_images, "fixture:1", local_store.root, threads=1, seconds=0.2)
    assert result["images"] >= 3 and result["images_per_s"] > 0
    assert result["latency"]["p50_ms"] > 0 and result["detections"] > 0


def test_report_without_ray_computes_ratios(local_store, tmp_path):
    out = tmp_path / "report"
    assert report.main(["--profile", "tiny", "--skip", "online,batch", "--model", "fixture:1", "--store",
                        local_store.root, "--size", "64x48", "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    assert {"machine", "ceiling", "naive", "summary", "targets", "images"} <= set(data)
    rows = {r["path"].split(" (")[0]: r for r in data["summary"]["rows"]}
    assert rows["model ceiling"]["vs_ceiling"] == 1.0
    ceiling = data["ceiling"]["ceiling_images_per_s"]
    assert rows["naive loop"]["vs_ceiling"] == ratio(data["naive"]["images_per_s"], ceiling)
    assert rows["naive loop"]["vs_naive"] == 1.0
    assert "vs_ceiling" in (out / "report.md").read_text()


def test_sweep_writes_json_csv_plots_and_picks_the_best(tmp_path):
    settings, skipped = grid([1, 8], [0.005], [1, 4], [1.0], [0.0], ray_cpus=2)
    assert len(settings) == 2 and len(skipped) == 2  # 4 replicas x 1 CPU do not fit 2 CPUs
    rows = []
    for i, s in enumerate(settings):
        rows.append({**s, "mode": "closed", "level": 8, "offered_rps": None, "throughput_rps": 10.0 + i,
                     "p50_ms": 50.0, "p95_ms": 80.0, "p99_ms": 90.0, "error_rate": 0.0, "mean_batch_size": 1.0 + i})
        for rate in (1.0, 5.0):
            rows.append({**s, "mode": "open", "level": rate, "offered_rps": rate, "throughput_rps": rate,
                         "p50_ms": 40.0 * rate, "p95_ms": 60.0 * rate, "p99_ms": 70.0 * rate, "error_rate": 0.0,
                         "mean_batch_size": 1.0})
    result = write_outputs(tmp_path, rows, {"model": "fixture"}, ceiling=12.0)
    assert result["best"]["max_batch_size"] == 8
    for png in result["plots"].values():
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "sweep.csv") as f:
        assert next(csv.reader(f)) == CSV_COLUMNS
    assert json.loads((tmp_path / "sweep.json").read_text())["best"]["throughput_rps"] == 11.0


@pytest.mark.parametrize("backend", ["ort", "torch"])
def test_gpu_pipeline_degrades_to_cpu(local_store, tmp_path, backend):
    model = "fixture:1"
    if backend == "torch":  # the torch.export path, on the shipped demo program
        pytest.importorskip("torch")
        from model_store.demo.publish import publish_demo

        publish_demo(local_store)
        model = "demo-detector-torch:2"
    # A subprocess, as users run it: the script forks its workers, which must not inherit this
    # test process's threads.
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, "-m", "benchmarks.gpu_pipeline", "--device", "cpu", "--backend", backend, "--model", model,
           "--store", local_store.root, "--size", "64x48", "--images", "3", "--workers", "1", "--batch-size", "2",
           "--slots", "2", "--seconds", "0.5", "--stage-seconds", "0.1", "--image-dir", str(tmp_path / "images"),
           "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["device"] == "cpu" and data["backend"] == backend
    assert set(data["decode_images_per_s"]) == {"full", "reduced"} and data["postprocess_ms_per_image"] > 0
    assert {p["variant"] for p in data["pipelines"]} == {"full-f32", "reduced-u8"}
    assert all(p["images_per_s"] > 0 and p["limiting_stage"] for p in data["pipelines"])


def test_memory_sampler_counts_child_processes():
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(b'1') * (96 << 20); time.sleep(60)"])
    try:
        deadline = time.monotonic() + 30
        while process_memory(child.pid) < 90 << 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        own = process_memory(os.getpid())
        with MemorySampler(interval_s=0.05) as mem:
            time.sleep(0.2)
        assert child.pid in process_tree(os.getpid())
        assert mem.peak_bytes >= own + (80 << 20)
    finally:
        child.kill()
        child.wait()


def test_reduced_decode_keeps_at_least_the_letterboxed_size():
    from benchmarks.gpu_workers import decode_reduced, reduction_for

    assert reduction_for(1920, 1080, 640) == 2 and reduction_for(640, 480, 640) == 1
    assert reduction_for(4000, 3000, 640) == 4
    data = encode_jpeg(camera_trap_frame(3), 90)
    assert decode_reduced(data, 640).shape == (540, 960, 3)


def test_latency_summary_and_ratio():
    s = latency_summary([0.010, 0.020, 0.030])
    assert s["p50_ms"] == 20.0 and s["max_ms"] == 30.0
    assert latency_summary([])["p99_ms"] is None
    assert ratio(9, 10) == 0.9 and ratio(None, 10) is None and ratio(1, 0) is None


def test_doors_summary_puts_each_door_against_its_own_saturation():
    """Overload through Serve's proxy and through direct ingress are each divided by their own door's best rate."""
    from benchmarks.doors_summary import summarise

    def overload(rps, saturation, polite):
        return {"concurrency": 16, "honour_retry_after": polite, "rps": rps, "saturation_rps": saturation,
                "refused_share": 0.25, "refused_p50_ms": 12.0}

    res = {"http": {"overload": overload(40.0, 80.0, False), "overload_retry_after": overload(60.0, 80.0, True)},
           "direct": {"overload": overload(90.0, 100.0, False), "overload_retry_after": overload(110.0, 100.0, True)}}
    rows = {r["claim"]: r for r in summarise(res)}
    assert rows["HTTP null overload, 16 clients that retry after 50 ms (req/s)"]["ratio"] == 0.5
    assert rows["HTTP null overload, 16 clients that honour Retry-After (req/s)"]["ratio"] == 0.75
    assert rows["HTTP null overload, direct ingress, 16 clients that retry after 50 ms (req/s)"]["ratio"] == 0.9
    direct_polite = rows["HTTP null overload, direct ingress, 16 clients that honour Retry-After (req/s)"]
    assert direct_polite["ratio"] == 1.1 and direct_polite["target"].startswith(">= ~1 (503s: 25%, p50 12.0 ms)")


def test_doors_light_section_is_read_against_the_batch1_passes_paired_with_its_requests():
    from benchmarks.doors_summary import summarise

    one = {"total": 80.0, "decode": 9.0, "preprocess": 1.0, "queue": 0.1, "inference": 60.0, "postprocess": 0.8,
           "hop": 9.1, "between": 64.0, "over_between": 15.0}
    res = {"light": {"batch1_p50_ms_before": 50.0, "batch1_p50_ms_after": 90.0, "one_at_a_time_real": one}}
    rows = {r["claim"]: r for r in summarise(res)}
    assert rows["HTTP real (light section), one request at a time p50 (ms)"]["reference"] == 64.0  # not the bracket
    assert rows["  one request at a time minus its paired batch-1 pass, p50 (ms)"]["measured"] == 15.0


def test_whole_job_with_a_service_gives_it_and_the_jobs_a_state_directory_of_their_own(tmp_path):
    """The service's record and the jobs that look for it meet in one private directory, never ~/.trapline."""
    from benchmarks import whole_job

    assert whole_job.service_env(tmp_path)["TRAPLINE_STATE_DIR"] == str(tmp_path / "state")
    assert 0 < whole_job.free_port() < 65536
    assert whole_job.SERVE_LINE in ("trained-demo:1 through the running trapline serve at http://127.0.0.1:1: "
                                    "already loaded there")


def test_whole_job_times_both_processes_on_one_folder_and_passes_reprocess_args_through(tmp_path, tiny_images):
    """benchmarks.whole_job without Ray or Ultralytics: a stand-in for each process, the real folder and argv."""
    from benchmarks import whole_job

    folder = whole_job.folder_of(5, tiny_images, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:05d}.jpg" for i in range(5)]
    assert (folder / "00003.jpg").read_bytes() == tiny_images[0].read_bytes()  # frames in rotation
    assert whole_job.folder_of(5, tiny_images, tmp_path) == folder  # reused as it is
    argv = whole_job.trapline_argv(folder, tmp_path / "out", "m:1", "store", ["--via", "serve", "--batch-size", "4"])
    assert argv[1:4] == ["-m", "trapline.cli", "reprocess"] and argv[-4:] == ["--via", "serve", "--batch-size", "4"]
    assert whole_job.export_imgsz(REPO / "tests" / "fixtures" / "reference" / "yolov8n_static.onnx") == 640
    peer = whole_job.peer_argv("/venv/bin/python", tmp_path / "m.onnx", folder, 320)
    assert peer[0] == "/venv/bin/python" and peer[-3:] == ["--imgsz", "320", "--whole"]
    done = whole_job.timed([sys.executable, "-c", "import time; time.sleep(0.3); print('{\"boxes\": 2}')"], 30)
    assert done["wall_s"] >= 0.3 and json.loads(done["stdout"]) == {"boxes": 2}
    assert whole_job.processed_images("found 5\nprocessed 5: ok 4, empty 1, failed 0; 3.1 images/s") == 5
    assert whole_job.processed_images("processed 5: ok 3, empty 0, failed 2; ...") == 3
    assert whole_job.processed_images("nothing to do") is None
    with pytest.raises(RuntimeError, match="exited 3"):
        whole_job.timed([sys.executable, "-c", "raise SystemExit(3)"], 30)


def test_load_window_tells_the_benchmarks_cpu_from_other_programs():
    """A busy loop outside this process's tree counts as other programs' CPU; one inside it, as the benchmark's."""
    from benchmarks.machine_load import LoadWindow

    burn = [sys.executable, "-c", "import time\nt = time.time() + 30\nwhile time.time() < t: pass"]

    def cpu_s(pid: int) -> float:
        with open(f"/proc/{pid}/stat") as f:
            return sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13]) / os.sysconf("SC_CLK_TCK")

    def measured(pid: int) -> tuple[dict, float]:
        time.sleep(0.2)  # the interpreter has started
        window, before, t0 = LoadWindow().start(), cpu_s(pid), time.perf_counter()
        time.sleep(1.5)
        return window.stop(), (cpu_s(pid) - before) / (time.perf_counter() - t0)

    # `sh` starts the loop in the background and exits: the loop is re-parented away from this process's tree
    outside = int(subprocess.run(["sh", "-c", f"{shlex.join(burn)} >/dev/null 2>&1 & echo $!"],
                                 capture_output=True, text=True, check=True).stdout)
    try:
        load, burner = measured(outside)
    finally:
        os.kill(outside, 9)
    assert burner > 0, "the loop got no CPU"  # however little a busy machine gives it: the split is judged by it
    assert load["others_cpus"] >= 0.8 * burner and load["load1"] is not None and isinstance(load["busy"], bool)
    inside = subprocess.Popen(burn)
    try:
        load, burner = measured(inside.pid)
    finally:
        inside.kill()
        inside.wait()
    assert burner > 0 and load["benchmark_cpus"] >= 0.8 * burner, (load, burner)
