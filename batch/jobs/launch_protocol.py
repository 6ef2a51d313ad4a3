"""Response models of the job forms' routes (batch/jobs/launch.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class VariantsOut(BaseModel):
    key: str = Field(description="the option that picks the variant (export: format)")
    options: dict[str, list[str]] = Field(description="per value of the key, the options its variant takes")


class JobKindOut(BaseModel):
    name: str
    help: str = Field(description="what the command does, in one line")
    paths: list[str] = Field(description="options that name a location (picked from GET /v1/locations)")
    required: list[str]
    options_schema: dict[str, Any] = Field(description="JSON Schema of the options POST /v1/jobs accepts for it "
                                                       "(with variants: every variant's options once)")
    preview: bool = Field(description="the kind has a dry run: the console runs it first and shows what it would do")
    main: list[str] = Field(description="options shown first in a form (the rest under 'more options')")
    resumes: bool = Field(description="a rerun of a stopped or failed job picks up where it ended")
    variants: VariantsOut | None = Field(None, description="a kind whose options depend on one of them (export's "
                                                           "format): the form shows the chosen variant's only")


class JobKindsOut(BaseModel):
    kinds: list[JobKindOut]


class Location(BaseModel):
    path: str
    kind: Literal["archive", "tables", "directory"]
    images: int | None = Field(None, description="picture files seen directly under it or one level down (bounded)")
    models: list[str] | None = Field(None, description="tables: the model versions (NAME:VERSION) they hold")


class LocationsOut(BaseModel):
    roots: list[str]
    locations: list[Location]
    truncated: bool
