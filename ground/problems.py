"""One reading of a pydantic `ValidationError` for every door: each problem names its field path and quotes the
bad value, the same for `POST /v1/jobs` (the 422's message and `fields`), the CLI (its flags) and the console (which
shows the 422 it gets).

A problem's `field` is the dotted path into the options ("config.min_score", "filters.score.min_score"); the
message names the top-level option as its flag when the door has flags (`--config: min_score: ...`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    """One bad value: where (`path`, empty for a cross-field check), what is wrong, and what was given."""

    path: tuple[str, ...]
    message: str
    value: Any = None
    missing: bool = False

    @property
    def field(self) -> str:
        return ".".join(self.path)

    def describe(self, flag_of: Callable[[str], str] | None = None) -> str:
        """`FIELD: message (got VALUE)`; with `flag_of`, the top-level field as its flag (`--batch-size`)."""
        if not self.path:
            return self.message
        head = flag_of(self.path[0]) if flag_of else self.path[0]
        where = head + "".join(f": {p}" for p in self.path[1:]) if flag_of else self.field
        if self.missing:
            return f"{where} is required"
        return f"{where}: {self.message} (got {self.value!r})"


def problems(exc: ValidationError | Any, key: str | None = None) -> list[Problem]:
    """The problems of `exc` (a pydantic ValidationError, or FastAPI's RequestValidationError: the same errors).

    `key`: the errors are a discriminated union's, keyed by this option (export's `format`, batch/option_variants.py).
    Pydantic starts each path with the chosen variant's value; that is taken off, an option the variant does not
    have is named with the variant ("format coco has no such option"), and a missing or unknown value is the key's."""
    out = []
    for e in exc.errors():
        path = tuple(str(p) for p in e["loc"] if p != "[key]")  # a bad dict key: the key is the path
        message, value, missing = str(e["msg"]).removeprefix("Value error, "), e.get("input"), e["type"] == "missing"
        if key is not None and e["type"] in ("union_tag_not_found", "union_tag_invalid"):
            ctx = e.get("ctx", {})
            path, missing = (key,), e["type"] == "union_tag_not_found"
            message, value = f"Input should be one of {ctx.get('expected_tags', '')}", ctx.get("tag")
        elif key is not None and path:
            variant, path = path[0], path[1:]
            if e["type"] == "extra_forbidden":
                message = f"{key} {variant} has no such option"
        out.append(Problem(path, message, value, missing))
    return out


def as_flag(field: str) -> str:
    """A field as the CLI's default flag name (batch/flags.py): `batch_size` -> `--batch-size`."""
    return "--" + field.replace("_", "-")


def describe(found: Iterable[Problem], flag_of: Callable[[str], str] | None = None) -> str:
    """Every problem, `; `-separated (see `Problem.describe`)."""
    return "; ".join(p.describe(flag_of) for p in found)


def fields(found: Iterable[Problem], default: str = "options") -> list[str]:
    """The field paths named, sorted, once each (`default` when only cross-field checks failed)."""
    return sorted({p.field for p in found if p.path}) or [default]
