"""torch.export backend: a `.pt2` ExportedProgram (graph as JSON, raw weights), no pickled code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import ModelLoadError, gpu_assigned


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
        try:
            self.module = torch.export.load(str(path)).module().to(self.device)
        except Exception as exc:  # torch raises many types for a corrupt archive
            raise ModelLoadError(f"torch.export cannot load {path.name}: {exc}") from None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch; returns the output as a numpy array."""
        torch = self._torch
        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch).to(self.device))
        if isinstance(out, tuple | list):
            out = out[0]
        return out.float().cpu().numpy()
