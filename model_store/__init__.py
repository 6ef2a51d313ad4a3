"""Versioned detectors and the one detector core that both serve/ and batch/ call.

The names below load on first use (PEP 562): `from model_store import ModelStore` reads the store, not the whole
core with NumPy, OpenCV and ONNX Runtime behind it, so a command line that only lists models starts fast."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the same names, for type checkers and for the import contracts (lint-imports) to see
    from model_store.core.backends import Interrupt, ModelLoadError, ModelRunError, RunInterruptedError
    from model_store.core.classifier import Classifier
    from model_store.core.config import ClassifierConfig, ConfigError, ModelConfig, parse_config
    from model_store.core.crops import CropOptions
    from model_store.core.detector import Detector
    from model_store.core.filters import FilterConfigError, FilterSet
    from model_store.core.imaging import ImageDecodeError, decode_image
    from model_store.core.pipeline import ClassifierRoute, Pipeline
    from model_store.core.records import Classification, Detection, ImageDetections, MaskRLE, ModelInfo
    from model_store.core.refs import InvalidRefError, ModelRef
    from model_store.store.store import ChecksumError, ModelStore, NotFoundError, StoreError
    from model_store.store.versions import ModelVersion

_WHERE = {
    "model_store.core.backends": ("Interrupt", "ModelLoadError", "ModelRunError", "RunInterruptedError"),
    "model_store.core.classifier": ("Classifier",),
    "model_store.core.config": ("ClassifierConfig", "ConfigError", "ModelConfig", "parse_config"),
    "model_store.core.crops": ("CropOptions",),
    "model_store.core.detector": ("Detector",),
    "model_store.core.filters": ("FilterConfigError", "FilterSet"),
    "model_store.core.imaging": ("ImageDecodeError", "decode_image"),
    "model_store.core.pipeline": ("ClassifierRoute", "Pipeline"),
    "model_store.core.records": ("Classification", "Detection", "ImageDetections", "MaskRLE", "ModelInfo"),
    "model_store.core.refs": ("InvalidRefError", "ModelRef"),
    "model_store.store.store": ("ChecksumError", "ModelStore", "NotFoundError", "StoreError"),
    "model_store.store.versions": ("ModelVersion",),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "Classification", "Classifier", "ClassifierConfig", "ClassifierRoute", "CropOptions", "Pipeline",
    "ChecksumError", "ConfigError", "Detection", "Detector", "FilterConfigError", "FilterSet",
    "ImageDecodeError", "ImageDetections", "Interrupt", "InvalidRefError", "MaskRLE", "ModelConfig", "ModelInfo",
    "ModelLoadError", "ModelRunError", "ModelRef", "ModelStore", "ModelVersion", "NotFoundError",
    "RunInterruptedError", "StoreError",
    "decode_image", "parse_config",
]


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'model_store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
