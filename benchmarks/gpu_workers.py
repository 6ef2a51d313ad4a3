"""CPU side of benchmarks.gpu_pipeline: decode / letterbox / postprocess worker processes and the
shared buffers they fill.

The buffers are anonymous shared mappings created before the workers are forked, so nothing
goes through /dev/shm (often tiny in containers) and no pixel is pickled: a worker writes an
image straight into its slot of a batch buffer, ONNX Runtime reads that batch in place (IO
binding) and writes the raw output into a second shared buffer that workers postprocess.
"""

from __future__ import annotations

import mmap
import time
import traceback
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from model_store import Detector, ModelConfig, decode_image
from model_store.core.imaging import probe_image
from model_store.core.preprocess import letterbox, to_tensor
from model_store.core.records import ModelInfo

DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}


@dataclass(frozen=True)
class Layout:
    """Shapes of the shared buffers: `slots` batch buffers of `batch` images each."""

    slots: int
    batch: int
    size: int  # square model input
    channels_out: int  # raw output per image is (channels_out, anchors): YOLOv8 layout
    anchors: int

    @property
    def in_bytes(self) -> int:
        return self.slots * self.batch * 3 * self.size * self.size * 4  # room for float32 inputs

    @property
    def out_bytes(self) -> int:
        return self.slots * self.batch * self.channels_out * self.anchors * 4

    def inputs(self, mm: mmap.mmap, dtype: str) -> np.ndarray:
        n = self.slots * self.batch * 3 * self.size * self.size
        return np.frombuffer(mm, DTYPES[dtype], count=n).reshape(self.slots, self.batch, 3, self.size, self.size)

    def outputs(self, mm: mmap.mmap) -> np.ndarray:
        n = self.slots * self.batch * self.channels_out * self.anchors
        return np.frombuffer(mm, np.float32, count=n).reshape(self.slots, self.batch, self.channels_out, self.anchors)


def shared_buffers(layout: Layout) -> tuple[mmap.mmap, mmap.mmap]:
    """Anonymous MAP_SHARED memory: inherited by forked workers, never backed by a file."""
    return mmap.mmap(-1, layout.in_bytes), mmap.mmap(-1, layout.out_bytes)


def reduction_for(width: int, height: int, size: int) -> int:
    """The largest JPEG DCT reduction (1, 2, 4, 8) that still leaves at least the letterboxed size."""
    shrink = max(width / size, height / size)  # the letterbox divides by this
    factor = 1
    while factor * 2 <= min(8, shrink):
        factor *= 2
    return factor


_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_reduced(data: bytes, size: int) -> np.ndarray:
    """Decode a JPEG already scaled down by 2/4/8 inside libjpeg (the IDCT skips the detail the
    letterbox would throw away); anything else, or a rotated image, takes the product's decode."""
    fmt, w, h, orientation = probe_image(data)
    factor = reduction_for(w, h, size)
    if fmt != "JPEG" or orientation != 1 or factor == 1:
        return decode_image(data)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None:
        return decode_image(data)  # let the product raise its typed error
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode(data: bytes, mode: str, size: int) -> np.ndarray:
    return decode_reduced(data, size) if mode == "reduced" else decode_image(data)


class _NoBackend:
    """Workers only postprocess; inference happens in the parent."""

    device = "cpu"

    def run(self, batch: np.ndarray) -> np.ndarray:
        raise RuntimeError("workers do not run inference")


def worker_main(task_q, result_q, in_mm: mmap.mmap, out_mm: mmap.mmap, layout: Layout, paths: list[str],
                configs: dict[str, str]) -> None:
    """Serve tasks until None arrives. Tasks:

    ("decode", mode, indices)                          -> ("decode", n, busy_s)
    ("prep", model, mode, slot, start, indices)        -> ("prep", slot, start, n, busy_s, metas)
    ("post", model, slot, start, metas)                -> ("post", slot, n, busy_s, detections)
    """
    cv2.setNumThreads(1)  # one image per worker at a time; the workers are the parallelism
    parsed = {name: ModelConfig.model_validate_json(text) for name, text in configs.items()}
    detectors = {name: Detector(ModelInfo(name=name, version="-", sha256="0" * 64), cfg, _NoBackend())
                 for name, cfg in parsed.items()}
    views = {dtype: layout.inputs(in_mm, dtype) for dtype in DTYPES}
    outputs = layout.outputs(out_mm)
    while True:
        task = task_q.get()
        if task is None:
            return
        t0 = time.perf_counter()
        try:
            kind = task[0]
            if kind == "decode":
                _, mode, indices = task
                for i in indices:
                    with open(paths[i], "rb") as f:
                        decode(f.read(), mode, layout.size)
                result_q.put(("decode", len(indices), time.perf_counter() - t0))
            elif kind == "prep":
                _, model, mode, slot, start, indices = task
                cfg = parsed[model]
                dst = views[cfg.preprocess.input_dtype][slot]
                metas = []
                for k, i in enumerate(indices):
                    with open(paths[i], "rb") as f:
                        rgb = decode(f.read(), mode, layout.size)
                    prepared, meta = letterbox(rgb, cfg.input_size, cfg.preprocess, cfg.stride)
                    dst[start + k] = to_tensor([prepared], cfg.preprocess)[0]
                    metas.append(meta)
                result_q.put(("prep", slot, start, len(indices), time.perf_counter() - t0, metas))
            elif kind == "post":
                _, model, slot, start, metas = task
                det = detectors[model]
                found = sum(len(det.postprocess(outputs[slot, start + k], meta).detections)
                            for k, meta in enumerate(metas))
                result_q.put(("post", slot, len(metas), time.perf_counter() - t0, found))
        except Exception:  # noqa: BLE001 - the parent stops the run and shows this
            result_q.put(("error", traceback.format_exc()))


def start_workers(ctx: Any, n: int, in_mm: mmap.mmap, out_mm: mmap.mmap, layout: Layout, paths: list[str],
                  configs: dict[str, str]) -> tuple[Any, Any, list[Any]]:
    """Fork `n` workers sharing the buffers; returns (task queue, result queue, processes)."""
    task_q, result_q = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=worker_main, args=(task_q, result_q, in_mm, out_mm, layout, paths, configs),
                         daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    return task_q, result_q, procs


def stop_workers(task_q, procs: list[Any]) -> None:
    for _ in procs:
        task_q.put(None)
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.terminate()
