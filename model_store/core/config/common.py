"""What every model config shares: strict pydantic models, the weights entry, the size and label checks,
and the one-line error format that quotes the bad field and value."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ground.errors import ConfigError
from ground.problems import describe, problems
from model_store.core.refs import SAFE_SEGMENT

__all__ = ["ConfigError", "Strict", "VersionConfig", "WeightsConfig", "format_validation_error", "size_in_range",
           "square_size", "unique_labels"]


class Strict(BaseModel):
    """A frozen config model that refuses unknown fields (a typo is an error, not a silent default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WeightsConfig(Strict):
    file: str = Field(..., description="weights file name inside the version directory")
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="hex sha256 of the weights file")

    @field_validator("file")
    @classmethod
    def _safe_file(cls, value: str) -> str:
        if not SAFE_SEGMENT.match(value) or ".." in value:
            raise ValueError(f"weights.file must be a plain file name, got {value!r}")
        return value


def square_size(cls, value: Any) -> Any:
    """`input_size: 640` means 640x640."""
    return (value, value) if isinstance(value, int) else value


def size_in_range(cls, value: tuple[int, int]) -> tuple[int, int]:
    if not all(16 <= v <= 4096 for v in value):
        raise ValueError(f"input_size must be within 16..4096 pixels, got {value!r}")
    return value


def unique_labels(cls, labels: list[str]) -> list[str]:
    if len(set(labels)) != len(labels) or any(not label for label in labels):
        raise ValueError(f"labels must be non-empty and unique, got {labels!r}")
    return labels


def format_validation_error(exc: ValidationError, source: str, what: str = "model config") -> str:
    """One line per problem: `field: message (got value)` (ground/problems.py, as at every door)."""
    return f"invalid {what + ' ' if what else ''}{source}: " + describe(problems(exc))


def json_object(data: bytes | str | dict[str, Any], source: str) -> dict[str, Any]:
    """A config's JSON object from text or a dict; ConfigError naming `source` otherwise."""
    import json

    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a JSON object, got {type(data).__name__}")
    return data


class VersionConfig(Strict):
    """What the config.json of every model version holds, detector or classifier: its weights, input size
    and labels. Each kind adds its `backend` (one of its registered names) and its own fields."""

    schema_version: Literal[1] = 1
    weights: WeightsConfig
    input_size: tuple[int, int] = Field(..., description="model input (width, height) in pixels")
    labels: list[str] = Field(..., min_length=1)

    _square = field_validator("input_size", mode="before")(square_size)
    _size_range = field_validator("input_size")(size_in_range)
    _unique_labels = field_validator("labels")(unique_labels)

    @property
    def num_classes(self) -> int:
        return len(self.labels)
