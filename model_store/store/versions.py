"""A published version and an alias's record, as the store reads them (no I/O here)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from model_store.core.backend_specs import CLASSIFIER_BACKENDS, IDENTIFIER_BACKENDS
from model_store.core.config import AnyConfig
from model_store.core.records import ModelInfo
from model_store.core.refs import ModelRef


def version_sort_key(version: str) -> tuple:
    """Natural order: "2" < "10", "1.2" < "1.10"; purely numeric parts sort before text."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[._-]", version))


@dataclass(frozen=True)
class ModelVersion:
    """One published version: its config and where it lives."""

    name: str
    version: str
    config: AnyConfig
    url: str

    @property
    def is_classifier(self) -> bool:
        return self.config.backend in CLASSIFIER_BACKENDS

    @property
    def kind(self) -> str:
        """detector, classifier or identifier (from the config's backend)."""
        if self.config.backend in IDENTIFIER_BACKENDS:
            return "identifier"
        return "classifier" if self.is_classifier else "detector"

    @property
    def sha256(self) -> str:
        """The weights' sha256 (a keypoints identifier, which has none: its canonical config's)."""
        return self.config.sha256 if self.kind == "identifier" else self.config.weights.sha256

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, version=self.version, sha256=self.sha256)

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.name, version=self.version)


@dataclass(frozen=True)
class AliasRecord:
    """Where an alias points now, and the versions it pointed at before (oldest first)."""

    version: str
    history: tuple[str, ...] = ()
    updated_at: str = ""
