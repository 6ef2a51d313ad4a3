"""The reprocess job's options: one pydantic model, filled from a config file and/or command-line flags.

Flags and file keys are the same names (`--rows-per-file` = `rows_per_file`); flags win. A YAML
or JSON file (`--config job.yaml`) suits cron and KubeRay RayJob specs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model_store import ModelRef
from model_store.imaging import DEFAULT_MAX_PIXELS

from .archive import DEFAULT_EXTENSIONS, ArchiveError, PathPattern
from .errors import BatchError


class OptionsError(BatchError):
    """Options that cannot run; the message names the option and quotes the bad value."""


def parse_when(value: Any, end_of_day: bool = False) -> dt.datetime | None:
    """A date or date-time; a bare date means its first (or, for --until, last) microsecond."""
    if value is None or isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        value = value.isoformat()
    text = str(value).strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = dt.datetime.fromisoformat(text)
        return day + dt.timedelta(days=1, microseconds=-1) if end_of_day else day
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected YYYY-MM-DD or an ISO date-time, got {value!r}") from None
    # Capture times are naive (camera clock); compare like with like.
    return when.astimezone(dt.timezone.utc).replace(tzinfo=None) if when.tzinfo else when


def parse_concurrency(value: Any) -> int | tuple[int, int] | None:
    if value is None or isinstance(value, int | tuple):
        return value
    if isinstance(value, list) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    text = str(value)
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if not m:
        raise ValueError(f"expected N or MIN-MAX, got {value!r}")
    return int(m.group(1)) if m.group(2) is None else (int(m.group(1)), int(m.group(2)))


class ReprocessOptions(BaseModel):
    """Options of `trapline reprocess` / `python -m batch.reprocess`."""

    model_config = ConfigDict(extra="forbid")

    archive: str = Field(..., min_length=1, description="image archive: a directory or s3://bucket/prefix")
    out: str = Field(..., min_length=1, description="destination of the tables: a directory or s3://bucket/prefix")
    model: str = Field(..., description="NAME, NAME:VERSION or NAME@ALIAS (a bare NAME means @production)")
    store: str | None = Field(None, description="model store root (default $TRAPLINE_MODEL_STORE or ./models)")
    via: Literal["actors", "serve"] = "actors"
    concurrency: int | tuple[int, int] | None = Field(
        None, description="inference actors: N or MIN-MAX (default: GPUs / --num-gpus, else CPUs / (2 x --num-cpus))")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per inference actor")
    num_cpus: float | None = Field(None, gt=0, description="CPUs per inference actor (default 1; serve: 0.25)")
    batch_size: int = Field(16, ge=1, le=1024, description="images per inference call")
    read_batch_size: int = Field(8, ge=1, le=1024, description="images per read/decode task batch")
    read_cpus: float = Field(0.5, gt=0, le=16, description="CPUs per read/decode task")
    rows_per_file: int = Field(1000, ge=1, le=1_000_000, description="images per Parquet part")
    select: Literal["all", "latest-per-camera"] = "all"
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int | None = Field(None, ge=1, description="process at most this many images this run")
    dry_run: bool = False
    path_pattern: str | None = Field(None, description="regex with named groups camera / timestamp / year..second")
    time_format: str | None = Field(None, description="strptime format of the pattern's `timestamp` group")
    extensions: list[str] = Field(default_factory=lambda: list(DEFAULT_EXTENSIONS))
    filters: dict[str, dict[str, Any] | None] | None = Field(
        None, description='post-processing filter overrides, e.g. {"min_size": {"min_area_fraction": 0.001}}')
    retry_failed: bool = False
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    address: str | None = Field(None, description="Ray cluster address (default $RAY_ADDRESS, else start local Ray)")
    serve_app: str = "trapline"
    progress_interval_s: float = Field(10.0, gt=0)
    progress_bars: bool | None = Field(None, description="Ray Data progress bars (default: when stderr is a terminal)")
    json_output: bool = Field(False, description="print the summary as JSON")

    @field_validator("since", mode="before")
    @classmethod
    def _since(cls, value: Any) -> Any:
        return parse_when(value)

    @field_validator("until", mode="before")
    @classmethod
    def _until(cls, value: Any) -> Any:
        return parse_when(value, end_of_day=True)

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any) -> Any:
        return parse_concurrency(value)

    @field_validator("concurrency")
    @classmethod
    def _concurrency_range(cls, value: Any) -> Any:
        lo, hi = value if isinstance(value, tuple) else (value, value) if value is not None else (1, 1)
        if lo < 1 or hi < lo:
            raise ValueError(f"concurrency must be >= 1 (MIN <= MAX), got {value!r}")
        return value

    @field_validator("extensions", mode="before")
    @classmethod
    def _extensions(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in re.split(r"[,\s]+", value) if v]
        return [v if v.startswith(".") else f".{v}" for v in value]

    @field_validator("filters", mode="before")
    @classmethod
    def _filters(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc}): {value!r}") from None
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        ModelRef.parse(value)  # InvalidRefError is a ValueError: reported with the field name
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> ReprocessOptions:
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")
        if self.path_pattern:
            try:
                PathPattern(self.path_pattern, self.time_format)
            except ArchiveError as exc:
                raise ValueError(str(exc)) from None
        if self.via == "serve" and self.num_gpus:
            raise ValueError("--num-gpus applies to --via actors; Serve replicas bring their own GPUs")
        return self

    @property
    def actor_cpus(self) -> float:
        return self.num_cpus if self.num_cpus is not None else (0.25 if self.via == "serve" else 1.0)

    @property
    def latest_per_camera(self) -> bool:
        return self.select == "latest-per-camera"

    @property
    def needs_capture_times(self) -> bool:
        return self.latest_per_camera or self.since is not None or self.until is not None


def add_reprocess_arguments(p: argparse.ArgumentParser) -> None:
    """The reprocess flags; defaults live in ReprocessOptions, so flags not given stay unset."""
    S = argparse.SUPPRESS  # noqa: N806 - a short alias
    p.add_argument("--config", default=S, help="YAML/JSON file with these options (flags override it)")
    p.add_argument("--archive", default=S, metavar="SRC", help="image archive: directory or s3://bucket/prefix")
    p.add_argument("--out", default=S, metavar="DST", help="where the tables go: directory or s3://bucket/prefix")
    p.add_argument("--model", default=S, metavar="REF", help="NAME:VERSION or NAME@ALIAS (NAME means @production)")
    p.add_argument("--store", default=S, help="model store root (default $TRAPLINE_MODEL_STORE or ./models)")
    p.add_argument("--via", choices=["actors", "serve"], default=S,
                   help="actors: a dedicated actor pool (default); serve: the live Serve deployment")
    p.add_argument("--concurrency", default=S, metavar="N|MIN-MAX", help="inference actors (default: automatic)")
    p.add_argument("--num-gpus", type=float, default=S, help="GPUs per inference actor (default 0)")
    p.add_argument("--num-cpus", type=float, default=S, help="CPUs per inference actor (default 1)")
    p.add_argument("--batch-size", type=int, default=S, help="images per inference call (default 16)")
    p.add_argument("--read-batch-size", type=int, default=S, help="images per read/decode batch (default 8)")
    p.add_argument("--read-cpus", type=float, default=S, help="CPUs per read/decode task (default 0.5)")
    p.add_argument("--rows-per-file", type=int, default=S, help="images per Parquet part (default 1000)")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--all", dest="select", action="store_const", const="all", default=S,
                     help="the full history (default)")
    sel.add_argument("--latest-per-camera", dest="select", action="store_const", const="latest-per-camera",
                     default=S, help="only the newest capture of each camera (quick backfill)")
    p.add_argument("--since", default=S, metavar="DATE", help="captured at or after (YYYY-MM-DD or ISO time)")
    p.add_argument("--until", default=S, metavar="DATE", help="captured at or before (a date includes that day)")
    p.add_argument("--limit", type=int, default=S, help="process at most N images this run")
    p.add_argument("--dry-run", action="store_true", default=S, help="show what would be done; write nothing")
    p.add_argument("--path-pattern", default=S, metavar="REGEX",
                   help="named groups camera, timestamp or year/month/day/hour/minute/second, "
                        r"e.g. '(?P<camera>[^/]+)/IMG_(?P<timestamp>\d{8}_\d{6})'")
    p.add_argument("--time-format", default=S, help="strptime format of the timestamp group (e.g. %%Y%%m%%d_%%H%%M%%S)")
    p.add_argument("--extensions", default=S, help=f"comma-separated (default {','.join(DEFAULT_EXTENSIONS)})")
    p.add_argument("--filters", default=S, metavar="JSON",
                   help='filter overrides, e.g. \'{"min_size": {"min_area_fraction": 0.001}}\'; {"name": null} removes')
    p.add_argument("--retry-failed", action="store_true", default=S, help="process files that failed before again")
    p.add_argument("--max-pixels", type=int, default=S, help="refuse images larger than this (default 50M)")
    p.add_argument("--address", default=S, help="Ray address (default $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--serve-app", default=S, help="Serve application name for --via serve (default trapline)")
    p.add_argument("--progress-interval", dest="progress_interval_s", type=float, default=S,
                   help="seconds between progress lines (default 10)")
    p.add_argument("--progress-bars", action=argparse.BooleanOptionalAction, default=S,
                   help="Ray Data progress bars (default: only on a terminal)")
    p.add_argument("--json", dest="json_output", action="store_true", default=S, help="print the summary as JSON")


def load_config_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise OptionsError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(p.read_text())  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise OptionsError(f"{path} is not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OptionsError(f"{path} must hold a mapping of options")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def options_from_args(args: argparse.Namespace) -> ReprocessOptions:
    """Merge the config file (if any) with the flags given, and validate."""
    given = {k: v for k, v in vars(args).items() if k not in ("func", "command", "config")}
    merged = {**(load_config_file(args.config) if getattr(args, "config", None) else {}), **given}
    try:
        return ReprocessOptions.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "options"
            flag = "--" + loc.replace("_", "-") if e["loc"] else loc
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "missing":
                problems.append(f"{flag} is required")
            else:
                problems.append(f"{flag}: {msg} (got {e.get('input')!r})" if e["loc"] else msg)
        raise OptionsError("invalid reprocess options: " + "; ".join(problems)) from None
