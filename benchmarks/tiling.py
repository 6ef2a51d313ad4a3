"""What tiling costs (issue 70): tiles/s of the tiled path against images/s of the plain path at the same batch, and a
whole tiled job against SAHI's own `predict` over the same folder.

    flock /tmp/trapline-bench.lock python -m benchmarks.tiling --seconds 20 \
        [--onnx bench-results/yolov8s/yolov8s.onnx] [--job-batch-sizes 128,16] \
        [--sahi-python /work/peer-venv-sahi/bin/python] [--null]

1. Throughput, library path (bytes -> record: decode, letterbox or cut, forward passes, decode, NMS, merge), one
   ONNX Runtime session of the model (default `yolov8n_dynamic`, the reference export, 640): plain = `--batch`
   copies of a 1000x1000 photo (one 640x640 input each) per `run_prepared`; tiled = the 1920x1080 photo cut into 8
   tiles of 640 at 0.2 overlap plus its whole-image pass, `batch_tiles` = `--batch`, so each forward pass holds as
   many 640x640 inputs as the plain one. The ratio is (inputs/s tiled) / (images/s plain): 1.0 means a tile costs
   what an image does.
2. A folder of `--folder-images` copies of the 1920x1080 photo through `trapline reprocess --tiling on` (the job's
   own actors on this machine, start-up included), once per `--job-batch-sizes`, against `sahi.predict.predict`
   (its CLI's function, the same ONNX file through build_sahi.py's ONNX Runtime model with the published config's
   score threshold and NMS IoU, slices of the model's input at 0.2, GREEDYNMM/IOS, novisual) in the peer venv,
   wall time each, both writing their results.
3. With `--null` both sides run bench_model's null detector (constant output, no inference cost): the forward passes
   leave the comparison and what remains is each side's plumbing (decode, slicing, letterbox, merge, writing), what
   a fast accelerator would leave of a run. Without it, a model's forward passes bound both sides alike on a CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_model import ensure_null_model
from benchmarks.common import machine_info, print_table, ratio, write_json
from model_store import ModelStore
from model_store.core.imaging import DEFAULT_MAX_PIXELS
from tests.fixtures.parity import REFERENCE, publish_reference

WIDE, SQUARE = REFERENCE / "images" / "wide_1920x1080.jpg", REFERENCE / "images" / "square_1000x1000.jpg"
SAHI_SCRIPT = """
import sys, time
sys.path.insert(0, {ref!r})
from pathlib import Path
from build_sahi import OnnxYoloV8
from sahi.predict import predict
t0 = time.perf_counter()
model = OnnxYoloV8(Path({onnx!r}), {predict!r}, {labels!r})
predict(detection_model=model, source={folder!r}, slice_height={tile}, slice_width={tile}, overlap_height_ratio=0.2,
        overlap_width_ratio=0.2, novisual=True, project={project!r}, verbose=0)
print(time.perf_counter() - t0)
"""


def throughput(det, batch: int, seconds: float) -> dict[str, float]:
    """Plain images/s and tiled inputs/s, alternating rounds until `seconds` have passed on each."""
    square, wide = SQUARE.read_bytes(), WIDE.read_bytes()
    tiling = det.tiling({"batch_tiles": batch})
    plain_t = tiled_t = 0.0
    plain_n = tiled_n = 0
    while plain_t < seconds or tiled_t < seconds:
        t0 = time.perf_counter()
        pairs = [det.prepare_bytes(square, DEFAULT_MAX_PIXELS) for _ in range(batch)]
        det.run_prepared([p for p, _ in pairs], [m for _, m in pairs])
        t1 = time.perf_counter()
        det.use_tiling(tiling)
        prepared, meta = det.prepare_bytes(wide, DEFAULT_MAX_PIXELS)
        det.run_prepared([prepared], [meta])
        det.use_tiling(None)
        t2 = time.perf_counter()
        plain_t, plain_n = plain_t + t1 - t0, plain_n + batch
        tiled_t, tiled_n = tiled_t + t2 - t1, tiled_n + len(meta.metas)
    plain, tiled = plain_n / plain_t, tiled_n / tiled_t
    return {"batch": batch, "plain_images_s": round(plain, 2), "tiled_inputs_s": round(tiled, 2),
            "inputs_per_image": len(meta.metas), "ratio": ratio(tiled, plain)}


def pass_times(det_path: str, runs: int = 5) -> dict[str, float]:
    """Seconds a forward pass of one 640x640 input on one ONNX Runtime thread and on two: what the job's one-thread
    actors (one per CPU) and SAHI's one session on every core each get from the same file."""
    import numpy as np
    import onnxruntime as ort

    x = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    out = {}
    for threads in (1, 2):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(det_path, opts, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x}
        session.run(None, feed)
        t0 = time.perf_counter()
        for _ in range(runs):
            session.run(None, feed)
        out[f"pass_s_{threads}_thread"] = round((time.perf_counter() - t0) / runs, 3)
    return out


