"""What every command over stored tables is told: which tables, which model version and result set, and
(for the commands that narrow) which cameras, capture window and image — one meaning everywhere
(tables/scope.py). The command models of refilter/, export/ and review/ derive from these; the CLI's
flags are generated from them (batch/flags.py) and the same models validate a job's options over HTTP."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from batch.flags import FlagStyle
from model_store.tables.scope import Scope
from trapline.errors import OptionsError, ScopeError


class CommandOptions(BaseModel):
    """A command's validated options: unknown names are refused, every error names the field."""

    model_config = ConfigDict(extra="forbid")


class TableSetOptions(CommandOptions):
    tables: str = Field(..., description="the reprocess --out location")
    model: str | None = Field(None, description="NAME, NAME:VERSION or NAME@ALIAS (needed when several are stored)")
    store: str | None = Field(None, description="model store root, to resolve NAME@ALIAS")
    filters_hash: str | None = Field(None, description="the filter set (default: the newest)")


class ScopedOptions(TableSetOptions):
    cameras: list[str] | None = Field(None, description="only this camera (repeatable)")
    since: str | None = Field(None, description="captured at or after (YYYY-MM-DD or ISO time)")
    until: str | None = Field(None, description="captured at or before (a date includes that day)")

    @model_validator(mode="after")
    def _scope(self) -> ScopedOptions:
        try:
            self.scope()
        except ScopeError as exc:
            raise ValueError(str(exc)) from None
        return self

    def scope(self) -> Scope:
        return Scope.of(self.cameras, self.since, self.until, getattr(self, "image", None))


class CompactOptions(CommandOptions):
    """`trapline tables compact`: merge small parts (online recording writes one per flush) into large ones."""

    tables: str = Field(..., description="the tables to compact (a reprocess --out or serve --tables location)")
    target_rows: int = Field(100_000, ge=1, description="image rows per merged part")
    wait_s: float = Field(0.0, ge=0.0, description="wait this long for a running reprocess of a version to end "
                                                   "(else that version is left alone this time)")


class CheckOptions(CommandOptions):
    """`trapline tables check`: report duplicate or orphaned rows (reads only; exit 1 when any is found)."""

    tables: str = Field(..., description="the tables to check")


SET_FLAGS = {"tables": FlagStyle(metavar="DST"),
             "cameras": FlagStyle(flags=("--camera",), metavar="CAMERA", repeatable=True)}


def parse_options(model: type[BaseModel], given: dict[str, Any], command: str) -> Any:
    """Validate a command's options (CLI flags given, or a job's JSON) into `model`; OptionsError names every
    bad field as its flag and quotes the value."""
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise OptionsError(f"invalid {command} options: " + "; ".join(describe_problems(exc))) from None


def describe_problems(exc: ValidationError) -> list[str]:
    problems = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "options"
        flag = "--" + loc.replace("_", "-") if e["loc"] else loc
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            problems.append(f"{flag} is required")
        else:
            problems.append(f"{flag}: {msg} (got {e.get('input')!r})" if e["loc"] else msg)
    return problems
