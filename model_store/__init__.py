"""Versioned detectors and the one detector core that both serve/ and batch/ call."""

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
from model_store.store.store import ChecksumError, ModelStore, ModelVersion, NotFoundError, StoreError

__all__ = [
    "Classification", "Classifier", "ClassifierConfig", "ClassifierRoute", "CropOptions", "Pipeline",
    "ChecksumError", "ConfigError", "Detection", "Detector", "FilterConfigError", "FilterSet",
    "ImageDecodeError", "ImageDetections", "Interrupt", "InvalidRefError", "MaskRLE", "ModelConfig", "ModelInfo",
    "ModelLoadError", "ModelRunError", "ModelRef", "ModelStore", "ModelVersion", "NotFoundError",
    "RunInterruptedError", "StoreError",
    "decode_image", "parse_config",
]
