"""torch.export backend: a `.pt2` ExportedProgram (graph as JSON, raw weights), no pickled code.

`torch.export.load` can still unpickle in a few places (weights or constants saved with
`use_pickle`, custom/opaque objects, legacy files, and a `weights_only=False` fallback for
sample inputs). Weights are untrusted input, so the archive is inspected first and anything
that would be unpickled is refused, and the load runs with torch's weights-only switch forced.
"""

from __future__ import annotations

import json
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from model_store.core.backends import Interrupt, ModelLoadError, gpu_assigned


class TorchExportBackend:
    """Runs an ExportedProgram saved with `torch.export.save`; torch is imported only here."""

    def __init__(self, path: Path, device: str = "cpu", threads: int | None = None) -> None:
        try:
            import torch
        except ImportError:
            raise ModelLoadError("backend 'torch-export-yolo' needs torch: pip install 'trapline[train]'") from None
        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        use_cuda = device == "cuda" or (device == "auto" and gpu_assigned() and torch.cuda.is_available())
        if device == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("device 'cuda' requested but torch sees no CUDA device")
        self.device = "cuda" if use_cuda else "cpu"
        check_pt2_archive(path)
        try:
            with _weights_only_loads():
                self.module = torch.export.load(str(path)).module().to(self.device)
        except Exception as exc:  # torch raises many types for a corrupt archive
            raise ModelLoadError(f"torch.export cannot load {path.name}: {exc}") from None

    fixed_batch = None  # torch.export programs here are exported with a dynamic batch dim
    interruptible = False  # a torch program runs to its end: the replica does not preempt it

    def expects(self) -> str:
        return "a float [N, 3, H, W] tensor (torch.export program)"

    def run(self, batch: np.ndarray, interrupt: Interrupt | None = None, outputs: int = 1
            ) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run one batch; returns the first output as a numpy array, or a tuple of the first `outputs` when a
        head reads several (segmentation). A torch program cannot be stopped midway, so `interrupt` is ignored
        (callers check `interruptible` and do not pass one)."""
        torch = self._torch
        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch).to(self.device))
        got = list(out) if isinstance(out, tuple | list) else [out]
        if outputs > len(got):
            raise ValueError(f"the program has {len(got)} output(s) but its output layout reads {outputs}")
        if outputs > 1:
            return tuple(o.float().cpu().numpy() for o in got[:outputs])
        return got[0].float().cpu().numpy()


_PICKLED_PREFIXES = ("custom_obj", "opaque_obj")


def check_pt2_archive(path: Path) -> None:
    """Refuse a .pt2 archive whose load would unpickle anything (ModelLoadError says what)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            for name in names:
                parts = name.split("/")
                if len(parts) >= 3 and parts[-3:-1] in (["data", "weights"], ["data", "constants"]) \
                        and name.endswith(".pt"):
                    raise ModelLoadError(f"{path.name}: legacy pickled payload {name} is not accepted")
                if name.endswith("_config.json") and "/data/" in name:
                    config = json.loads(zf.read(name)).get("config", {})
                    for fqn, meta in config.items():
                        if meta.get("use_pickle") or str(meta.get("path_name", "")).startswith(_PICKLED_PREFIXES):
                            raise ModelLoadError(f"{path.name}: {fqn} is stored as a pickle; refusing to load it")
    except zipfile.BadZipFile:
        raise ModelLoadError(f"{path.name} is not a torch.export archive (not a zip file)") from None


@contextmanager
def _weights_only_loads():
    # torch reads this switch on every torch.load call, overriding weights_only=False fallbacks.
    old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = old
