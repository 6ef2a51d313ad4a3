"""Request and response models of the console's pictures routes (batch/views/pictures.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MODEL = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$"


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


# `?tables=` of every pictures route (and `tables` of CapturesQuery)
TABLES_HELP = ("the tables (under the jobs' roots, or a known source's; default: the first source, the recording's "
               "when there is one); their archive is the source's or the one their own newest reprocess recorded")


class _FromTables(_Out):
    """What a pictures answer says of the tables it read."""

    tables: str = Field(description="the tables read (as the source names them, or made absolute)")
    served: bool = Field(description="false when their pictures are not served here: tables that record no archive "
                                     "(pictures recorded by their URL are still shown)")


class SourceOut(_Out):
    name: str
    kind: str = Field(description="recording | backfill | configured | found (tables under the jobs' roots)")
    tables: str
    archive: str
    served: bool = Field(description="false for s3:// sources: their pictures are not served by this service")


class SourcesOut(_Out):
    sources: list[SourceOut]


class TopLabel(_Out):
    label: str
    score: float


class ClassificationOut(_Out):
    """One classifier's answer for a box, as the classifications table keeps it."""

    classifier: str = Field(description="NAME:VERSION")
    label: str
    score: float
    rank: str | None = None
    taxon_path: list[str] = Field(default_factory=list, description="the label's taxa, root first")
    top: list[TopLabel] = Field(default_factory=list, description="the classifier's own top labels")
    source: str | None = Field(None, description=(
        "which rule decided the label (the species ensemble: e.g. `classifier+geofence+rollup_to_family`); null for "
        "a plain classifier's answer or a part written before the column"))
    pre_smoothing_description: str | None = Field(None, description=(
        "where smoothing changed the label: what its image or event held before (e.g. 'red fox (3), animal (1)')"))


class Box(_Out):
    detection_index: int
    label: str
    score: float
    bbox: list[float] = Field(description="x, y, w, h normalised 0..1 of the upright image, top-left origin")
    kept: bool = True
    flags: list[str] = Field(default_factory=list, description="filters that fired on it")
    species: str | None = Field(None, description="the first classifier's answer, when one classified it")
    classifications: list[ClassificationOut] = Field(default_factory=list)
    outline: list[list[tuple[float, float]]] | None = Field(
        None, description="a segmentation model's mask as polygons of x, y normalised 0..1 (null: boxes only)")
    frame_number: int | None = Field(None, description="a clip's box: the sampled frame it is on")
    frame_offset_s: float | None = None


class Snip(_Out):
    detection_index: int
    crop_uri: str
    url: str | None = Field(None, description="the snip, served by this service (a URL that carries its right)")


class ClipFrame(_Out):
    frame_number: int
    offset_s: float | None = Field(None, description="seconds from the clip's start")
    url: str | None = Field(None, description="the frame as a JPEG, served by this service (decoded on request)")


class Pictured(_Out):
    thumb_url: str | None = Field(None, description="a thumbnail, served by this service; null when not servable")
    image_url: str | None = Field(None, description="the full image (a clip: its poster frame), served by this service")
    kind: str = Field("image", description="image | video (a clip: its boxes carry their frame_number)")
    poster_frame: int | None = Field(None, description="a clip's frame shown for it: the one of its best kept box")
    frames: list[ClipFrame] = Field(default_factory=list, description="a clip's sampled frames with a detection")


class TileImage(Pictured):
    uri: str
    capture_time: dt.datetime | None
    capture_time_source: str | None = None
    status: str
    width: int | None
    height: int | None
    model: dict[str, str]
    filters_hash: str


class Tile(_Out):
    camera: str
    image: TileImage
    detections: list[Box]
    snips: list[Snip]


class CameraTile(_Out):
    camera: str
    images: int = Field(description="distinct image files in the tables")
    newest_capture_time: dt.datetime | None
    latest: Tile | None


class CamerasPage(_FromTables):
    cameras: list[CameraTile]
    total: int
    limit: int
    offset: int


class Capture(Pictured):
    uri: str
    rel_path: str | None
    camera: str
    capture_time: dt.datetime | None
    status: str
    error_reason: str | None
    detection_count: int | None
    max_score: float | None
    width: int | None
    height: int | None
    detections: list[Box]
    snips: list[Snip]


class CapturesPage(_FromTables):
    model: dict[str, str]
    filters_hash: str
    total: int
    limit: int
    offset: int
    captures: list[Capture]


class CaptureDetail(Capture, _FromTables):
    error: str | None
    model: dict[str, Any]
    filter_set: dict[str, Any] = Field(description="hash, filter specs, classifiers and routes of the result set")


class Facets(_Out):
    tables: str
    models: list[str]
    model: str | None
    cameras: list[str]
    labels: list[str]
    species: list[str]


class CapturesQuery(BaseModel):
    """`GET /v1/pictures/captures`: the filters, all optional; newest first, one bounded page."""

    model_config = ConfigDict(extra="forbid")
    tables: str | None = Field(None, min_length=1, max_length=4096, description=TABLES_HELP)
    camera: str | None = Field(None, pattern=NAME)
    label: str | None = Field(None, min_length=1, max_length=200)
    species: str | None = Field(None, min_length=1, max_length=200)
    min_score: float | None = Field(None, ge=0.0, le=1.0)
    max_score: float | None = Field(None, ge=0.0, le=1.0)
    since: dt.datetime | None = Field(None, description="capture time from (inclusive; the camera's clock)")
    until: dt.datetime | None = Field(None, description="capture time to (exclusive)")
    state: Literal["empty", "nonempty", "failed"] | None = None
    model: str | None = Field(None, pattern=MODEL, description="NAME or NAME:VERSION (default: the served model)")
    filters_hash: str | None = Field(None, pattern=r"^[0-9a-f]{4,64}$")
    limit: int = Field(48, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000_000)
