"""Accelerator side of benchmarks.gpu_pipeline: run a shared-memory batch through the product's backend.

Both runners load the model with `ModelStore.load_detector` (checksum verified, the product's
backend) and then drive that backend's session/module directly, which the product's
`Detector.infer` cannot yet do: read the batch in place from the shared buffer, write the raw
output in place into the other one, and (ONNX Runtime) keep it on the device when asked.

- `OrtRunner`: ONNX Runtime with IO binding (onnxruntime-gpu's CUDA provider, or the CPU one).
- `TorchRunner`: the torch.export backend (`*-pt2` models) for GPU boxes that have torch but not
  onnxruntime-gpu; the shared buffers are page-locked (cudaHostRegister) for fast copies.
"""

from __future__ import annotations

import mmap
import time
from typing import Any

import numpy as np

from benchmarks.gpu_workers import Layout, decode
from model_store import ModelStore
from model_store.core.preprocess import letterbox, to_tensor

_PINNED: set[int] = set()  # host buffers already page-locked with cudaHostRegister


class OrtRunner:
    """The product's ONNX Runtime session for one model, run on shared-memory batches with IO binding."""

    def __init__(self, store: ModelStore, ref: str, device: str, layout: Layout, in_mm: mmap.mmap, out_mm: mmap.mmap,
                 threads: int | None = None) -> None:
        self.detector = store.load_detector(ref, device=device, threads=threads)
        self.config = self.detector.config
        self.layout = layout
        self.session = self.detector.backend.session
        self.inputs = layout.inputs(in_mm, self.config.preprocess.input_dtype)
        self.outputs = layout.outputs(out_mm)
        self.device_kind = "cuda" if self.detector.device == "cuda" else "cpu"
        self.provider = self.session.get_providers()[0]
        self._bindings: dict[tuple[int, bool], Any] = {}

    def _binding(self, slot: int, host_output: bool):
        key = (slot, host_output)
        if key not in self._bindings:
            io = self.session.io_binding()
            x = self.inputs[slot]
            io.bind_input(self.detector.backend.input_name, "cpu", 0, x.dtype, list(x.shape), x.ctypes.data)
            if host_output:  # ONNX Runtime copies the result straight into the shared output buffer
                y = self.outputs[slot]
                io.bind_output(self.detector.backend.output_name, "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
            else:
                io.bind_output(self.detector.backend.output_name, self.device_kind)
            self._bindings[key] = io
        return self._bindings[key]

    def run(self, slot: int, host_output: bool = True) -> float:
        t0 = time.perf_counter()
        self.session.run_with_iobinding(self._binding(slot, host_output))
        return time.perf_counter() - t0


class TorchRunner:
    """The product's torch.export module for one model, fed from and into the shared buffers."""

    def __init__(self, store: ModelStore, ref: str, device: str, layout: Layout, in_mm: mmap.mmap, out_mm: mmap.mmap,
                 threads: int | None = None, channels_last: bool = True) -> None:
        import torch

        self.torch = torch
        self.detector = store.load_detector(ref, device=device, threads=threads)
        self.config = self.detector.config
        self.layout = layout
        self.device_kind = self.detector.device
        self.module = self.detector.backend.module
        self.channels_last = channels_last and self.device_kind == "cuda"
        if self.channels_last:  # NHWC convolutions: the tensor-core kernels cuDNN prefers in float16
            self.module = self.module.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        self.inputs = layout.inputs(in_mm, self.config.preprocess.input_dtype)
        self.outputs = layout.outputs(out_mm)
        self.pinned = self._pin(in_mm, out_mm) if self.device_kind == "cuda" else False
        self.provider = f"torch {torch.__version__} on {self.device_kind}" + (", pinned buffers" if self.pinned else "")
        self._in = [torch.from_numpy(self.inputs[s]) for s in range(layout.slots)]
        self._out = [torch.from_numpy(self.outputs[s]) for s in range(layout.slots)]

    def _pin(self, *buffers: mmap.mmap) -> bool:
        """Page-lock the shared buffers in place so host<->device copies run at full PCIe speed."""
        try:
            cudart = self.torch.cuda.cudart()
            for mm in buffers:
                ptr = np.frombuffer(mm, np.uint8).ctypes.data
                if ptr not in _PINNED and int(cudart.cudaHostRegister(ptr, len(mm), 0)) == 0:
                    _PINNED.add(ptr)  # every runner shares the same two buffers
            return all(np.frombuffer(mm, np.uint8).ctypes.data in _PINNED for mm in buffers)
        except Exception:  # noqa: BLE001 - pageable copies still work, only slower
            return False

    def run(self, slot: int, host_output: bool = True) -> float:
        torch = self.torch
        t0 = time.perf_counter()
        with torch.inference_mode():
            x = self._in[slot].to(self.device_kind, non_blocking=self.pinned)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.module(x)
            y = y[0] if isinstance(y, tuple | list) else y
            if host_output:
                self._out[slot].copy_(y, non_blocking=False)
            elif self.device_kind == "cuda":
                torch.cuda.synchronize()
        return time.perf_counter() - t0


Runner = OrtRunner | TorchRunner


def stage_inference(runner: Runner, paths: list[str], seconds: float) -> dict[str, float]:
    """Images/s of inference alone on a ready batch, raw output left on the device or copied back."""
    cfg = runner.config
    with open(paths[0], "rb") as f:
        prepared, _ = letterbox(decode(f.read(), "full", cfg.input_size[0]), cfg.input_size, cfg.preprocess)
    runner.inputs[0][:] = to_tensor([prepared], cfg.preprocess)[0]
    out = {}
    for host in (False, True):
        runner.run(0, host)  # warm-up (cuDNN picks its algorithms on the first run)
        runs, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            runner.run(0, host)
            runs += 1
        rate = runs * runner.layout.batch / (time.perf_counter() - t0)
        out["host_output" if host else "device_output"] = round(rate, 1)
    return out


def stage_postprocess(runner: Runner, paths: list[str]) -> float:
    """Milliseconds per image of the product's postprocess (one process), on a real raw output."""
    cfg = runner.config
    with open(paths[0], "rb") as f:
        _, meta = letterbox(decode(f.read(), "full", cfg.input_size[0]), cfg.input_size, cfg.preprocess)
    runner.run(0, True)
    n = min(runner.layout.batch, 16)
    t0 = time.perf_counter()
    for k in range(n):
        runner.detector.postprocess(runner.outputs[0, k], meta)
    return round((time.perf_counter() - t0) * 1000 / n, 3)


def make_runner(backend: str, store: ModelStore, ref: str, device: str, layout: Layout, in_mm: mmap.mmap,
                out_mm: mmap.mmap, threads: int | None) -> Runner:
    cls = TorchRunner if backend == "torch" else OrtRunner
    return cls(store, ref, device, layout, in_mm, out_mm, threads)
