"""What every command over stored tables is told: which tables, which model version and result set, and
(for the commands that narrow) which cameras, capture window and image — one meaning everywhere
(tables/scope.py). The command models of refilter/, export/ and review/ derive from these; the CLI's
flags are generated from them (batch/flags.py) and the same models validate a job's options over HTTP."""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from batch.flags import FlagStyle
from batch.option_variants import fields_of, unwrap, variants_of
from ground.env import STORE_HELP
from ground.errors import OptionsError, ScopeError
from ground.problems import as_flag, describe, fields, problems
from model_store.core.species.geofence import CountryCode, RegionCode
from model_store.tables.scope import Scope


class LocationMark:
    """Marks an option that names a local path or an s3:// location (see `Location`)."""


@dataclass(frozen=True)
class ModelRefMark:
    """Marks an option that names a model version: `in_store` always (a version to run), else only when the tables
    cannot say (an alias, or a bare name); a NAME:VERSION of stored tables may be gone from the store."""

    in_store: bool


# An option naming a place to read or write: the jobs' door confines every such field to its allowed roots and
# buckets (batch/jobs/paths.py), found from the type, so a new path option cannot be left out of the check.
Location = Annotated[str, LocationMark()]
# Options naming a model version: the jobs' door looks them up in the store before anything is submitted.
StoreRef = Annotated[str, ModelRefMark(in_store=True)]
TablesRef = Annotated[str, ModelRefMark(in_store=False)]
# The two places most commands are told, each declared (and described) once: a command's model names the type,
# `tables: TablesLocation` (required) or `store: StoreRoot = None`.
TABLES_HELP = "the tables: a directory or s3://bucket/prefix (a reprocess --out or serve --tables location)"
TablesLocation = Annotated[Location, Field(description=TABLES_HELP)]
StoreRoot = Annotated[Location | None, Field(description=STORE_HELP)]


def marked_fields(model: type[BaseModel], mark: type) -> dict[str, Any]:
    """The fields of `model` (of any of its variants) whose type carries a `mark` instance (also under `| None`),
    with that instance."""
    def find(annotation: Any) -> Any:
        for m in getattr(annotation, "__metadata__", ()):
            if isinstance(m, mark):
                return m
        return next((f for f in map(find, typing.get_args(annotation)) if f is not None), None)

    found = {name: next((m for m in info.metadata if isinstance(m, mark)), None) or find(info.annotation)
             for name, info in fields_of(model).items()}
    return {name: m for name, m in found.items() if m is not None}


def location_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of `model` typed `Location` (or `Location | None`)."""
    return tuple(marked_fields(model, LocationMark))


class CommandOptions(BaseModel):
    """A command's validated options: unknown names are refused, every error names the field."""

    model_config = ConfigDict(extra="forbid")


class RunPlace(BaseModel):
    """Where a run's cameras stand, for the species_ensemble filter's geofence: written into that filter's
    `country` / `admin1_region` (its own fallback for an image whose deployment names no country, so the deployment
    still wins where it says: one path, model_store/core/filters/species.py)."""

    country: CountryCode | None = Field(None, description="ISO 3166-1 alpha-3 country of the cameras (e.g. DEU), "
                                                          "for the species_ensemble filter where an image's "
                                                          "deployment names none")
    admin1: RegionCode | None = Field(None, description="first-level region in --country (2 characters, e.g. the US "
                                                        "state CA), as SpeciesNet's geofence names them")

    def placed(self, config: dict[str, Any] | None) -> dict[str, Any]:
        """The species_ensemble's config with this run's place in it; a ValueError when the config says otherwise."""
        out = dict(config or {})
        for key, flag, value in (("country", "country", self.country), ("admin1_region", "admin1", self.admin1)):
            if value is None:
                continue
            given = out.get(key)
            if given is not None and str(given).upper() != value:
                raise ValueError(f"--{flag} {value} and the species_ensemble config's {key} {given!r} disagree")
            out[key] = value
        if out.get("admin1_region") and not out.get("country"):
            raise ValueError("--admin1 needs --country (the country the region is in)")
        return out

    @property
    def has_place(self) -> bool:
        return self.country is not None or self.admin1 is not None


