"""The serve config's `antenna:` block and `trapline antenna work`'s options: trapline as an Antenna processing service
(validated here, without Ray or serve/antenna/, as jobs_config.py is for `jobs:`)."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ground.env import ANTENNA_SECRET
from ground.errors import ArchiveError, TilingConfigError
from ground.fetch_guard import FetchGuard
from model_store.core.tiling import check_tiling_option
from model_store.tables.archive import PathPattern

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AntennaPipelineConfig(_Strict):
    """One pipeline Antenna can run: a served detector and, optionally, one of its classifiers."""

    slug: str = Field(..., pattern=SLUG_PATTERN, description=(
        "the pipeline's slug in Antenna, before the detector's version (`SLUG-vN` is what /info lists: Antenna "
        "allows one detection algorithm per pipeline, so a promoted detector is a new pipeline)"))
    name: str | None = Field(None, min_length=1, description="shown in Antenna (default: the slug)")
    description: str = ""
    detector: str = Field(..., min_length=1, description="a model of the serve config's `models`")
    classifier: str | None = Field(None, min_length=1, description=(
        "a classifier the detector routes to (its `classify`); its labels become the algorithm's category map"))
    tiling: bool | Literal["on", "off", "megadetector"] | dict[str, Any] | None = Field(None, description=(
        "tiled inference for this pipeline's images, as a /v1/detect request's `tiling` (docs/guide/tiling.md): "
        "true / \"on\" (the detector's tiling or the defaults), false / \"off\" (plain even if the detector "
        "tiles), \"megadetector\" (MegaDetector's run_tiled_inference settings) or an object of settings over the "
        "detector's; default: the detector's own (its config.json `tiling`)"))

    @field_validator("tiling")
    @classmethod
    def _tiling(cls, value: Any) -> Any:
        try:  # the settings themselves; whether a tile fits the detector's input is checked per image, typed
            check_tiling_option(value)
        except TilingConfigError as exc:
            raise ValueError(exc.message) from None
        return value


class FetchConfig(_Strict):
    """How the images Antenna names by URL are fetched, and from where (ground/fetch_guard.py: http(s) only,
    every address of every hop checked, nothing sent to a refused one)."""

    allowed_hosts: list[str] | None = Field(None, description=(
        "the hosts images may be fetched from (exact names, `*.example.org` for its subdomains); default: the host "
        "of `antenna.api` when it is set, else any host whose addresses are all public"))
    private_hosts: list[str] = Field(default_factory=list, description=(
        "hosts, by name as URLs write them, that may resolve to loopback, private or link-local addresses (an "
        "Antenna or its media store on the same machine or network: `127.0.0.1`, `minio`); allowed hosts too. Any "
        "other host resolving to such an address is refused"))
    timeout_s: float = Field(20.0, gt=0.0, le=600.0, description="connect + read timeout per image")
    max_bytes: int = Field(32 * 1024 * 1024, ge=1, description="larger images are a per-image error")
    concurrency: int = Field(8, ge=1, le=256, description="images fetched at once per request")


# An Antenna capture's URL as its uploads lay them out (`.../<deployment>/<YYYYmmddHHMMSS>-snapshot.jpg`): the
# directory holding the file is the camera, a time in the file's name is the capture time.
DEFAULT_URL_PATTERN = (r"(?P<camera>[^/]+)/[^/]*?(?P<timestamp>\d{8}[-_T]?\d{6}|\d{4}-\d{2}-\d{2}[T _]\d{2}[-:]?"
                       r"\d{2}[-:]?\d{2})[^/]*$")


class AntennaRecordConfig(_Strict):
    """Also record what the door answers Antenna (push and pull) in the tables of the serve config's `record:`,
    through the same recorder as `POST /v1/images`: one row per image URL and detector version, the URL as the
    source (the bytes stay where Antenna keeps them: nothing is copied into the archive)."""

    path_pattern: str = Field(DEFAULT_URL_PATTERN, min_length=1, description=(
        "a regex searched in the image URL's path, as `trapline reprocess --path-pattern`: its `camera` group names "
        "the camera (default: the directory holding the file, Antenna's deployment for its uploads), its "
        "`timestamp` (or year/month/day...) group the capture time; without one, EXIF, else the time received"))
    time_format: str | None = Field(None, description="strptime format of the `timestamp` group (default: common "
                                                      "layouts such as 20240501101500 or 2024-05-01T10:15:00)")

    @model_validator(mode="after")
    def _pattern(self) -> AntennaRecordConfig:
        try:  # the archive's own rules for a path pattern (groups, dates), with its messages
            PathPattern(self.path_pattern, self.time_format)
        except ArchiveError as exc:
            raise ValueError(str(exc).replace("--path-pattern", "path_pattern")) from None
        return self

    def pattern(self) -> PathPattern:
        return PathPattern(self.path_pattern, self.time_format)


def _host_of(url: str | None) -> str | None:
    return urlsplit(url).hostname if url else None


class AntennaConfig(_Strict):
    """Serve Antenna's processing-service API (`/livez`, `/readyz`, `/info`, `/process`) at the root of a port of
    its own (Antenna joins `/process` to the registered URL's root, dropping any path)."""

    host: str = Field("127.0.0.1", description=(
        "bind address of the Antenna door; 127.0.0.1 (the default, as the main door's) keeps it on this machine"))
    port: int = Field(8001, ge=1, le=65535, description="its port (not Serve's HTTP port)")
    secret_env: str | None = Field(None, description=(
        "env var (or NAME_FILE) holding a shared secret the door then requires on every route but /livez and "
        "/readyz: `Authorization: Basic` with it as the password (what Antenna sends for an endpoint_url "
        "`http://antenna:SECRET@HOST:PORT`) or `Authorization: Bearer SECRET` (`trapline antenna work` reads it "
        "from --service-secret-env); when named it must be set. Unset: the door answers whoever reaches its port"))
    name: str = Field("trapline", min_length=1, description="the processing service's name in /info")
    description: str = "trapline: versioned camera-trap detectors and classifiers on Ray Serve"
    pipelines: list[AntennaPipelineConfig] = Field(..., min_length=1)
    api: str | None = Field(None, pattern=r"^https?://", description=(
        "the Antenna API this door serves (e.g. https://antenna.example/api/v2), when known: its host is then the "
        "one images are fetched from unless `fetch.allowed_hosts` says otherwise"))
    fetch: FetchConfig = FetchConfig()
    push_failures: Literal["answer_rest", "fail_request"] = Field("answer_rest", description=(
        "push mode, a request in which some images fail and others are answered: `answer_rest` answers the others "
        "(the failed ones are left unprocessed, named in `errors`, which Antenna does not show); `fail_request` "
        "answers the whole request with the error naming each failed image, which Antenna logs in the job's log and "
        "counts (all of the request's images failed, the good ones' results not saved). A request in which every "
        "image fails is answered with that error either way"))
    ready_timeout_s: float = Field(4.0, gt=0.0, le=60.0, description=(
        "how long /readyz asks the replicas before answering (Antenna's /info limit is 6 s)"))
    record: AntennaRecordConfig | None = Field(None, description=(
        "also write what was answered to trapline's tables (those of the serve config's `record:`, which must be "
        "set), recorded like uploads, exactly once per image URL and detector version, so `trapline report`, "
        "exports and occurrences cover Antenna's captures; `{}` takes the defaults; null: not recorded"))

    @field_validator("pipelines")
    @classmethod
    def _unique(cls, pipelines: list[AntennaPipelineConfig]) -> list[AntennaPipelineConfig]:
        slugs = [p.slug for p in pipelines]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"each pipeline slug may appear once, got {slugs!r}")
        return pipelines

    def pipeline(self, slug: str) -> AntennaPipelineConfig | None:
        return next((p for p in self.pipelines if p.slug == slug), None)

    def fetch_guard(self) -> FetchGuard:
        """Where this door (and the console, for the captures it recorded) may fetch images."""
        allowed = self.fetch.allowed_hosts
        if allowed is None and self.api:
            allowed = [_host_of(self.api) or ""]
        return FetchGuard.of(allowed, self.fetch.private_hosts)


