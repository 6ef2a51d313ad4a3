"""End to end on a GPU box: 1080p JPEG bytes -> CPU decode workers -> batched GPU inference -> detections.

`python -m benchmarks.gpu_pipeline [--store DIR] [--backend auto|ort|torch] [--workers N] [--batch-size 64]
 [--seconds 30] [--variants full-f32,reduced-u8-fp16,...] [--device auto|cuda|cpu] [--out FILE]`

Self-contained: it needs this checkout, OpenCV, onnxruntime and, for the torch backend or to
build the benchmark models, torch (else carry a store built elsewhere: `--store DIR`).
Inference runs through the product's backend: ONNX Runtime's CUDA provider (onnxruntime-gpu),
or the torch.export models on CUDA where only torch has a GPU (`--backend auto` probes both).
Stages, each measured on its own, then the whole pipeline per variant:

- decode: a pool of CPU processes decoding the JPEGs, full size (the product's `decode_image`)
  or reduced inside libjpeg (`cv2.IMREAD_REDUCED_COLOR_2`: 960x540, still above the 640 input);
- inference: batches read in place from shared memory (ONNX Runtime IO binding; page-locked
  buffers for torch) for the float32 model, the uint8-input model (normalised in the graph: 4x
  fewer bytes to the GPU) and the uint8 + float16 model; raw output left on the GPU or copied back;
- postprocess: the product's `Detector.postprocess` (decode boxes, NMS, filters) per image;
- pipeline: decode + letterbox in the workers -> batches in shared memory -> inference ->
  postprocess in the workers, with each stage's utilisation, so the limiting stage is named.

Without a GPU the same code runs on the CPU (use tiny settings), so it can be tested anywhere.
Target on one H200: >= 2,500 images/s end to end.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from benchmarks.common import DEFAULT_IMAGES, DEFAULT_STORE, machine_info, parse_list, print_table, write_json
from benchmarks.gpu_runners import Runner, make_runner, stage_inference, stage_postprocess
from benchmarks.gpu_workers import Layout, shared_buffers, start_workers, stop_workers
from model_store import ModelStore

TARGET_IMAGES_PER_S = 2500
MODELS = {  # per backend: model kind -> benchmark model (benchmarks.bench_model)
    "ort": {"f32": "bench-yolov8n:1", "u8": "bench-yolov8n-uint8:1", "u8-fp16": "bench-yolov8n-uint8-fp16:1"},
    "torch": {"f32": "bench-yolov8n-pt2:1", "u8": "bench-yolov8n-uint8-pt2:1",
              "u8-fp16": "bench-yolov8n-uint8-fp16-pt2:1"},
}
VARIANTS = {f"{mode}-{m}": (mode, m) for mode in ("full", "reduced") for m in MODELS["ort"]}
GPU_DEFAULT = "full-f32,full-u8-fp16,reduced-u8,reduced-u8-fp16"
CPU_DEFAULT = "full-f32,reduced-u8"
CHUNK = 8  # images per worker task


def _prepare(store: str, backend: str, model: str | None, count: int | None, size: tuple[int, int],
             image_root: str, workers: int, want_gpu: bool, answer) -> None:
    """Choose the backend, build models and images, probe CUDA, in a separate process: torch,
    OpenCV and ONNX Runtime start threads that must not be running in the parent when it forks."""
    from benchmarks.bench_model import ensure_bench_models
    from benchmarks.images import ensure_images

    state = "CPU asked for (--device cpu)" if not want_gpu else ""
    if want_gpu and backend in ("auto", "ort"):
        state = _probe_ort_cuda()
        if state != "cuda" and backend == "auto" and _torch_cuda():
            backend, state = "torch", f"cuda (torch; onnxruntime: {state})"
    elif want_gpu and backend == "torch":
        state = "cuda" if _torch_cuda() else "torch sees no CUDA device"
    backend = "ort" if backend == "auto" else backend
    models = dict.fromkeys(MODELS[backend], model) if model else MODELS[backend]
    if not model:
        try:
            ensure_bench_models(ModelStore(store), [r.split(":")[0].removeprefix("bench-yolov8n")
                                                    for r in models.values()])
        except ImportError as exc:
            raise SystemExit(f"building the benchmark models needs torch ({exc}); build them where torch is "
                             "installed (python -m benchmarks.bench_model --store DIR) and pass --store DIR") from None
    count = count or (256 if state.startswith("cuda") else 8)
    ensure_images(count, size, root=image_root, workers=workers)
    detector = ModelStore(store).load_detector(models["f32"], threads=1)
    w, h = detector.config.input_size
    out_shape = detector.infer([np.zeros((h, w, 3), np.uint8)])[0].shape  # (4 + classes, anchors)
    answer.put((backend, models, state, out_shape, count))


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _probe_ort_cuda() -> str:
    """"cuda" when an ONNX Runtime session really runs on CUDA (it falls back to CPU silently)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "this onnxruntime build has no CUDA provider"
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA/cuDNN from the nvidia-* wheels (or torch), when not on the library path
    try:
        session = ort.InferenceSession(_identity_model(), providers=["CUDAExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - reported; the run continues without ORT CUDA
        return f"CUDA session failed: {exc}"
    if session.get_providers()[0] != "CUDAExecutionProvider":
        return "the CUDA provider failed to load (missing CUDA/cuDNN libraries?)"
    return "cuda"


def _identity_model() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what every onnxruntime >= 1.14 reads
    return model.SerializeToString()


def stage_decode(task_q, result_q, mode: str, n_paths: int, workers: int, seconds: float) -> float:
    """Images/s of the worker pool decoding only."""
    counter = itertools.count()
    outstanding, done = 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds or outstanding:
        while outstanding < 2 * workers and time.perf_counter() - t0 < seconds:
            task_q.put(("decode", mode, [next(counter) % n_paths for _ in range(CHUNK)]))
            outstanding += 1
        msg = result_q.get(timeout=120)
        if msg[0] == "error":
            raise RuntimeError(msg[1])
        outstanding -= 1
        done += msg[1]
    return round(done / (time.perf_counter() - t0), 1)


class _Pipeline:
    """One end-to-end run: slots cycle through prep (workers) -> inference (a thread) -> post (workers)."""

    def __init__(self, runner: Runner, model: str, mode: str, task_q, result_q, n_paths: int, postprocess: bool):
        self.runner, self.model, self.mode = runner, model, mode
        self.task_q, self.result_q, self.n_paths, self.postprocess = task_q, result_q, n_paths, postprocess
        lay = runner.layout
        self.prepped = [0] * lay.slots
        self.metas: list[list[Any]] = [[None] * lay.batch for _ in range(lay.slots)]
        self.post_left = [0] * lay.slots
        self.ready: deque[int] = deque()
        self.counter = itertools.count()
        self.outstanding = 0  # worker tasks in flight
        self.inferring = False
        self.stopping = False
        self.done = 0
        self.busy = {"prep": 0.0, "infer": 0.0, "post": 0.0}
        self.infer_q: queue.Queue[int | None] = queue.Queue()
        self.thread = threading.Thread(target=self._infer_loop, daemon=True)

    def _infer_loop(self) -> None:
        while (slot := self.infer_q.get()) is not None:
            try:
                self.result_q.put(("inferred", slot, self.runner.run(slot, self.postprocess)))
            except Exception as exc:  # noqa: BLE001 - surfaced by the main loop
                self.result_q.put(("error", f"inference failed: {exc!r}"))

    def _submit_prep(self, slot: int) -> None:
        if self.stopping:
            return
        for start in range(0, self.runner.layout.batch, CHUNK):
            n = min(CHUNK, self.runner.layout.batch - start)
            idx = [next(self.counter) % self.n_paths for _ in range(n)]
            self.task_q.put(("prep", self.model, self.mode, slot, start, idx))
            self.outstanding += 1

    def _maybe_infer(self) -> None:
        if not self.inferring and self.ready and not self.stopping:
            slot = self.ready.popleft()
            self.inferring = True
            self.infer_q.put(slot)

    def _slot_ready(self, slot: int) -> bool:
        return self.prepped[slot] == self.runner.layout.batch and self.post_left[slot] == 0

    def handle(self, msg: tuple) -> None:
        kind, batch = msg[0], self.runner.layout.batch
        if kind == "error":
            raise RuntimeError(msg[1])
        if kind == "prep":
            _, slot, start, n, busy, metas = msg
            self.outstanding -= 1
            self.busy["prep"] += busy
            self.metas[slot][start:start + n] = metas
            self.prepped[slot] += n
            if self._slot_ready(slot):
                self.ready.append(slot)
        elif kind == "inferred":
            _, slot, busy = msg
            self.inferring = False
            self.busy["infer"] += busy
            self.prepped[slot] = 0
            if self.postprocess:
                self.post_left[slot] = batch
                metas = list(self.metas[slot])
                for start in range(0, batch, CHUNK):
                    self.task_q.put(("post", self.model, slot, start, metas[start:start + CHUNK]))
                    self.outstanding += 1
            else:
                self.done += batch
            self._submit_prep(slot)  # the input buffer is free once inference has read it
        elif kind == "post":
            _, slot, n, busy, _found = msg
            self.outstanding -= 1
            self.busy["post"] += busy
            self.post_left[slot] -= n
            if self.post_left[slot] == 0:
                self.done += batch
                if self._slot_ready(slot):
                    self.ready.append(slot)
        self._maybe_infer()

    def run(self, seconds: float, warmup_s: float, workers: int) -> dict[str, Any]:
        self.thread.start()
        for slot in range(self.runner.layout.slots):
            self._submit_prep(slot)
        t_start = time.perf_counter()
        mark = None
        while True:
            self.handle(self.result_q.get(timeout=300))
            now = time.perf_counter()
            if mark is None and now - t_start >= warmup_s:
                mark = (now, self.done, dict(self.busy))
            if mark and now - mark[0] >= seconds and not self.stopping:
                end = (now, self.done, dict(self.busy))
                self.stopping = True
            if self.stopping and self.outstanding == 0 and not self.inferring:
                break
        self.infer_q.put(None)
        self.thread.join()
        window = end[0] - mark[0]
        images = end[1] - mark[1]
        busy = {k: end[2][k] - mark[2][k] for k in self.busy}
        worker_util = (busy["prep"] + busy["post"]) / (workers * window)
        infer_util = busy["infer"] / window
        infer_name = "inference (GPU + host/device copies)" if self.runner.device_kind == "cuda" else "inference (CPU)"
        limit = (infer_name if infer_util >= 0.85 else
                 "CPU workers (decode + letterbox + postprocess)" if worker_util >= 0.85 else
                 "dispatch (the parent process: queues and batching)")
        per = max(images, 1)
        return {"images_per_s": round(images / window, 1), "window_s": round(window, 2), "images": images,
                "worker_utilisation": round(worker_util, 3), "inference_utilisation": round(infer_util, 3),
                "prep_ms_per_image": round(busy["prep"] * 1000 / per, 3),
                "post_ms_per_image": round(busy["post"] * 1000 / per, 3) if self.postprocess else None,
                "infer_ms_per_batch": round(busy["infer"] * 1000 * self.runner.layout.batch / per, 3),
                "limiting_stage": limit}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=str(DEFAULT_STORE))
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--images", type=int, default=None, help="distinct JPEGs (default 256 on a GPU, else 8)")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--workers", type=int, default=None, help="decode processes (default: CPUs - 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 on GPU, 2 on CPU")
    parser.add_argument("--slots", type=int, default=4, help="batch buffers in flight")
    parser.add_argument("--seconds", type=float, default=None, help="per pipeline variant (default 30 GPU, 3 CPU)")
    parser.add_argument("--stage-seconds", type=float, default=None, help="per stage measurement (default 5 / 1)")
    parser.add_argument("--variants", default=None, help=f"comma list of {sorted(VARIANTS)}")
    parser.add_argument("--no-postprocess", action="store_true", help="stop at the raw output on the device")
    parser.add_argument("--backend", default="auto", choices=["auto", "ort", "torch"], help=(
        "ort: ONNX Runtime (CUDA with onnxruntime-gpu); torch: the torch.export models; auto: ort when its CUDA "
        "provider works, else torch when torch sees a GPU, else ort on the CPU"))
    parser.add_argument("--model", default=None, help="run every variant on this one model (for tests)")
    parser.add_argument("--image-dir", default=str(DEFAULT_IMAGES), help="where generated images are cached")
    parser.add_argument("--out", default=None, help="write the result JSON here")
    args = parser.parse_args(argv)
    from benchmarks.images import parse_size

    size = parse_size(args.size)
    cpus = len(os.sched_getaffinity(0))
    workers = args.workers or max(1, cpus - 2)
    spawn = mp.get_context("spawn")
    answer = spawn.Queue()
    prep = spawn.Process(target=_prepare, args=(args.store, args.backend, args.model, args.images, size,
                                                 args.image_dir, max(1, min(workers, 16)), args.device != "cpu",
                                                 answer))
    prep.start()
    prep.join()
    if prep.exitcode:
        return prep.exitcode
    backend, models, cuda_state, out_shape, n_images = answer.get(timeout=30)
    cuda = cuda_state.startswith("cuda")
    if args.device == "cuda" and not cuda:
        raise SystemExit(f"--device cuda: {cuda_state}")
    device = "cuda" if cuda else "cpu"
    batch = args.batch_size or (64 if cuda else 2)
    seconds = args.seconds or (30.0 if cuda else 3.0)
    stage_s = args.stage_seconds or (5.0 if cuda else 1.0)
    variants = parse_list(args.variants or (GPU_DEFAULT if cuda else CPU_DEFAULT), str)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    from benchmarks.images import image_dir

    paths = [str(image_dir(args.image_dir, size, 90, 0) / f"frame_{i:05d}.jpg") for i in range(n_images)]
    store = ModelStore(args.store)
    needed = sorted({VARIANTS[v][1] for v in variants})
    configs = {m: store.get(models[m]).config.model_dump_json() for m in needed}
    in_size = store.get(models[needed[0]]).config.input_size[0]
    layout = Layout(args.slots, batch, in_size, *out_shape)
    in_mm, out_mm = shared_buffers(layout)
    # Fork before any ONNX Runtime session or torch (and their threads) exists in this process.
    task_q, result_q, procs = start_workers(mp.get_context("fork"), workers, in_mm, out_mm, layout, paths, configs)
    result: dict[str, Any] = {"machine": machine_info(), "backend": backend, "device": device, "cuda": cuda_state,
                              "models": {m: models[m] for m in needed}, "workers": workers,
                              "batch_size": batch, "slots": args.slots, "images": n_images, "image_size": args.size,
                              "target_images_per_s": TARGET_IMAGES_PER_S if cuda else None}
    try:
        result["decode_images_per_s"] = {mode: stage_decode(task_q, result_q, mode, n_images, workers, stage_s)
                                         for mode in ("full", "reduced")}
        if cuda and backend == "ort":
            import onnxruntime as ort

            if hasattr(ort, "preload_dlls"):
                ort.preload_dlls()  # CUDA/cuDNN from the nvidia-* wheels (or torch), when not on the library path
        runners = {m: make_runner(backend, store, models[m], device, layout, in_mm, out_mm, None if cuda else 1)
                   for m in needed}
        result["providers"] = {m: r.provider for m, r in runners.items()}
        result["inference_images_per_s"] = {m: stage_inference(r, paths, stage_s) for m, r in runners.items()}
        result["postprocess_ms_per_image"] = stage_postprocess(runners[needed[0]], paths)
        rows = []
        for v in variants:
            mode, m = VARIANTS[v]
            print(f"pipeline {v}: {seconds:.0f} s ...", flush=True)
            pipe = _Pipeline(runners[m], m, mode, task_q, result_q, n_images, not args.no_postprocess)
            rows.append({"variant": v, **pipe.run(seconds, min(5.0, seconds / 3), workers)})
        result["pipelines"] = rows
    finally:
        stop_workers(task_q, procs)
    best = max(result["pipelines"], key=lambda r: r["images_per_s"])
    result["best"] = best
    print(f"device {device} ({result['providers']}), {workers} workers, batch {batch}")
    print(f"decode only (images/s): {result['decode_images_per_s']}")
    print(f"inference only (images/s): {result['inference_images_per_s']}")
    print(f"postprocess: {result['postprocess_ms_per_image']} ms/image in one process")
    print_table(rows, ["variant", "images_per_s", "worker_utilisation", "inference_utilisation", "prep_ms_per_image",
                       "post_ms_per_image", "limiting_stage"])
    verdict = f"best: {best['variant']} at {best['images_per_s']} images/s, limited by {best['limiting_stage']}"
    if cuda:
        met = best["images_per_s"] >= TARGET_IMAGES_PER_S
        verdict += f" (target {TARGET_IMAGES_PER_S}: {'met' if met else 'not met'})"
    print(verdict)
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
