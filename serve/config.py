"""The typed serve config: which models to serve, how each deployment is sized and batched, HTTP limits.

One `ServeConfig` is the `args:` block of an application in a standard Ray Serve config file
(see serve.yaml) and the input of `build_app`. The per-model fields a replica can apply in
place (aliases, pins, batching knobs, poll interval, pixel cap) travel to the model deployment
as its `user_config`. Ray Serve treats a change of `args` as new code (a rolling restart of the
app's replicas); to retune a running model without restarting it, override its deployment's
`user_config` in the config file's `deployments:` section, which Serve applies by calling
`reconfigure` on the live replicas (see serve.yaml).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ground.env import STORE_HELP
from ground.errors import ServeConfigError
from model_store import CropOptions
from model_store.core.config import format_validation_error
from model_store.core.imaging import DEFAULT_MAX_PIXELS
from model_store.core.pipeline import ClassifierRoute
from model_store.core.refs import DEFAULT_ALIAS, check_segment
from serve.antenna_config import AntennaConfig
from serve.jobs_config import JobsConfig, OnPromote

# Slots a replica keeps beyond what it admits, so that a burst reaches the replica and is refused
# there (typed 503 + Retry-After, before its body is read) instead of waiting in Serve's router:
# once a replica is at max_ongoing_requests, the router's routing tasks (2 per replica) back off up
# to 0.5 s between tries, and a 3x burst on one replica then drains at ~4 requests/s (measured, see
# BENCHMARKS.md "Bursts"). Refusals return in milliseconds, so this many covers bursts of several
# hundred requests/s per replica; status and admin calls use them too.
REFUSAL_HEADROOM = 64
# CPUs the embedded default leaves free for an archive job sent through the deployment (`trapline reprocess`
# finds a running `trapline serve` by itself): its clients and its writer. Ray's CPUs are logical: this only
# decides how many of the job's tasks are placed at once, the replicas still get every core (DEFAULT_REPLICAS).
JOB_CPUS = 0.5
# The embedded default runs one replica per core (at most this many per detector), each one forward pass on one
# intra-op thread: on CPU, N single-thread sessions side by side run N images at a time at ~N x the rate of one
# (7.2 images/s for a YOLOv8s on 2 cores), where one session of N threads gains less (its threads meet at every
# layer; see BENCHMARKS.md, issue 34). An archive job through the service then runs at the machine's speed, as its
# own actor pool would, and an online request still runs on a core of its own (it goes ahead of archive images
# at every batch and stops a running archive batch: `preempt_bulk`). Above this many, replicas get more threads.
DEFAULT_REPLICAS = 4
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RuntimeFields(_Strict):
    """Per-model settings a running replica can change in place."""

    aliases: list[str] = Field(default_factory=lambda: [DEFAULT_ALIAS], min_length=1,
                               description="aliases to serve and hot-swap; the first is the default for requests")
    pinned_versions: list[str] = Field(default_factory=list,
                                       description="versions kept loaded for requests that pin `version=`")
    max_cached_versions: int = Field(1, ge=0, le=32, description=(
        "extra versions kept loaded (LRU) besides those served by an alias or pinned: versions requests pin, "
        "and the one an alias pointed at before a swap (so a rollback is instant); each costs (GPU) memory"))
    max_batch_size: int = Field(8, ge=1, le=512)
    batch_wait_timeout_s: float = Field(0.01, ge=0.0, le=10.0,
                                        description="the longest the first request of a batch waits for company")
    batch_wait_policy: Literal["adaptive", "fixed"] = Field("adaptive", description=(
        "adaptive: a request that finds the replica idle runs at once, and one that arrives while a batch runs "
        "waits (at most batch_wait_timeout_s) only until that batch is expected to finish, collecting company "
        "meanwhile; fixed: always wait batch_wait_timeout_s for a batch to fill (Serve's plain behaviour)"))
    max_online_requests: int | None = Field(None, ge=1, description=(
        "online requests one replica admits at once (decoding, waiting or in the running batch); the next one "
        "gets 503 + Retry-After at once instead of a longer wait (default: 2 x max_batch_size: one batch "
        "running, the next forming)"))
    bulk_max_batch_size: int | None = Field(None, ge=1, le=512, description=(
        "largest batch of archive images sent through the deployment (`--via serve`); online requests go "
        "ahead of them at every batch, so an online request waits behind at most one such batch "
        "(default: max_batch_size; on CPU, where a batch costs its size, 1-2 keeps online latency low)"))
    preempt_bulk: bool = Field(True, description=(
        "an online request that arrives while an archive batch runs stops that batch's forward pass (within a "
        "few ms) and goes first; the archive images run again after it. An archive image is stopped at most "
        "once, so it runs at most twice (stops counted in /v1/models stats as bulk_preempted); false: the "
        "online request waits"))
    bulk_max_waiting: int | None = Field(None, ge=1, description=(
        "archive images one replica holds at once; more are refused with 503 and the batch job retries them "
        "(default: 2 x max_batch_size), so archive traffic never takes the slots online requests need"))
    alias_poll_interval_s: float = Field(2.0, ge=0.0, le=3600.0, description=(
        "how often each replica re-reads its aliases from the store (0: only on reconfigure / admin reload)"))
    failed_retry_s: float = Field(60.0, ge=0.0, description=(
        "a version that failed to load is not retried by the poller for this long (admin reload retries at once)"))

    @field_validator("aliases", "pinned_versions")
    @classmethod
    def _segments(cls, values: list[str], info) -> list[str]:
        kind = "alias" if info.field_name == "aliases" else "version"
        for value in values:
            check_segment(kind, value)
        if len(set(values)) != len(values):
            raise ValueError(f"{info.field_name} has duplicates: {values!r}")
        return values


class ModelRuntimeConfig(_RuntimeFields):
    """What a replica applies in place: the deployment's `user_config` (the pixel cap comes from `http`)."""

    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description="decoded images above this are refused")
    retry_after_s: int = Field(1, ge=0, description="Retry-After of the replica's own 503s (from `http`)")
    queued_online: int = Field(0, ge=0, description=(
        "served in one hop: online requests admitted beyond max_online_requests to wait, what the ingress "
        "queue (max_queued_requests) holds with two hops"))

    @property
    def online_limit(self) -> int:
        return (self.max_online_requests or 2 * self.max_batch_size) + self.queued_online

    @property
    def bulk_limit(self) -> int:
        return self.bulk_max_waiting or 2 * self.max_batch_size

    @property
    def routed_limit(self) -> int:
        """What the replica admits in both lanes + REFUSAL_HEADROOM: the default max_ongoing_requests."""
        return self.online_limit + self.bulk_limit + REFUSAL_HEADROOM


