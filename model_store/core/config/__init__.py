"""Model configs: a detector's `ModelConfig`, a classifier's `ClassifierConfig` and an identifier's
`IdentifierConfig`, told apart by `backend`."""

from __future__ import annotations

from typing import Any

from model_store.core.backend_specs import CLASSIFIER_BACKENDS, IDENTIFIER_BACKENDS
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
from model_store.core.config.identifier import (
    Calibration,
    IdentifierConfig,
    KeypointParams,
    complete_identifier_config,
    parse_identifier_config,
)

__all__ = ["AnyConfig", "Calibration", "ClassifierConfig", "ClassifierPreprocess", "ConfigError",
           "IdentifierConfig", "KeypointParams", "ModelConfig", "PreprocessConfig", "Strict", "WeightsConfig",
           "complete_classifier_config", "complete_identifier_config", "format_validation_error",
           "graph_contradiction", "json_object", "parse_any_config", "parse_classifier_config", "parse_config",
           "parse_identifier_config", "size_in_range", "square_size", "unique_labels"]


AnyConfig = ModelConfig | ClassifierConfig | IdentifierConfig


def parse_any_config(data: bytes | str | dict[str, Any], source: str = "config.json") -> AnyConfig:
    """A detector's, classifier's or identifier's config, chosen by the `backend` field."""
    data = json_object(data, source)
    if data.get("backend") in IDENTIFIER_BACKENDS:
        return parse_identifier_config(data, source)
    if data.get("backend") in CLASSIFIER_BACKENDS:
        return parse_classifier_config(data, source)
    return parse_config(data, source)
