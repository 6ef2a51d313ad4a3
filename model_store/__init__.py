"""Versioned detectors and the one detector core that both serve/ and batch/ call."""

from .backends import Interrupt, ModelLoadError, ModelRunError, RunInterruptedError
from .classifier import Classifier, ClassifierConfig
from .config import ConfigError, ModelConfig, parse_config
from .crops import CropOptions
from .detector import Detector
from .filters import FilterConfigError, FilterSet
from .imaging import ImageDecodeError, decode_image
from .pipeline import ClassifierRoute, Pipeline
from .records import Classification, Detection, ImageDetections, ModelInfo
from .refs import InvalidRefError, ModelRef
from .store import ChecksumError, ModelStore, ModelVersion, NotFoundError, StoreError

__all__ = [
    "Classification", "Classifier", "ClassifierConfig", "ClassifierRoute", "CropOptions", "Pipeline",
    "ChecksumError", "ConfigError", "Detection", "Detector", "FilterConfigError", "FilterSet",
    "ImageDecodeError", "ImageDetections", "Interrupt", "InvalidRefError", "ModelConfig", "ModelInfo",
    "ModelLoadError", "ModelRunError", "ModelRef", "ModelStore", "ModelVersion", "NotFoundError",
    "RunInterruptedError", "StoreError",
    "decode_image", "parse_config",
]