class DeploymentServeConfig(_RuntimeFields):
    """What every model deployment (detector or classifier) is sized and batched with."""

    name: str = Field(..., description="model name in the store")
    max_ongoing_requests: int | None = Field(None, ge=1, description=(
        "requests Serve routes to one replica at once; must be >= max_batch_size or batches can never fill "
        f"(default: the online limit + the bulk limit + {REFUSAL_HEADROOM}, so the replica's own admission "
        "decides, with a typed 503, and archive traffic cannot take the online requests' slots). Set it below "
        "what the replica admits and a burst waits in Serve's router instead, which retries a full replica "
        "only every 0.5 s: throughput drops to a few requests/s until the burst has drained"))
    max_queued_requests: int = Field(64, ge=-1, description=(
        "requests waiting at the ingress to be assigned a replica slot; more get 503 + Retry-After. A burst "
        "counts in full while it is being assigned, so keep this above the bursts you accept (-1: unbounded). "
        "Served in one hop, the replica admits this many online requests beyond max_online_requests instead, "
        "and Serve's proxy holds at most as many as the replicas admit + 64 each once even their slots are "
        "full (its 503 has Retry-After but a plain-text body)"))
    num_replicas: int | None = Field(None, ge=1, description="fixed replica count (default 1 without autoscaling)")
    autoscaling_config: dict[str, Any] | None = Field(None, description="passed to Ray Serve unchanged")
    num_cpus: float = Field(1.0, gt=0.0, description="CPUs per replica (fractional allowed)")
    num_gpus: float = Field(0.0, ge=0.0, description="GPUs per replica (fractional allowed: replicas share a GPU)")
    memory_bytes: int | None = Field(None, ge=0, description="memory reserved per replica for scheduling")
    health_check_period_s: float | None = Field(None, gt=0.0, description=(
        "how often Serve checks each replica (default: Serve's, 10 s); a replica that died is replaced only "
        "once a check notices, and requests wait for a replica meanwhile"))
    graceful_shutdown_wait_loop_s: float | None = Field(None, gt=0.0, description=(
        "how often a stopping replica (scaled down, redeployed, deleted) looks for requests still in flight; it "
        "waits at least this long first, so routers still sending it requests find it up (default: Serve's, 2 s)"))
    graceful_shutdown_timeout_s: float | None = Field(None, gt=0.0, description=(
        "a stopping replica with requests still in flight after this long is killed (default: Serve's, 20 s)"))
    device: Literal["auto", "cpu", "cuda"] | None = Field(None, description="default: auto with GPUs, else cpu")
    onnx_threads: int | None = Field(None, ge=1, description="intra-op threads (default: num_cpus rounded, at least 1)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_segment("model name", value)

    @model_validator(mode="after")
    def _cross_checks(self) -> DeploymentServeConfig:
        if self.max_ongoing_requests is not None and self.max_ongoing_requests < self.max_batch_size:
            raise ValueError(f"max_ongoing_requests ({self.max_ongoing_requests}) must be >= max_batch_size "
                             f"({self.max_batch_size}), or a replica can never fill a batch")
        if self.num_replicas is not None and self.autoscaling_config is not None:
            raise ValueError("give num_replicas or autoscaling_config, not both")
        if self.autoscaling_config is not None:
            # late: the CLI and the unit tests read serve configs without loading Ray
            from ray.serve.config import AutoscalingConfig

            try:
                AutoscalingConfig.model_validate(self.autoscaling_config)
            except ValidationError as exc:
                raise ValueError(f"invalid autoscaling_config: {exc.errors()[0]['msg']} "
                                 f"(got {self.autoscaling_config!r})") from None
        return self

    @property
    def effective_max_ongoing_requests(self) -> int:
        return self.max_ongoing_for(self.runtime())

    def max_ongoing_for(self, rt: ModelRuntimeConfig) -> int:
        """The explicit max_ongoing_requests, else what the replica admits + room for refusals and control calls."""
        return self.max_ongoing_requests or rt.routed_limit

    @property
    def max_replicas(self) -> int:
        """The most replicas the deployment runs: num_replicas, or autoscaling's max_replicas (Serve's default 1)."""
        if self.autoscaling_config is not None:
            return int(self.autoscaling_config.get("max_replicas", 1))
        return self.num_replicas or 1

    @property
    def effective_device(self) -> str:
        return self.device or ("auto" if self.num_gpus > 0 else "cpu")

    @property
    def effective_onnx_threads(self) -> int:
        # Matched to the CPUs Ray reserved for the replica: ORT's default (all cores of the node)
        # would oversubscribe the CPUs given to other replicas. Rounded, as the batch actors' threads
        # are: a replica of 1.75 CPUs (2 cores less the ingress's share) ran its forward pass on one
        # thread, and light-load latency paid the second core's absence (138 vs ~80 ms here).
        return self.onnx_threads or max(1, round(self.num_cpus))

    def runtime(self, max_pixels: int = DEFAULT_MAX_PIXELS, retry_after_s: int = 1,
                queued_online: int = 0) -> ModelRuntimeConfig:
        """The part of this config that a replica applies in place."""
        return ModelRuntimeConfig(max_pixels=max_pixels, retry_after_s=retry_after_s, queued_online=queued_online,
                                  **{k: getattr(self, k) for k in _RuntimeFields.model_fields})


class IdentifyRoute(_Strict):
    """Re-identify a detector's kept detections online (serve/recording/identify.py): the ones whose label the
    identifier covers are matched against the gallery of `tables` (its newest `trapline identify` run)."""

    identifier: str = Field(..., min_length=1, description="NAME[:VERSION|@ALIAS] of an identifier in the store")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description=(
        "P(same individual) at which a detection is `matched` to a known individual; below it, `new`"))
    candidates: int = Field(5, ge=1, le=50, description="the closest individuals listed per detection")
    tables: str | None = Field(None, description="the gallery's tables (default: the recorder's, `record.tables`)")


