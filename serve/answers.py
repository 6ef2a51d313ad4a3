"""What the deployments ask and answer each other through Serve handles: declared types, pickled once by Ray.

A request's settings, parsed at its door (`POST /v1/detect`, the Antenna door, the recorder), travel whole as one
`DetectAsk` (an image) or `ClipAsk` (a clip) to the detector call, so a new setting is one field here, not an edit
in every signature on the way.
A detector replica answers an HTTP request with a `DetectAnswer` (the typed `ImageDetections` record, the
crops its classifiers need, the snips asked for, the rendered JPEG when asked); the ingress core attaches
the classifier answers to that same record and the router builds the response body from it once
(serve/protocol.py `detect_response`). The control calls the ingress broadcasts answer `ReplicaStatus`
(`status`, `refresh`), `PreloadedVersion` (`preload`) and `CropGeometry` (a classifier's `geometry`).
Pure data: nothing here imports Ray, so both sides of a handle and the unit tests share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from model_store import CropOptions, ImageDetections
from model_store.core.pipeline import CropJob


@dataclass(frozen=True)
class DetectAsk:
    """One image's detect request as its door parsed it: which model (None: the default) and version or alias,
    the filter overrides ({filter name: config or None}), `render` (the annotated JPEG instead of JSON), whether
    the model's classifiers run, the snips asked for, and the tiling (None: the model's config)."""

    model: str | None = None
    version: str | None = None
    alias: str | None = None
    filters: dict[str, Any] | None = None
    render: bool = False
    classify: bool = True
    crops: CropOptions | None = None
    tiling: Any = None


@dataclass(frozen=True)
class ClipAsk:
    """One clip's detect request as its door parsed it: the model, version or alias, filter overrides and tiling
    as `DetectAsk`'s, and the frame sampling (model_store/core/clip_sampling.py `Sampling`, dumped)."""

    model: str | None = None
    version: str | None = None
    alias: str | None = None
    filters: dict[str, Any] | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    tiling: Any = None


class CropOut(BaseModel):
    """One kept detection's snip (crops=true): a JPEG of the box, as the HTTP answer carries it."""

    jpeg_base64: str
    width: int
    height: int


@dataclass
class DetectAnswer:
    """A detector replica's answer to one HTTP request, and what the ingress core makes of it.

    `record` is the one `ImageDetections` of the image, typed from the replica's batch to the router;
    `IngressCore.detect` attaches the classifications to it in place. `jobs` are the crops the
    detector's classifier routes need (cut in the replica from the full-resolution image), `snips`
    the JPEG snips keyed by detection_index (position in `record.ranked()`), `snips_truncated` says
    whether more were kept than `http.max_crops` (None: no snips were asked). `classified` is true
    once the classifier routes ran, and `jpeg` is the annotated image when `render` was asked. `sightings` are
what the detector's identifier found for its covered detections (empty without an `identify` route).
    """

    record: ImageDetections
    jpeg: bytes | None = None
    jobs: list[CropJob] = field(default_factory=list)
    snips: dict[int, CropOut] = field(default_factory=dict)
    snips_truncated: bool | None = None
    classified: bool = False
    sightings: list[Any] = field(default_factory=list)  # serve/recording/identify.py Sighting, per identified box


class CropGeometry(BaseModel):
    """How the classifier version a replica serves wants its crops cut."""

    version: str | None = None
    padding: float
    square: bool


class VersionInfo(BaseModel):
    """One loaded, verified and warmed version in a replica."""

    version: str
    sha256: str
    device: str
    loaded_at: float = Field(description="when it was loaded (Unix time)")
    load_s: float = Field(description="how long loading, verifying and warming took")
    tiling: dict | None = Field(None, description="a detector's default tiled inference (its config.json `tiling`, "
                                                  "tile size resolved); a request's `tiling` overrides it")


class PreloadedVersion(VersionInfo):
    """A replica's answer to `preload`: the version it now holds."""

    replica: str


class ReplicaVersion(VersionInfo):
    """A loaded version in a replica's status, with the served aliases that point at it."""

    aliases: list[str] = Field(default_factory=list)
    pinned: bool = False


class RefusedVersionOut(BaseModel):
    """A version a replica refused to serve, and why (it is not retried on every poll)."""

    version: str
    type: str = Field(description="checksum_mismatch | invalid_config | model_load_failed | weights_missing | ...")
    message: str
    at: float = Field(description="when (Unix time)")


class BatchingOut(BaseModel):
    """A replica's batching settings (from the deployment's user_config)."""

    max_batch_size: int
    batch_wait_timeout_s: float
    batch_wait_policy: str
    bulk_max_batch_size: int | None
    preempt_bulk: bool


class BatchStatsOut(BaseModel):
    images: int
    images_by_version: dict[str, int]
    batches: int
    batch_sizes: dict[str, int]
    max_batch_size_seen: int
    errors: dict[str, int]
    bulk_preempted: int


class ReplicaStatus(BaseModel):
    """One replica's answer to `status` and `refresh`: what it serves, what it refused, its batching."""

    replica: str
    model: str
    kind: str
    default_alias: str
    aliases: dict[str, str | None] = Field(description="the version each served alias answers with here")
    store_aliases: dict[str, str | None] = Field(description="where the store's aliases pointed at the last read")
    versions: list[ReplicaVersion]
    errors: list[RefusedVersionOut]
    store_error: str | None = None
    batching: BatchingOut
    stats: BatchStatsOut
    onnx_threads: int | None = Field(None, description=(
        "intra-op threads of one forward pass here: with the replica count, what an archive job sent through the "
        "deployment can run at once (`trapline reprocess --via auto` weighs it against a pool of its own)"))
