"""Identifier models (backends `keypoints`, `onnx-embedding`): the loaded `Identifier` (config:
core/config/identifier.py). It describes snips and scores pairs of them; the gallery (gallery.py) finds
candidates among many, and cluster.py groups sightings into individuals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ground.errors import LabelNotCoveredError
from model_store.core.backends import Backend, run_chunked
from model_store.core.classifier import crop_input
from model_store.core.config.identifier import IdentifierConfig
from model_store.core.identify.calibration import p_same
from model_store.core.identify.features import Description, describe_keypoints, snip_problem, verified_inliers
from model_store.core.records import ModelInfo


class Identifier:
    """One loaded identifier version.

    Lifecycle: built once per process or worker by `ModelStore.load_identifier` (which verifies an ONNX
    file's sha256 first; `keypoints` loads nothing). `describe` (snips -> descriptions, or a sentence for an
    unidentifiable snip) and `score` / `p_same` may then be called any number of times; give each worker
    its own instance (an ONNX session is not shared across processes).
    """

    def __init__(self, info: ModelInfo, config: IdentifierConfig, backend: Backend | None = None) -> None:
        if (backend is None) != (config.backend == "keypoints"):
            raise ValueError(f"backend {config.backend} {'needs' if backend is None else 'takes no'} ONNX session")
        self.info = info
        self.config = config
        self._backend = backend

    @property
    def ref(self) -> str:
        return f"{self.info.name}:{self.info.version}"

    def covers(self, label: str) -> bool:
        return label in self.config.applies_to

    def check_covers(self, labels: Sequence[str]) -> None:
        """Raise LabelNotCoveredError for the first label outside `applies_to`."""
        for label in labels:
            if not self.covers(label):
                raise LabelNotCoveredError(
                    f"identifier {self.ref} identifies {', '.join(self.config.applies_to)}, not {label!r}; "
                    "use an identifier made for that species", label=label)

    def describe(self, snips: Sequence[np.ndarray | None]) -> list[Description | str]:
        """Per snip: its description, or a sentence saying why it is unidentifiable."""
        cfg = self.config
        out: list[Description | str] = []
        ready: list[int] = []
        for i, snip in enumerate(snips):
            problem = snip_problem(snip, cfg.min_snip_px, cfg.min_contrast)
            if problem is not None:
                out.append(problem)
            elif cfg.backend == "keypoints":
                out.append(describe_keypoints(snip, cfg.keypoints))
            else:
                out.append("")  # filled below, in one batch through the model
                ready.append(i)
        if ready:
            tensor = np.stack([crop_input(np.ascontiguousarray(snips[i]), cfg) for i in ready])
            vectors = run_chunked(self._backend, tensor, self.ref).reshape(len(ready), -1).astype(np.float32)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            for i, v in zip(ready, vectors, strict=True):
                out[i] = Description(vector=v)
        return out

    def score(self, a: Description, b: Description) -> float:
        """The raw match score of two descriptions: verified inliers (keypoints) or cosine (embedding)."""
        if self.config.backend == "keypoints":
            return float(verified_inliers(a, b, self.config.keypoints))
        return float(a.vector @ b.vector)

    def p_same(self, scores: np.ndarray | list[float]) -> np.ndarray:
        """Calibrated P(same individual) of raw scores."""
        return p_same(scores, self.config.calibration, self.config.backend)
