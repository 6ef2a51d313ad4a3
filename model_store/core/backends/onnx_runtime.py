"""ONNX Runtime backend: CPU by default, CUDA only when a GPU is assigned or asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from model_store.core.backends import Interrupt, ModelLoadError, RunInterruptedError, gpu_assigned


def select_providers(device: str) -> list[str]:
    """Execution providers for `device`; "auto" takes CUDA only when a GPU is assigned and usable."""
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise ModelLoadError(f"device 'cuda' requested but ONNX Runtime offers only {available}")
    if device == "cuda" or (device == "auto" and has_cuda and gpu_assigned()):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxBackend:
    """One InferenceSession per replica/actor; thread count matched to the CPUs it was given."""

    interruptible = True  # ORT checks RunOptions.terminate between graph nodes

    def __init__(self, path: Path, device: str = "cpu", threads: int | None = None) -> None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            # ORT defaults to one thread per core of the machine, which oversubscribes CPUs that Ray
            # gave to other replicas; callers pass the replica's num_cpus instead.
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        providers = select_providers(device)
        if providers[0] == "CUDAExecutionProvider" and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA/cuDNN from pip wheels are found only if loaded first
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:  # ORT raises several unrelated types for corrupt files
            raise ModelLoadError(f"ONNX Runtime cannot load {path.name}: {exc}") from None
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        if device == "cuda" and self.device != "cuda":
            # ORT falls back to the CPU silently when CUDA libraries are missing; a replica that
            # asked for a GPU would then run 50x slower without anyone noticing.
            used = self.session.get_providers()
            raise ModelLoadError(f"device 'cuda' requested but ONNX Runtime fell back to {used}")
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.output_name = self.output_names[0]
        batch_dim = first.shape[0] if first.shape else None
        # Exports default to a static batch of 1 (Ultralytics, YOLOv5); the detector splits or pads
        # formed batches to this size instead of handing ORT a shape it will refuse.
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self._input = first

    def expects(self) -> str:
        dims = ", ".join(str(d) if isinstance(d, int) else f"{d}?" for d in self._input.shape)
        return f"{self.input_name} [{dims}] {self._input.type}"

    def run(self, batch: np.ndarray, interrupt: Interrupt | None = None, outputs: int = 1
            ) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run one batch; returns the first output, or a tuple of the first `outputs` when a head reads more
        than one. A requested `interrupt` sets the run's terminate flag: ORT stops at the next node and raises."""
        options = None
        if interrupt is not None:
            options = ort.RunOptions()
            interrupt.on_request(lambda: setattr(options, "terminate", True))
        try:
            got = self.session.run(self.output_names[:outputs], {self.input_name: batch}, options)
        except Exception as exc:
            # Only ORT's own answer to the flag is a stop; any other error is the model's, even mid-preemption.
            if options is not None and options.terminate and "terminate flag" in str(exc):
                raise RunInterruptedError("stopped by its interrupt") from exc
            raise
        if outputs > len(got):
            raise ValueError(f"the graph has {len(got)} output(s) but its output layout reads {outputs}")
        return got[0] if outputs == 1 else tuple(got)
