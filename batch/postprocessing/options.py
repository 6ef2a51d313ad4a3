"""The options of `trapline postprocess`, `events` and `crops`: one pydantic model each, from which the CLI's
flags are generated and against which a job's options are validated."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from batch.flags import FlagStyle
from batch.options import (
    SET_FLAGS,
    CommandOptions,
    RunPlace,
    ScopedOptions,
    TableSetOptions,
    TablesLocation,
    TablesRef,
)
from model_store import CropOptions
from model_store.core.filters import REGISTRY, FilterName, check_filter_config

DEFAULT_GAP_S = 60.0  # events: a gap longer than this between a camera's images starts a new one


class PostprocessOptions(ScopedOptions, RunPlace):
    filter: FilterName = Field(..., description="filter name (GET /v1/filters describes each): " + ", ".join(
        name + (" (table-level)" if f.table_level else " (on classifier scores)" if f.kind == "classification" else "")
        for name, f in REGISTRY.items()))
    config: dict[str, Any] | None = Field(None, description="the filter's config as JSON, e.g. "
                                                            "'{\"min_area_fraction\": 0.001}'")
    remove: bool = Field(False, description="take the filter out of the set")
    config_from: str | None = Field(None, description="take the filter's config from this model version's own "
                                                      "filters (NAME:VERSION or NAME@ALIAS), e.g. the version "
                                                      "`trapline models thresholds --publish` made")
    image: str | None = Field(None, description="only this image (its URI or archive-relative path)")
    occurrences: list[str] | None = Field(None, description="only the images of this occurrence (repeatable; its id "
                                                            "in the set read, as `trapline occurrences list` shows)")
    rows_per_file: int = Field(5000, ge=1, description="images per Parquet part")
    dry_run: bool = Field(False, description="report what would change; write nothing")
    progress_interval: float = Field(5.0, ge=0, description="seconds between progress lines")

    @field_validator("config", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc})") from None
            if not isinstance(value, dict):
                raise ValueError("must be a JSON object")
        return value

    @field_validator("config")
    @classmethod
    def _filter_config(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        """Parsed by the named filter's own config model here, at the door: a bad value is named
        (`config.min_score`) before anything runs."""
        if value is not None and info.data.get("filter") is not None:
            check_filter_config(info.data["filter"], value)
        return value

    @model_validator(mode="after")
    def _config_or_remove(self) -> PostprocessOptions:
        if (self.config is not None) + self.remove + (self.config_from is not None) != 1:
            raise ValueError("give the filter's --config (or --config-from a version whose config has it), or "
                             "--remove to take it out of the set (one of them)")
        if self.has_place:
            if self.filter != "species_ensemble" or self.remove:
                raise ValueError("--country / --admin1 place the cameras for the species_ensemble filter: give them "
                                 "with --filter species_ensemble --config ...")
            self.config = self.placed(self.config)
            check_filter_config(self.filter, self.config)
        return self


POSTPROCESS_FLAGS = {**SET_FLAGS, "config": FlagStyle(metavar="JSON"), "image": FlagStyle(metavar="URI"),
                     "occurrences": FlagStyle(flags=("--occurrence",), metavar="ID", repeatable=True)}


class EventsOptions(TableSetOptions):
    gap_s: float = Field(DEFAULT_GAP_S, gt=0, description="a gap longer than this many seconds between a camera's "
                                                           "images starts a new event")
    dry_run: bool = Field(False, description="count the events; write nothing")


class CropsOptions(ScopedOptions):
    image: str | None = Field(None, description="only this image (its URI or archive-relative path)")
    crop_padding: float = Field(0.0, description="grow each box by this fraction per side")
    crop_square: bool = Field(False, description="make the snips square")
    crop_min_size: int = Field(0, description="none for boxes whose shorter side is under this (px)")
    progress_interval: float = Field(5.0, ge=0, description="seconds between progress lines")

    @model_validator(mode="after")
    def _crop_options(self) -> CropsOptions:
        self.crop_options()  # CropOptions' own bounds, named by their flags
        return self

    def crop_options(self) -> CropOptions:
        return CropOptions(padding=self.crop_padding, square=self.crop_square, min_side_px=self.crop_min_size)


CROPS_FLAGS = {**SET_FLAGS, "image": FlagStyle(metavar="URI")}


# -- `trapline occurrences review | split | merge | move` (batch/postprocessing/occurrence_fixes.py) ------------------
class OccurrenceSetOptions(CommandOptions):
    tables: TablesLocation
    model: TablesRef | None = Field(None, description="NAME or NAME:VERSION when the tables hold several")
    filters_hash: str | None = Field(None, description="the result set (default: the newest with occurrences)")


class OccurrenceReviewOptions(OccurrenceSetOptions):
    below: float = Field(1.0, ge=0, le=1, description="link confidence under this")
    limit: int = Field(20, ge=1, description="how many to list")


class OccurrenceFixOptions(OccurrenceSetOptions):
    occurrence: str = Field(..., min_length=1, description="the occurrence id")
    who: str = Field("cli", min_length=1, description="the person deciding, as the log keeps it")
    comment: str | None = Field(None, description="why (kept with the decision)")


class SplitOptions(OccurrenceFixOptions):
    frame: int = Field(..., ge=0, description="this frame (0-based in time order, as `review` shows them) and the "
                                              "later ones are another animal")


class MergeOptions(OccurrenceFixOptions):
    other: str = Field(..., min_length=1, description="the occurrence that is the same animal")


class MoveOptions(OccurrenceFixOptions):
    frame: int = Field(..., ge=0, description="the frame whose detection moves (0-based in time order)")
    to: str = Field(..., min_length=1, description="the occurrence the detection belongs to")


OCCURRENCE_FLAGS = {"tables": FlagStyle(metavar="DST"), "occurrence": FlagStyle(positional=True, metavar="OCC"),
                    "other": FlagStyle(positional=True, metavar="OTHER"), "frame": FlagStyle(metavar="N"),
                    "to": FlagStyle(metavar="OTHER")}
