"""Model configs: a detector's `ModelConfig` and a classifier's `ClassifierConfig`, told apart by `backend`."""

from __future__ import annotations

from typing import Any

from model_store.core.backends import CLASSIFIER_BACKENDS
from model_store.core.config.classifier import (
    ClassifierConfig,
    ClassifierPreprocess,
    complete_classifier_config,
    parse_classifier_config,
)
from model_store.core.config.common import (
    ConfigError,
    Strict,
    WeightsConfig,
    format_validation_error,
    json_object,
    size_in_range,
    square_size,
    unique_labels,
)
from model_store.core.config.detector import ModelConfig, PreprocessConfig, graph_contradiction, parse_config

__all__ = ["ClassifierConfig", "ClassifierPreprocess", "ConfigError", "ModelConfig", "PreprocessConfig", "Strict",
           "WeightsConfig", "complete_classifier_config", "format_validation_error", "graph_contradiction",
           "json_object", "parse_any_config", "parse_classifier_config", "parse_config", "size_in_range",
           "square_size", "unique_labels"]


def parse_any_config(data: bytes | str | dict[str, Any], source: str = "config.json") -> ModelConfig | ClassifierConfig:
    """A detector's `ModelConfig` or a classifier's `ClassifierConfig`, chosen by the `backend` field."""
    data = json_object(data, source)
    if data.get("backend") in CLASSIFIER_BACKENDS:
        return parse_classifier_config(data, source)
    return parse_config(data, source)