class ModelServeConfig(DeploymentServeConfig):
    """One served detector: a Serve deployment named `detector-<name>`."""

    # A detector's own (a classifier's crops arrive decoded, so its config refuses this rather than ignore it).
    decode_threads: int | None = Field(None, ge=1, description="image decode threads (default: num_cpus + 1)")
    classify: list[ClassifierRoute] = Field(default_factory=list, description=(
        "classifiers for this detector's kept detections: [{model: CLASSIFIER, labels: [detector labels], "
        "min_crop_px}] where CLASSIFIER names an entry of `classifiers` (default labels: its applies_to)"))
    on_promote: OnPromote | None = Field(None, description="a job to submit once per version the alias moves to")
    identify: IdentifyRoute | None = Field(None, description=(
        "re-identify kept detections online: each covered one is answered with `individual` (id, name, P(same), "
        "decision, candidates) against the gallery of the recorder's tables"))

    @property
    def effective_decode_threads(self) -> int:
        return self.decode_threads or max(1, math.ceil(self.num_cpus)) + 1

    @field_validator("classify")
    @classmethod
    def _routes(cls, routes: list[ClassifierRoute]) -> list[ClassifierRoute]:
        for route in routes:
            check_segment("classifier name", route.model)  # the deployment's name: its aliases are the deployment's
        names = [r.model for r in routes]
        if len(set(names)) != len(names):
            raise ValueError(f"each classifier may appear once per detector, got {names!r}")
        return routes


