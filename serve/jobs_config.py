"""The serve config's `jobs:` block and a model's `on_promote:` policy (validated here, without batch/)."""

from __future__ import annotations

import os
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from model_store.core.refs import check_segment


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PictureSource(_Strict):
    """Tables whose pictures the console shows (besides the recording's and each on_promote backfill's), with the
    archive their images were read from: only files under these two are ever served."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="shown in the console")
    tables: str = Field(..., min_length=1, description="a reprocess --out directory")
    archive: str = Field(..., min_length=1, description="the archive directory its images were read from")


class JobsConfig(_Strict):
    """Jobs over HTTP (`/v1/jobs`): where they may read and write, and how they are started."""

    enabled: bool = Field(True, description="serve /v1/jobs and /v1/postprocess/preview")
    address: str | None = Field(None, description=(
        "Ray's job server (the dashboard's HTTP address, e.g. http://127.0.0.1:8265); default: the cluster the "
        "service runs on"))
    roots: list[str] = Field(default_factory=list, description=(
        "local directories a job's paths may lie under, besides the service's working directory (relative ones "
        "are resolved where the app is built)"))
    working_dir_allowed: bool = Field(True, description="the service's working directory is an allowed root")
    s3_buckets: list[str] = Field(default_factory=list, description="s3:// buckets a job's locations may name")
    working_dir: str | None = Field(None, description=(
        "relative paths in a job's options are relative to this (default: where the app is built)"))
    python: str | None = Field(None, description=(
        "the Python that runs a job's fixed entry point (default: the one the app is built with, i.e. the cluster's)"))
    entrypoint_num_cpus: float = Field(0.0, ge=0.0, description="CPUs reserved for a job's driver process")
    promote_poll_s: float = Field(2.0, gt=0.0, description=(
        "how often the service looks for moved aliases of models with an on_promote policy"))
    pictures: list[PictureSource] = Field(default_factory=list, description=(
        "tables (and their archives) the console's Cameras and Captures pages show, besides the recording's"))

    @field_validator("s3_buckets")
    @classmethod
    def _buckets(cls, values: list[str]) -> list[str]:
        return [v.removeprefix("s3://").strip("/") for v in values]

    def resolved(self, working_dir: str | None = None) -> JobsConfig:
        """Roots made absolute where the app is built (the replicas' working directory is another one)."""
        cwd = os.path.realpath(self.working_dir or working_dir or os.getcwd())
        roots = [os.path.realpath(os.path.join(cwd, r)) for r in self.roots]
        if self.working_dir_allowed:
            roots.append(os.path.realpath(cwd))
        pictures = [p.model_copy(update={"tables": _abs(cwd, p.tables), "archive": _abs(cwd, p.archive)})
                    for p in self.pictures]
        return self.model_copy(update={"roots": list(dict.fromkeys(roots)), "working_dir_allowed": False,
                                       "pictures": pictures,
                                       "working_dir": cwd, "python": self.python or sys.executable})


def _abs(cwd: str, location: str) -> str:
    return location if "://" in location else os.path.realpath(os.path.join(cwd, location))


class OnPromote(_Strict):
    """What the service starts when the model's alias moves to a version: once per version."""

    alias: str | None = Field(None, description="the alias to watch (default: the model's first served alias)")
    reprocess: dict[str, Any] = Field(..., description=(
        "the reprocess job's options (archive, out, ...; `model` is the promoted version), as `trapline "
        "reprocess` takes them"))

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        return check_segment("alias", value) if value is not None else None

    @field_validator("reprocess")
    @classmethod
    def _no_model(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "model" in value:
            raise ValueError("on_promote.reprocess must not name a model: the promoted version is the model")
        if not value.get("archive") or not value.get("out"):
            raise ValueError("on_promote.reprocess needs archive and out")
        return value