def fetch_guard_of(antenna: AntennaConfig | None) -> FetchGuard:
    """The guard of the fetches a service makes for URLs it was sent or recorded: its Antenna door's, else the
    environment's (ground/fetch_guard.py `from_env`: public addresses only unless it names hosts)."""
    return antenna.fetch_guard() if antenna is not None else FetchGuard.from_env()


class AntennaWorkOptions(BaseModel):
    """`trapline antenna work`: pull mode. Registers the door's pipelines with an Antenna project, takes the
    project's async jobs' tasks in batches and answers them through the door of a running trapline service."""

    model_config = ConfigDict(extra="forbid")

    api: str = Field(..., pattern=r"^https?://", description="Antenna's API root, e.g. https://antenna.example/api/v2")
    project: int = Field(..., ge=1, description="the Antenna project to register the pipelines with")
    token: str | None = Field(None, description=(
        "Antenna API token (a superuser's at Antenna's current commit); default: the environment variable "
        "--token-env names, which keeps it out of a job's options"))
    token_env: str = Field("ANTENNA_TOKEN", description="where the token is read when --token is not given")
    service: str = Field("http://127.0.0.1:8001", pattern=r"^https?://", description=(
        "the trapline service's Antenna door (the serve config's antenna.host:port)"))
    service_secret_env: str = Field(ANTENNA_SECRET.name, description=(
        "where the door's shared secret (its config's antenna.secret_env) is read, sent to the door as "
        "`Authorization: Bearer`; nothing is sent while it is unset"))
    service_name: str = Field("trapline", min_length=1, description="the processing service's name in Antenna")
    batch_size: int | None = Field(None, ge=1, le=1024, description=(
        "tasks taken per request (default: what the door's detectors batch at once over all their replicas)"))
    streams: int = Field(2, ge=1, le=16, description=(
        "batches in flight at once: while one is detected, the next is taken and the last one's results posted"))
    poll_interval_s: float = Field(2.0, gt=0.0, le=300.0, description="wait between polls when there is no work")
    max_seconds: float | None = Field(None, gt=0.0, description="stop after this long (default: until SIGTERM)")
    exit_when_idle: bool = Field(False, description="stop once no job has work left (after one job or none)")