class TableSetOptions(CommandOptions):
    tables: TablesLocation
    model: TablesRef | None = Field(None, description="NAME, NAME:VERSION or NAME@ALIAS (needed when several are "
                                                      "stored)")
    store: StoreRoot = None
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
        return Scope.of(self.cameras, self.since, self.until, getattr(self, "image", None),
                        getattr(self, "occurrences", None))


class CompactOptions(CommandOptions):
    """`trapline tables compact`: merge small parts (online recording writes one per flush) into large ones."""

    tables: TablesLocation
    target_rows: int = Field(100_000, ge=1, description="image rows per merged part")
    wait_s: float = Field(0.0, ge=0.0, description="wait this long for a running reprocess of a version to end "
                                                   "(else that version is left alone this time)")


class CheckOptions(CommandOptions):
    """`trapline tables check`: report duplicate or orphaned rows (reads only; exit 1 when any is found)."""

    tables: TablesLocation


class SetsOptions(CommandOptions):
    """`trapline tables sets`: every result set with what made it, its size and what refers to it (reads only)."""

    tables: TablesLocation
    model: str | None = Field(None, description="only this model: NAME or NAME:VERSION")
    store: StoreRoot = None  # for the aliases that serve a set


class RetireOptions(CommandOptions):
    """`trapline tables retire SET` / `unretire SET`: hide a result set from every reader, or show it again."""

    tables: TablesLocation
    result_set: str = Field(..., min_length=4, max_length=300, description=(
        "the set: its hash (or a unique prefix), optionally NAME:VERSION/HASH, as `trapline tables sets` lists it"))
    reason: str | None = Field(None, max_length=500, description="why (kept in the set's record)")
    undo: bool = Field(False, description="show a retired set again (as `trapline tables unretire`)")


class PurgeOptions(CommandOptions):
    """`trapline tables purge SET`: delete a result set's files (crash-safe; rerun to finish one that stopped)."""

    tables: TablesLocation
    result_set: str = Field(..., min_length=4, max_length=300, description=(
        "the set: its hash (or a unique prefix), optionally NAME:VERSION/HASH, as `trapline tables sets` lists it"))
    dry_run: bool = Field(False, description="say what would be deleted and what refers to it; delete nothing")
    move_decisions: bool = Field(False, description=(
        "people's identifications that point to the set are first recorded again on the set readers take (the "
        "originals revoked, both kept in the log); without it such a set is refused"))
    store: StoreRoot = None  # for the aliases that serve a set
    wait_s: float = Field(0.0, ge=0.0, description="wait this long for a running reprocess of the version to end")


SET_FLAGS = {"tables": FlagStyle(metavar="DST"),
             "cameras": FlagStyle(flags=("--camera",), metavar="CAMERA", repeatable=True)}


def parse_options(model: type[BaseModel], given: dict[str, Any], command: str,
                  flag_of: Callable[[str], str] = as_flag) -> Any:
    """Validate a command's options (CLI flags given, or a job's JSON) into `model` (for a model with variants, the
    chosen variant's options); OptionsError names every bad field as its flag and quotes the value
    (ground/problems.py: the one formatter of every door)."""
    try:
        return unwrap(model.model_validate(given))
    except ValidationError as exc:
        variants = variants_of(model)
        found = problems(exc, variants.key if variants else None)
        raise OptionsError(f"invalid {command} options: {describe(found, flag_of)}", fields=fields(found)) from None


def load_config_file(path: str) -> dict[str, Any]:
    """The options of a `--config FILE` (YAML, or JSON as YAML's subset), keys as field names (`rows-per-file` =
    `rows_per_file`); the flags given override them (batch/cli.py `options`, `trapline jobs submit`)."""
    p = Path(path)
    if not p.is_file():
        raise OptionsError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise OptionsError(f"{path} is not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OptionsError(f"{path} must hold a mapping of options")
    return {str(k).replace("-", "_"): v for k, v in data.items()}