class ClassifierServeConfig(DeploymentServeConfig):
    """One served classifier: a Serve deployment named `classifier-<name>` with its own replicas, versions
    (aliases, hot swap) and batching. `max_batch_size` counts requests (each brings one image's crops)."""


class HttpConfig(_Strict):
    """HTTP front door. host/port apply when trapline starts Serve (run_local, `trapline serve`);
    under `serve run/deploy` the config file's top-level `http_options` decide them."""

    host: str = Field("127.0.0.1", description="bind address; 127.0.0.1 keeps the service on this machine")
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1, description="larger request bodies get 413")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description="images above this many pixels are refused (422)")
    max_clip_bytes: int = Field(64 * 1024 * 1024, ge=1, description=(
        "a clip (a body that is an MP4/MOV/AVI/MKV) larger than this gets 413; a clip may be larger than "
        "max_body_bytes when sent with a video/* Content-Type"))
    clip_sampling: str = Field("1s", description="the frames of an uploaded clip that go through the detector: "
                                                 "'1s' (one a second), '5f' (every 5th), 'all'; ?sampling= overrides")
    clip_max_frames: int = Field(300, ge=1, description="an uploaded clip needing more sampled frames gets 422")
    one_hop: bool = Field(True, description=(
        "with one model, its replicas are also the HTTP ingress (proxy -> model replica, one hop); with "
        "several models, or false, a FastAPI ingress deployment sits in front of one deployment per model"))
    direct_ingress: bool = Field(False, description=(
        "each replica of the ingress deployment also answers HTTP on a port of its own (Ray Serve's direct "
        "ingress, ports from $RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT, default 30000): a client there skips the "
        "proxy's hop; the proxy on `port` keeps answering. The Ray cluster must run with "
        "RAY_SERVE_ENABLE_DIRECT_INGRESS=1 (trapline sets it for a local Ray it starts)"))
    ingress_num_cpus: float = Field(0.25, gt=0.0)
    ingress_num_replicas: int = Field(1, ge=1)
    ingress_max_ongoing_requests: int = Field(512, ge=1, description="the ingress only awaits; keep this high")
    retry_after_s: int = Field(1, ge=0, description="Retry-After sent with 503 when a model's queue is full")
    request_timeout_s: float | None = Field(None, gt=0, description=(
        "end-to-end HTTP timeout of the Serve proxies (applies when trapline starts Serve)"))
    cors_origins: list[str] = Field(default_factory=list, description="browser origins allowed to call the API")
    max_crops: int = Field(16, ge=0, le=256, description=(
        "most snips one `?crops=true` answer carries (the highest-scoring kept detections; `crops_truncated` "
        "says when more were left out)"))


class RecordConfig(_Strict):
    """Keep what the online door sees (`POST /v1/images`): each upload's bytes go into `archive`, its rows into
    `tables` (the same tables a `trapline reprocess` writes), committed in parts of at most `flush_rows` rows or
    every `flush_interval_s` seconds, whichever comes first."""

    archive: str = Field(..., min_length=1, description="where uploads are stored: a directory or s3://bucket/prefix "
                                                        "(a relative path means where the app is built)")
    tables: str = Field(..., min_length=1, description="the tables their rows go to (directory or s3://)")
    flush_rows: int = Field(1000, ge=1, le=100_000, description="commit a part once this many uploads wait")
    flush_interval_s: float = Field(30.0, gt=0.0, le=3600.0, description="and at least this often")
    crops: CropOptions | None = Field(None, description=(
        "write a JPEG snip of each kept detection beside the tables, as `trapline reprocess --crops` does "
        "(padding, square, min_side_px); null: no snips"))
    lease_ttl_s: float = Field(60.0, ge=5.0, le=3600.0, description=(
        "a recorder that has not renewed its lease for this long is presumed gone: its answered uploads are "
        "committed by the next replica or reprocess that looks"))


