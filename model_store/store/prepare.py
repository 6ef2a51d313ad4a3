"""The config `publish` writes: read from a file or dict, derived from an ONNX graph where there is one, the
weights' sha256 filled in, validated into the version's kind (detector, classifier or identifier)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ground.errors import ChecksumError, NotFoundError
from model_store.core.backend_specs import CLASSIFIER_BACKENDS, IDENTIFIER_BACKENDS, WEIGHTS_FILES
from model_store.core.config import (
    AnyConfig,
    ConfigError,
    complete_classifier_config,
    complete_identifier_config,
    parse_any_config,
)
from model_store.core.graph import has_symbolic_outputs, inspect_onnx, probe_outputs
from model_store.store.derive import complete_config, derive_config, merge_config, preset


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_config_input(config: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(config, dict):
        return json.loads(json.dumps(config))  # a deep copy we may edit
    path = Path(config)
    if not path.is_file():
        raise NotFoundError(f"config file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def prepare_config(weights: Path | None, config: str | Path | dict[str, Any] | None = None, preset: str | None = None,
                   source: str = "config") -> AnyConfig:
    """The validated config `publish` would write for these weights (what `publish --dry-run` shows).
    `weights` is None only for a model that has none (a `keypoints` identifier: config.json is the model)."""
    given = load_config_input(config) if config is not None else {}
    if given.get("backend") in IDENTIFIER_BACKENDS:
        if preset:
            raise ConfigError(f"presets apply to ONNX detectors only, not backend {given['backend']!r}")
        if given["backend"] == "keypoints":
            if weights is not None:
                raise ConfigError("backend keypoints has no weights: publish its config.json alone")
            return parse_any_config(given, source)
    if weights is None:
        raise ConfigError("only a keypoints identifier is published without weights; give the weights file")
    if not weights.is_file():
        raise NotFoundError(f"weights file not found: {weights}")
    config_dict = resolve_config(weights, given, preset)
    digest = sha256_file(weights)
    wspec = dict(config_dict.get("weights") or {})
    if wspec.get("sha256") and wspec["sha256"] != digest:
        raise ChecksumError(f"{weights} has sha256 {digest}, but the config says {wspec['sha256']}")
    wspec.setdefault("file", WEIGHTS_FILES.get(config_dict.get("backend"), weights.name))
    wspec["sha256"] = digest
    config_dict["weights"] = wspec
    return parse_any_config(config_dict, source)


def resolve_config(weights: Path, given: dict[str, Any], preset_name: str | None = None) -> dict[str, Any]:
    """The config to publish: derived from an ONNX graph when there is one, then preset, then `given`."""
    backend = given.get("backend", "onnx-yolo")
    if backend in IDENTIFIER_BACKENDS:
        return complete_identifier_config(weights, given)
    if backend in CLASSIFIER_BACKENDS:
        if preset_name:
            raise ConfigError(f"presets apply to ONNX detectors only, not backend {backend!r}")
        return complete_classifier_config(weights, given)
    if backend != "onnx-yolo":
        if preset_name:
            raise ConfigError(f"presets apply to ONNX models only, not backend {backend!r}")
        return given

    graph, metadata = inspect_onnx(weights)
    file = (given.get("weights") or {}).get("file") or WEIGHTS_FILES["onnx-yolo"]
    merged = derive_config(graph, metadata, file)
    if preset_name:
        fragment = preset(preset_name)
        if graph.static_hw:  # rect needs dynamic spatial dims; a static export runs square
            fragment["preprocess"]["letterbox"] = "square"
        merged = merge_config(merged, fragment)
    merged = merge_config(merged, given)
    if has_symbolic_outputs(graph) and merged.get("input_size"):
        # RT-DETR and other exports leave output dims symbolic: run the graph once so the layout is judged on
        # what it gives, not accepted here and refused by the first batch.
        size = merged["input_size"]
        size = (size, size) if isinstance(size, int) else tuple(size)
        graph = graph.model_copy(update={"probed_outputs": probe_outputs(weights, graph, size)})
    merged = complete_config(merged, graph)
    merged["graph"] = graph.model_dump(mode="json")
    return merged


def default_card(name: str, version: str, config: AnyConfig) -> str:
    size = f"{config.input_size[0]}x{config.input_size[1]}" if config.input_size else "any (keypoints)"
    return (f"# {name} {version}\n\n{config.description or 'No model card was supplied.'}\n\n"
            f"- backend: {config.backend}\n- labels: {', '.join(config.labels)}\n"
            f"- input size: {size}\n")
