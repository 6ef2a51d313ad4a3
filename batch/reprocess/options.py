"""The reprocess job's options: one pydantic model, filled from a config file and/or command-line flags by the
registry's `reprocess` command (batch/commands.py; its parser and `--config` merge: batch/cli.py).

Flags and file keys are the same names (`--rows-per-file` = `rows_per_file`); flags win. A YAML
or JSON file (`--config job.yaml`) suits cron and KubeRay RayJob specs.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from batch.flags import FlagStyle
from batch.options import Location, RunPlace, StoreRef, StoreRoot
from model_store import CropOptions, ModelRef
from model_store.core.clip_counting import ClipCountConfig
from model_store.core.clip_sampling import DEFAULT_MAX_FRAMES, Sampling
from model_store.core.clip_settings import ClipSettings
from model_store.core.filters import FilterName, check_filter_config
from model_store.core.filters.track_config import TrackConfig
from model_store.core.imaging import DEFAULT_MAX_PIXELS
from model_store.core.tiling import check_tiling_option, parse_tiling_option
from model_store.core.video import VIDEO_EXTENSIONS
from model_store.tables.archive import DEFAULT_EXTENSIONS, ArchiveError, PathPattern
from model_store.tables.scope import parse_when


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


class ReprocessOptions(RunPlace):
    """Options of `trapline reprocess` (also run as `python -m batch.reprocess`)."""

    model_config = ConfigDict(extra="forbid")

    archive: Location = Field(..., min_length=1, description="image archive: a directory or s3://bucket/prefix")
    out: Location = Field(..., min_length=1, description="destination of the tables: a directory or s3://bucket/prefix")
    model: StoreRef = Field(..., description="NAME, NAME:VERSION or NAME@ALIAS (a bare NAME means @production)")
    store: StoreRoot = None
    via: Literal["auto", "actors", "serve"] = Field(
        "auto", description="auto: the live Serve deployment when a running service serves this model version "
                            "(a `trapline serve` on this machine, or the Serve app on the --address cluster), else "
                            "a dedicated actor pool; actors: always the pool; serve: always the deployment")
    concurrency: int | tuple[int, int] | None = Field(
        None, description="inference actors: N or MIN-MAX")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per inference actor")
    num_cpus: float | None = Field(None, gt=0, description="CPUs per inference actor")
    batch_size: int = Field(16, ge=1, le=1024, description="images per inference call")
    read_batch_size: int = Field(8, ge=1, le=1024, description="images per read/decode task batch")
    read_cpus: float = Field(0.5, gt=0, le=16, description="CPUs per read/decode task")
    decode: Literal["actors", "tasks"] = Field(
        "actors", description="where images are decoded and letterboxed: in the inference actors (the encoded "
                              "bytes travel, the least copying) or in the read tasks (many CPUs feeding few GPUs)")
    executor: Literal["data", "pool"] = Field(
        "pool", description="what drives a --via actors run's inference actors: a plain pool the job starts itself "
                            "(no Ray Data start-up: its first part seconds sooner on a few cores; an actor that dies "
                            "is replaced, 3 times a run), or a Ray Data plan (an actor that dies is restarted by Ray "
                            "Data). Runs with --decode tasks, --classify or --crops, and MIN-MAX pools, use the plan")
    rows_per_file: int = Field(1000, ge=1, le=1_000_000, description="images per Parquet part")
    select: Literal["all", "latest-per-camera"] = Field(
        "all", description="which images: the full history, or only the newest capture of each camera")
    since: dt.datetime | None = Field(None, description="captured at or after (YYYY-MM-DD or ISO time)")
    until: dt.datetime | None = Field(None, description="captured at or before (a date includes that day)")
    limit: int | None = Field(None, ge=1, description="process at most this many images this run")
    dry_run: bool = Field(False, description="show what would be done (found / done / to process); write nothing")
    path_pattern: str | None = Field(None, description="regex with named groups camera / timestamp / year..second")
    time_format: str | None = Field(None, description="strptime format of the pattern's `timestamp` group")
    extensions: list[str] = Field(default_factory=lambda: [*DEFAULT_EXTENSIONS, *VIDEO_EXTENSIONS],
                                  description="image and clip file extensions, comma-separated")
    filters: dict[FilterName, dict[str, Any] | None] | None = Field(
        None, description='post-processing filter overrides, e.g. {"min_size": {"min_area_fraction": 0.001}}')
    classify: list[str] = Field(default_factory=list, description=(
        "a classifier for the kept detections, REF or REF=LABEL,LABEL (the detector labels routed to it; default: "
        "the classifier's applies_to); repeatable"))
    classify_cpus: float = Field(0.5, gt=0, le=64, description="CPUs per crop/classify actor")
    crops: bool = Field(False, description="write a JPEG snip of every kept detection under DST/crops/")
    crop_padding: float = Field(0.0, ge=0, le=2, description="snips: grow each box by this fraction per side")
    crop_square: bool = Field(False, description="snips: make them square")
    crop_min_size: int = Field(0, ge=0, description="snips: none for boxes whose shorter side is under this (px)")
    retry_failed: bool = Field(False, description="process files that failed before again")
    redo: bool = Field(False, description=(
        "make a new result set for this model version and filters even where one exists (after a fix in trapline's "
        "core: `trapline tables sets` shows what made each set); readers keep the old set until the new one is whole, "
        "and --redo again resumes a redo that stopped"))
    reason: str | None = Field(None, max_length=500, description="why (--redo): kept in the new set's record")
    redo_if_core_older_than: int | None = Field(None, ge=1, description=(
        "as --redo, only when the current set holds rows a detector core older than this version made "
        "(model_store/core/provenance.py CORE_VERSION; `trapline tables sets` lists each set's)"))
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description="refuse images with more pixels than this")
    video_sampling: str | None = Field(None, description=(
        "clips: which frames go through the detector: '1s' (one every N seconds), '5f' (every Nth frame) or "
        "'all'; default the model's `video_sampling`, else 1s"))
    video_max_frames: int = Field(DEFAULT_MAX_FRAMES, ge=1, description=(
        "clips: a clip whose sampling takes more frames than this is a failed row (too_long)"))
    clip_counting: dict[str, Any] | None = Field(None, description=(
        'clips: fields of how tracks become a clip\'s count, over the model\'s `clip_counting`, e.g. '
        '{"duplicate_inside": 0.9, "still_motion": 0}'))
    clip_tracking: dict[str, Any] | None = Field(None, description=(
        'clips: fields of how a clip\'s frames are linked into tracks (the track filter\'s config), over the '
        'model\'s `clip_tracking`, e.g. {"max_cost": 0.4}'))
    tiling: str | dict[str, Any] | None = Field(None, description=(
        'tiled inference for small animals (docs/guide/tiling.md): on, off, megadetector (MegaDetector\'s '
        'run_tiled_inference), or settings over the model\'s `tiling`, e.g. {"overlap": 0.25, "merge": "nms"}; '
        'default the model\'s (none: one whole-image pass). A '
        'tiled run writes its own result set'))
    address: str | None = Field(None, description="Ray cluster address")
    serve_app: str = Field("trapline", description="Serve application name for --via serve")
    progress_interval_s: float = Field(10.0, gt=0, description="seconds between progress lines")
    stall_timeout_s: float = Field(1800.0, ge=0, description=(
        "fail the run with one line when no part has been committed for this long (e.g. the node of its inference "
        "actors was lost and no other node has room for them); its lease is released and a rerun resumes "
        "exactly once; 0: wait for ever"))
    wait_s: float = Field(0.0, ge=0, description="when another run holds this table for this model version: "
                                                   "wait up to this long for it to finish, else refuse")
    progress_bars: bool | None = Field(None, description="Ray Data progress bars (default: with -v, on a terminal)")

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

    @field_validator("video_sampling")
    @classmethod
    def _video_sampling(cls, value: str | None) -> str | None:
        if value is not None:
            Sampling.parse(value)  # a ValueError quoting the value, reported with the field name
        return value

    @field_validator("clip_counting", "clip_tracking")
    @classmethod
    def _clip_config(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        """Checked field by field by its config model: the door names `clip_counting.duplicate_inside`."""
        if value is not None:
            CLIP_CONFIGS[info.field_name].model_validate(value)  # its ValidationError's paths run into the field
        return value

    def counting(self, model_default: ClipCountConfig | None = None) -> ClipCountConfig:
        """How this run counts a clip's animals: --clip-counting's fields over the model's, over the defaults."""
        return _fields_over(ClipCountConfig, model_default, self.clip_counting)

    def tracking(self, model_default: TrackConfig | None = None) -> TrackConfig:
        """How this run links a clip's frames into tracks: --clip-tracking's fields over the model's, over the
        tracker's defaults."""
        return _fields_over(TrackConfig, model_default, self.clip_tracking)

    def sampling(self, model_default: str | None = None) -> Sampling:
        """The clips' sampling of this run: --video-sampling, else the model's default, else one frame a second."""
        return Sampling.parse(self.video_sampling or model_default or "1s", self.video_max_frames)

    def clip_settings(self, config: Any) -> ClipSettings:
        """All three for clips of a model (`config` its ModelConfig): what a clip row is made with, and stamped."""
        return ClipSettings(self.sampling(config.video_sampling), self.tracking(config.clip_tracking),
                            self.counting(config.clip_counting))

    @field_validator("filters", "clip_counting", "clip_tracking", mode="before")
    @classmethod
    def _json_objects(cls, value: Any) -> Any:
        return _json_object(value)

    @field_validator("tiling", mode="before")
    @classmethod
    def _tiling(cls, value: Any) -> Any:
        """on / off / megadetector / a JSON object of settings, each checked here (whether the tile fits the model:
        at plan)."""
        if isinstance(value, bool):
            value = "on" if value else "off"
        value = parse_tiling_option(value) if isinstance(value, str) else value
        if isinstance(value, dict):
            check_tiling_option(value)  # field by field: TilingConfigError names tiling.FIELD
        return value

    @field_validator("filters")
    @classmethod
    def _filter_overrides(cls, value: dict[str, dict[str, Any] | None] | None) -> Any:
        """Each override checked by its filter's config model (a required field may come from the model's own
        config, which the override is merged into): `filters.score.min_score` is named at the door."""
        for name, patch in (value or {}).items():
            if patch is not None:
                check_filter_config(name, patch, partial=True, at=(name,))
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
        if self.reason and not (self.redo or self.redo_if_core_older_than):
            raise ValueError("--reason goes with --redo or --redo-if-core-older-than")
        if self.via == "serve" and self.num_gpus:
            raise ValueError("--num-gpus applies to --via actors; Serve replicas bring their own GPUs")
        if self.has_place:
            if (self.filters or {}).get("species_ensemble") is None:
                raise ValueError("--country / --admin1 place the cameras for the species_ensemble filter: name it in "
                                 "--filters (e.g. '{\"species_ensemble\": {}}')")
            # into the filter's override, so every path of the run (actors, serve, the recorded filter set) has it
            self.filters = {**self.filters, "species_ensemble": self.placed(self.filters["species_ensemble"])}
        return self

    @field_validator("classify", mode="before")
    @classmethod
    def _classify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def uses_pool(self) -> bool:
        """Whether the inference actors run as the job's own pool (`executor: pool`) rather than a Ray Data plan."""
        return (self.executor == "pool" and self.via == "actors" and self.decode == "actors" and not self.has_stage
                and not isinstance(self.concurrency, tuple))  # a MIN-MAX pool is Ray Data's autoscaling

    @property
    def has_stage(self) -> bool:
        """Whether the run has a crop/classify stage after the detector."""
        return bool(self.classify) or self.crops

    @property
    def crop_options(self):
        return CropOptions(padding=self.crop_padding, square=self.crop_square, min_side_px=self.crop_min_size) \
            if self.crops else None

    @property
    def actor_cpus(self) -> float:
        return self.num_cpus if self.num_cpus is not None else (0.25 if self.via == "serve" else 1.0)

    @property
    def latest_per_camera(self) -> bool:
        return self.select == "latest-per-camera"

    @property
    def needs_capture_times(self) -> bool:
        return self.latest_per_camera or self.since is not None or self.until is not None


