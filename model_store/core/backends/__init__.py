"""Inference backends, chosen by `config.json`'s `backend` field (never by file extension)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ground.errors import ModelLoadError, ModelRunError, RunInterruptedError
from model_store.core.backend_specs import BACKENDS

if TYPE_CHECKING:  # the configs take their backend names from backend_specs, not from here: no circle
    from model_store.core.config import ModelConfig

__all__ = ["Backend", "Interrupt", "ModelLoadError", "ModelRunError", "RunInterruptedError", "create_backend",
           "gpu_assigned", "run_chunked"]

# The backends' names, roles, runtimes and weights files: one table (model_store/core/backend_specs.py).
_RUNTIMES = {name: b.runtime for name, b in BACKENDS.items() if b.runtime}


class Interrupt:
    """Lets another thread stop a forward pass in flight (a Serve replica preempts an archive batch when an
    online request arrives). ONNX Runtime checks its RunOptions' terminate flag between graph nodes, so a
    pass stops within a few ms; a multi-chunk run also stops between chunks. One Interrupt per run: once
    requested it stays requested."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requested = False
        self._hooks: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        return self._requested

    def request(self) -> None:
        with self._lock:
            self._requested = True
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()

    def on_request(self, hook: Callable[[], None]) -> None:
        """Call `hook` when the interrupt is requested (at once if it already was)."""
        with self._lock:
            if not self._requested:
                self._hooks.append(hook)
                return
        hook()


class Backend(Protocol):
    """Runs a batch tensor through the model and returns its raw output tensor (a tuple of the first
    `outputs` tensors when a detector's head reads several: DETR's boxes and logits, a segmentation head's
    prototypes; ONNX Runtime and torch.export offer that).

    `fixed_batch` is the batch size a graph exported with a static batch dim accepts (None: any);
    `expects` describes the input the graph takes, for error messages. An `interruptible` backend's
    `run` stops early when its `interrupt` is requested and raises RunInterruptedError.
    """

    device: str
    fixed_batch: int | None
    interruptible: bool  # whether `run` stops early on a requested interrupt

    def expects(self) -> str: ...

    def run(self, batch: np.ndarray, interrupt: Interrupt | None = None) -> np.ndarray: ...


def gpu_assigned() -> bool:
    """True when this process was given a GPU (Ray sets CUDA_VISIBLE_DEVICES; empty means none)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return bool(visible) and visible not in ("-1", "NoDevFiles")


def create_backend(config: ModelConfig, weights: Path, device: str = "cpu", threads: int | None = None) -> Backend:
    """Build the backend named in `config` on `device` ("cpu", "cuda" or "auto")."""
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device must be cpu, cuda or auto, got {device!r}")
    if config.backend in _RUNTIMES:
        import importlib

        # Imported here: the runtime (onnxruntime, torch) loads only for the kind of model being loaded.
        module, cls = _RUNTIMES[config.backend]
        return getattr(importlib.import_module(module), cls)(weights, device=device, threads=threads)
    raise ModelLoadError(f"unknown backend {config.backend!r}")  # unreachable: config validation


def run_chunked(backend: Backend, tensor: np.ndarray, ref: str, interrupt: Interrupt | None = None,
                outputs: int = 1) -> np.ndarray | tuple[np.ndarray, ...]:
    """Run a ready NCHW tensor in the batch sizes the graph accepts; returns the stacked raw output (a tuple
    of the first `outputs` outputs when more than one is asked for).

    A graph exported with a static batch runs formed batches in chunks of that size, the last one
    padded with copies of its last input (their outputs are dropped). Raises ModelRunError naming
    the model, the input and what the graph expects, or RunInterruptedError when `interrupt` was requested.
    """
    fixed = backend.fixed_batch
    if fixed is None or len(tensor) == fixed:
        return _run(backend, tensor, ref, interrupt, outputs)
    parts = []
    for start in range(0, len(tensor), fixed):
        chunk = tensor[start:start + fixed]
        n = len(chunk)
        if n < fixed:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
        got = _run(backend, chunk, ref, interrupt, outputs)
        parts.append(tuple(g[:n] for g in got) if isinstance(got, tuple) else got[:n])
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(col) for col in zip(*parts, strict=True))
    return np.concatenate(parts)


def _run(backend: Backend, tensor: np.ndarray, ref: str, interrupt: Interrupt | None, outputs: int = 1
         ) -> np.ndarray | tuple[np.ndarray, ...]:
    if interrupt is not None and interrupt.requested:
        raise RunInterruptedError(f"the forward pass of {ref} was interrupted before it started")
    try:
        if outputs > 1:  # only heads that read several outputs pass it: other backends keep run(batch[, interrupt])
            return backend.run(tensor, interrupt, outputs)
        return backend.run(tensor) if interrupt is None else backend.run(tensor, interrupt)
    except RunInterruptedError as exc:
        raise RunInterruptedError(f"the forward pass of {ref} was interrupted") from exc
    except Exception as exc:  # noqa: BLE001 - runtimes raise many types; the caller needs one, with context
        detail = str(exc).strip().splitlines()
        raise ModelRunError(
            f"model {ref} failed on an input of shape {list(tensor.shape)} {tensor.dtype}; the graph expects "
            f"{backend.expects()}: {detail[0] if detail else type(exc).__name__}") from exc