def whole_jobs(store: ModelStore, ref: str, n: int, sahi_python: str | None, work: Path,
               batch_sizes: list[int]) -> list[dict[str, float | None]]:
    """The folder through `trapline reprocess --tiling on` once per `--batch-size` in `batch_sizes` (the job's own
    actors, Ray's start included; 128 is 16 tiled images a call, what every tiled run took before issue 70's second
    round), then through SAHI's `predict` (the model's own session start included: both write their results)."""
    from batch.reprocess.job import run_reprocess
    from batch.reprocess.options import ReprocessOptions

    folder = work / "folder"
    folder.mkdir(exist_ok=True)
    for i in range(n):
        shutil.copy(WIDE, folder / f"wide_{i:03d}.jpg")
    rows = []
    for k, batch_size in enumerate(batch_sizes):
        t0 = time.perf_counter()
        report = run_reprocess(ReprocessOptions(archive=str(folder), model=ref, store=store.root,
                                                out=str(work / f"tables-{k}"), tiling="on", via="actors",
                                                batch_size=batch_size))
        ours = time.perf_counter() - t0
        assert report.status == "succeeded" and report.processed == n, report.error
        rows.append({"images": n, "batch_size": batch_size, "trapline_job_s": round(ours, 2),
                     "load_after": round(os.getloadavg()[0], 1)})
    theirs = sahi_load = None
    if sahi_python:
        cfg = store.get(ref).config
        script = SAHI_SCRIPT.format(ref=str(REFERENCE), folder=str(folder), project=str(work / "sahi"),
                                    onnx=str(store.fetch(ref)[1]), tile=cfg.input_size[0], labels=cfg.labels,
                                    predict={"conf": cfg.score_threshold, "iou": cfg.nms_iou,
                                             "imgsz": cfg.input_size[0]})
        out = subprocess.run([sahi_python, "-c", script], check=True, capture_output=True, text=True)
        theirs = float(out.stdout.strip().splitlines()[-1])
        sahi_load = round(os.getloadavg()[0], 1)
    for row in rows:
        row.update(sahi_predict_s=theirs and round(theirs, 2), sahi_load_after=sahi_load,
                   speedup=ratio(theirs, row["trapline_job_s"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batches", default="1,8", help="throughput batches; empty: skip the throughput part")
    parser.add_argument("--folder-images", type=int, default=24)
    parser.add_argument("--job-batch-sizes", default="16", help="the job's --batch-size, one run each (128: 16 "
                                                                "tiled images a call, as before the change)")
    parser.add_argument("--onnx", default=None, help="a detector to time instead of the reference yolov8n_dynamic "
                                                     "(e.g. benchmarks/peers/build_yolov8s.py's export)")
    parser.add_argument("--null", action="store_true", help="both sides run bench_model's null detector (no inference "
                                                            "cost): the plumbing a fast accelerator would leave")
    parser.add_argument("--sahi-python", default=None, help="the peer venv's python (build_sahi.py's)")
    parser.add_argument("--out", default="benchmarks/results/tiling.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = ModelStore(str(work / "store"), cache_dir=str(work / "cache"))
        if args.null:
            ref = ensure_null_model(store)
        elif args.onnx:
            store.publish(args.onnx, "bench", "1")
            ref = "bench:1"
        else:
            ref = publish_reference(store, "yolov8n_dynamic")
        rows = []
        if args.batches:
            det = store.load_detector(ref, threads=2)
            det.warmup()
            rows = [throughput(det, int(b), args.seconds) for b in args.batches.split(",")]
            print_table(rows, ["batch", "plain_images_s", "tiled_inputs_s", "inputs_per_image", "ratio"])
        passes = pass_times(str(store.fetch(ref)[1]))
        print(passes)
        jobs = whole_jobs(store, ref, args.folder_images, args.sahi_python, work,
                          [int(b) for b in args.job_batch_sizes.split(",")]) if args.job_batch_sizes else []
        if jobs:
            print_table(jobs, ["images", "batch_size", "trapline_job_s", "load_after", "sahi_predict_s",
                               "sahi_load_after", "speedup"])
    model = "null" if args.null else args.onnx or "yolov8n_dynamic"
    write_json(args.out, {"machine": machine_info(), "model": model, "throughput": rows,
                          "passes": passes, "jobs": jobs, "argv": sys.argv[1:]})


if __name__ == "__main__":
    main()