# How some fields read on the command line; everything else is `--field-name` with the field's
# description and default (batch/flags.py).
FLAG_STYLES = {
    "archive": FlagStyle(metavar="SRC"), "out": FlagStyle(metavar="DST"), "model": FlagStyle(metavar="REF"),
    "concurrency": FlagStyle(metavar="N|MIN-MAX",
                             default_text="automatic: GPUs / --num-gpus, else CPUs / (2 x --num-cpus)"),
    "num_cpus": FlagStyle(metavar="CPUS", default_text="1 with --via actors, 0.25 with --via serve"),
    "select": FlagStyle(switches={"all": ("--all", "the full history"),
                                  "latest-per-camera": ("--latest-per-camera",
                                                        "only the newest capture of each camera (quick backfill)")}),
    "since": FlagStyle(metavar="DATE"), "until": FlagStyle(metavar="DATE"),
    "path_pattern": FlagStyle(metavar="REGEX"), "filters": FlagStyle(metavar="JSON"),
    "clip_counting": FlagStyle(metavar="JSON"), "clip_tracking": FlagStyle(metavar="JSON"),
    "extensions": FlagStyle(metavar="EXT,EXT"), "video_sampling": FlagStyle(metavar="1s|5f|all"),
    "address": FlagStyle(default_text="$RAY_ADDRESS, else a local Ray"),
    "progress_interval_s": FlagStyle(flags=("--progress-interval",), metavar="SECONDS"),
    "wait_s": FlagStyle(flags=("--wait",), metavar="SECONDS"),
    "reason": FlagStyle(metavar="TEXT"), "redo_if_core_older_than": FlagStyle(metavar="VERSION"),
    "stall_timeout_s": FlagStyle(flags=("--stall-timeout",), metavar="SECONDS"),
    "classify": FlagStyle(metavar="CLS_REF[=LABEL,...]", repeatable=True),
}


CLIP_CONFIGS: dict[str, type[BaseModel]] = {"clip_counting": ClipCountConfig, "clip_tracking": TrackConfig}
C = TypeVar("C", bound=BaseModel)


def _fields_over(model: type[C], model_default: C | None, fields: dict[str, Any] | None) -> C:
    """A run's fields over a model's config (None: the defaults)."""
    base = model_default.model_dump() if model_default is not None else {}
    return model(**{**base, **(fields or {})})


def _json_object(value: Any) -> Any:
    """A flag's JSON text as the object it holds (a config file or an HTTP body gives the object itself)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc}): {value!r}") from None
    return value
