"""The one table of model backends: each `BackendSpec` says its name (what `config.json`'s `backend` field holds), its
role (detector, classifier, identifier), the runtime that loads it (a module imported only when a model of that kind
loads) and the weights file `publish` gives it. The configs take their `Literal` names from here and the loader
(model_store/core/backends/) its runtimes; neither imports the other for it.

A new backend is one row below (and its runtime class, where it has weights)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["detector", "classifier", "identifier"]


@dataclass(frozen=True)
class BackendSpec:
    name: str
    role: Role
    runtime: tuple[str, str] | None  # (module, class); None: no weights (parameters in config.json)
    weights_file: str | None


BACKENDS: dict[str, BackendSpec] = {b.name: b for b in (
    BackendSpec("onnx-yolo", "detector", ("model_store.core.backends.onnx_runtime", "OnnxBackend"), "model.onnx"),
    BackendSpec("torch-export-yolo", "detector", ("model_store.core.backends.torch_export", "TorchExportBackend"),
                "model.pt2"),
    BackendSpec("onnx-classifier", "classifier", ("model_store.core.backends.onnx_runtime", "OnnxBackend"),
                "model.onnx"),
    # Identifiers tell individuals apart; `keypoints` has no weights (OpenCV features, parameters in config.json).
    BackendSpec("keypoints", "identifier", None, None),
    BackendSpec("onnx-embedding", "identifier", ("model_store.core.backends.onnx_runtime", "OnnxBackend"),
                "model.onnx"),
)}


def names(role: Role) -> tuple[str, ...]:
    """The backends of one role, in the table's order (a config's `Literal[...]`)."""
    return tuple(name for name, b in BACKENDS.items() if b.role == role)


DETECTOR_BACKENDS = names("detector")
CLASSIFIER_BACKENDS = names("classifier")
IDENTIFIER_BACKENDS = names("identifier")
WEIGHTS_FILES = {name: b.weights_file for name, b in BACKENDS.items() if b.weights_file}