class PeopleConfig(_Strict):
    """Personal tokens (serve/people.py): where the registry and the audit log are kept, and how soon every replica
    sees a change."""

    location: str | None = Field(None, description=(
        "a directory or s3://bucket/prefix every replica reads and may write (last-used times, the audit log); "
        "default: `_people` under the model store"))
    refresh_s: float = Field(2.0, gt=0.0, le=300.0, description=(
        "each replica re-reads the registry this often when it changed: a revoked token is refused everywhere "
        "within this bound plus one read"))


class ServeConfig(_Strict):
    """Everything `build_app` needs; the `args:` of the trapline application in a Serve config file."""

    store: str | None = Field(None, description=STORE_HELP)
    cache_dir: str | None = Field(None, description="local cache of S3 weights (default: ~/.cache/trapline/models)")
    models: list[ModelServeConfig] = Field(..., min_length=1)
    classifiers: list[ClassifierServeConfig] = Field(default_factory=list, description=(
        "classifier deployments; a model's `classify` routes name them"))
    http: HttpConfig = HttpConfig()
    jobs: JobsConfig = Field(default_factory=JobsConfig, description="jobs over HTTP (batch/jobs/)")
    admin_token_env: str = Field("TRAPLINE_ADMIN_TOKEN", description=(
        "env var holding the admin token; admin routes answer 403 while it is unset"))
    api_token_env: str | None = Field(None, description=(
        "env var holding a token that detect/models routes require; when named it must be set"))
    people: PeopleConfig = Field(default_factory=PeopleConfig, description=(
        "personal tokens with roles (`trapline people add`), beside or instead of the two tokens above"))
    record: RecordConfig | None = Field(None, description=(
        "keep uploads sent to POST /v1/images in an archive and the tables (off when absent: the route answers 404)"))
    antenna: AntennaConfig | None = Field(None, description=(
        "serve Antenna's processing-service API on a port of its own (serve/antenna/; off when absent)"))

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelServeConfig]) -> list[ModelServeConfig]:
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"each model may be served once, got {names!r}")
        return models

    @model_validator(mode="after")
    def _routes_name_classifiers(self) -> ServeConfig:
        served = [c.name for c in self.classifiers]
        if len(set(served)) != len(served):
            raise ValueError(f"each classifier may be served once, got {served!r}")
        both = sorted(set(served) & {m.name for m in self.models})
        if both:
            raise ValueError(f"{both!r} listed as both a model and a classifier")
        for m in self.models:
            unknown = [r.model for r in m.classify if r.model not in served]
            if unknown:
                raise ValueError(f"model {m.name!r} routes to classifiers {unknown!r} that `classifiers` does not "
                                 f"list (served classifiers: {served!r})")
            if m.identify is not None and m.identify.tables is None and self.record is None:
                raise ValueError(f"model {m.name!r} identifies individuals against the recorder's tables, but the "
                                 "service records nothing: add `record` or name the gallery's `identify.tables`")
        if self.antenna is not None and self.antenna.record is not None and self.record is None:
            raise ValueError("antenna.record writes what the door answers to the tables of `record:`, which is not "
                             "set: add `record: {archive: ..., tables: ...}` or remove antenna.record")
        for p in self.antenna.pipelines if self.antenna else ():
            detector = self.model(p.detector)
            if detector is None:
                raise ValueError(f"antenna pipeline {p.slug!r}: detector {p.detector!r} is not one of `models` "
                                 f"({[m.name for m in self.models]!r})")
            if p.classifier is not None and p.classifier not in [r.model for r in detector.classify]:
                raise ValueError(f"antenna pipeline {p.slug!r}: {p.detector!r} does not route to classifier "
                                 f"{p.classifier!r} (its classify: {[r.model for r in detector.classify]!r})")
        return self

    @property
    def default_model(self) -> str:
        return self.models[0].name

    def model(self, name: str) -> ModelServeConfig | None:
        return next((m for m in self.models if m.name == name), None)

    def classifier(self, name: str) -> ClassifierServeConfig | None:
        return next((c for c in self.classifiers if c.name == name), None)


def parse_serve_config(data: dict[str, Any] | ServeConfig, source: str = "serve config") -> ServeConfig:
    """Validate a dict into a ServeConfig; raises ServeConfigError with one line per problem."""
    if isinstance(data, ServeConfig):
        return data
    if not isinstance(data, dict):
        raise ServeConfigError(f"{source} must be a mapping, got {type(data).__name__}")
    try:
        return ServeConfig.model_validate(data)
    except ValidationError as exc:
        raise ServeConfigError(format_validation_error(exc, source, what="")) from None
