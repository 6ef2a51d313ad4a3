"""`ModelRef`: the one parser for "name", "name:version" and "name@alias"."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ground.errors import InvalidRefError

# Names, versions and aliases become path segments (local or S3 keys), so the pattern forbids
# separators, "..", leading dots and anything a shell or URL would treat specially.
SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_ALIAS = "production"


def check_segment(kind: str, value: str) -> str:
    """Return `value` if it is a safe name/version/alias, else raise InvalidRefError."""
    if not isinstance(value, str) or not SAFE_SEGMENT.match(value) or ".." in value:
        raise InvalidRefError(
            f"invalid {kind} {value!r}: use 1-64 characters from A-Z a-z 0-9 _ . -, "
            "starting with a letter or digit, with no '..' (path separators are never allowed)"
        )
    return value


@dataclass(frozen=True)
class ModelRef:
    """A reference to one model: a pinned version, an alias, or neither (the default alias)."""

    name: str
    version: str | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        check_segment("model name", self.name)
        if self.version is not None and self.alias is not None:
            raise InvalidRefError("give a version or an alias, not both")
        if self.version is not None:
            check_segment("version", self.version)
        if self.alias is not None:
            check_segment("alias", self.alias)

    @classmethod
    def parse(cls, text: str, default_alias: str | None = None) -> ModelRef:
        """Parse "name", "name:version" or "name@alias"."""
        if not isinstance(text, str) or not text:
            raise InvalidRefError("empty model reference; expected NAME, NAME:VERSION or NAME@ALIAS")
        if ":" in text and "@" in text:
            raise InvalidRefError(f"invalid model reference {text!r}: use NAME:VERSION or NAME@ALIAS")
        if ":" in text:
            name, _, version = text.partition(":")
            return cls(name, version=version)
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(name, alias=alias)
        return cls(text, alias=default_alias)

    @property
    def is_pinned(self) -> bool:
        """True when the reference names an exact version."""
        return self.version is not None

    def pinned(self, version: str) -> ModelRef:
        """The same model at an exact version."""
        return ModelRef(self.name, version=version)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
