"""The HTTP protocol: which errors the door answers, and the response shapes.

Every error class, with its HTTP status, is in ground/errors.py, and serve/ imports them from there:
the core's own errors (a bad image, an unknown model or version, a filter that does not validate, a
model that failed) and the few only a request as such can meet (`HttpError` subclasses: auth, size,
parameters, capacity). They cross the Ray boundary intact (`unwrap_error`) and the router renders every
error whose `status` is set as `{"error": {"type", "message", ...}}` with that status. Nothing here
imports Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from ground.errors import FilterConfigError, TraplineError
from model_store import Classification, Detection, MaskRLE
from model_store.core.filters import shortcut_overrides
from serve.answers import BatchingOut, BatchStatsOut, CropOut, DetectAnswer, RefusedVersionOut, ReplicaStatus

# Why a version could not be loaded, as /v1/models and the refusal metric report it.
LOAD_FAILURE_KINDS = {"checksum_mismatch": "checksum_mismatch", "invalid_config": "invalid_config",
                      "model_load_failed": "model_load_failed", "not_found": "weights_missing",
                      "model_error": "model_error"}


def load_error_kind(exc: BaseException) -> str:
    """A stable code for why a version could not be loaded."""
    return LOAD_FAILURE_KINDS.get(getattr(exc, "code", ""), "load_failed") if isinstance(exc, TraplineError) \
        else "load_failed"


def core_error(exc: BaseException) -> TraplineError | None:
    """The error itself when the HTTP door answers it with its own status (a bad image, an unknown model,
    a filter that does not validate, a model that failed), else None: not the client's fault, a logged 500."""
    if isinstance(exc, TraplineError) and exc.status is not None:
        return exc
    return None


def unwrap_error(exc: BaseException) -> BaseException:
    """The original exception behind a Ray task error (Ray wraps what a replica raised)."""
    seen = 0
    while seen < 5 and getattr(exc, "cause", None) is not None and exc.__class__.__name__.startswith("RayTaskError"):
        exc = exc.cause  # type: ignore[attr-defined]
        seen += 1
    return exc


# -- response shapes: the bodies the routes return, built once from the typed record ---------------------------

class ModelOut(BaseModel):
    name: str
    version: str
    sha256: str


class ImageOut(BaseModel):
    width: int
    height: int


class LabelScoreOut(BaseModel):
    label: str
    score: float


class ClassificationOut(BaseModel):
    """What one classifier version says about one detection (after the classifier filters)."""

    model: ModelOut = Field(description="the classifier's name, version and weights sha256")
    label: str
    score: float
    rank: str | None = Field(None, description="taxonomy rank of `label` when rank_rollup moved it up")
    taxon_path: list[str]
    top: list[LabelScoreOut] = Field(description="the classifier's own top-k labels")
    flags: list[str] = Field(description="classifier filters that changed the answer")
    scores: list[float] | None = Field(None, description="only with verbose=true: the whole probability vector")


class CandidateOut(BaseModel):
    id: str
    name: str | None
    p_same: float


class IndividualOut(BaseModel):
    """Which animal this is, against the gallery of the tables the service records into."""

    id: str | None = Field(description="a known individual's id, or a provisional `ind-new-...` one (decision new)")
    name: str | None = Field(description="the name a person gave it")
    p_same: float | None = Field(description="calibrated P(same individual) to the best-matching individual")
    decision: str = Field(description="matched (P(same) >= the threshold), new (unlike every known one), or "
                                      "unidentifiable (the snip is too small or blank: see reason)")
    reason: str | None = None
    candidates: list[CandidateOut] = Field(description="the closest known individuals, most likely first")


class DetectionOut(BaseModel):
    label: str
    class_id: int
    score: float
    bbox: tuple[float, float, float, float] = Field(description="normalised [x, y, width, height], top-left origin")
    flags: list[str] | None = Field(None, description="only with verbose=true: filters that fired (action flag)")
    box_px: tuple[float, float, float, float] | None = Field(
        None, description="only with verbose=true: x1, y1, x2, y2 in original pixels")
    classifications: list[ClassificationOut] | None = Field(None, description=(
        "when the model has classifiers (and classify is not false): one per classifier this label is routed to"))
    crop: CropOut | None = Field(None, description="only with crops=true: the detection's snip")
    individual: IndividualOut | None = Field(None, description=(
        "when the model has an `identify` route and the identifier covers this label"))
    mask: MaskRLE | None = Field(None, description=(
        "segmentation models only: the detection's mask in image pixels, COCO compressed RLE "
        "(pycocotools `mask.decode` reads it)"))


class FiltersOut(BaseModel):
    names: list[str]
    hash: str
    configs: list[dict]


class DetectResponse(BaseModel):
    """The body of a successful POST /v1/detect."""

    model: ModelOut
    image: ImageOut
    detections: list[DetectionOut]
    filters: FiltersOut
    tiling: dict | None = Field(None, description="when the image was tiled: the settings and its tile count")
    timing_ms: dict[str, float]
    dropped: list[DetectionOut] | None = Field(None, description="only with verbose=true: boxes a filter dropped")
    crops_truncated: bool | None = Field(None, description="only with crops=true: more snips than http.max_crops")


class ErrorDetail(BaseModel):
    type: str
    message: str
    request_id: str | None = None
    model_config = {"extra": "allow"}


class ErrorResponse(BaseModel):
    """Every non-2xx answer."""

    error: ErrorDetail


def _classification_out(c: Classification, verbose: bool) -> ClassificationOut:
    out = ClassificationOut.model_validate(c, from_attributes=True)
    if not verbose:
        out.scores = None
    return out


def detection_out(det: Detection, verbose: bool, classified: bool, crop: CropOut | None = None,
                   individual: dict | None = None) -> DetectionOut:
    return DetectionOut(
        label=det.label, class_id=det.class_id, score=det.score, bbox=det.bbox,
        flags=det.flags if verbose else None, box_px=det.box_px if verbose else None,
        classifications=[_classification_out(c, verbose) for c in det.classifications] if classified else None,
        crop=crop, individual=IndividualOut.model_validate(individual) if individual else None, mask=det.mask)


def detect_response(answer: DetectAnswer, timing_ms: dict[str, float], verbose: bool = False) -> DetectResponse:
    """The HTTP body for one detector answer: its typed record, classifications and snips, built once."""
    record = answer.record
    individuals = {s.index: s.answer for s in answer.sightings}
    crops: list[CropOut | None] = [None] * len(record.detections)
    if answer.snips:
        for position, index in enumerate(record.kept_indices()):
            crops[position] = answer.snips.get(index)
    return DetectResponse(
        model=ModelOut.model_validate(record.model, from_attributes=True),
        image=ImageOut(width=record.width, height=record.height),
        detections=[detection_out(d, verbose, answer.classified, crop, individuals.get(i))
                    for i, (d, crop) in enumerate(zip(record.detections, crops, strict=True))],
        filters=FiltersOut.model_validate(record.filters, from_attributes=True),
        tiling=record.tiling,
        timing_ms=timing_ms,
        dropped=[detection_out(d, True, False) for d in record.dropped] if verbose else None,
        crops_truncated=answer.snips_truncated,
    )


def filter_overrides(filters_json: Any, shortcuts: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Merge the `filters` JSON query parameter with the shortcut parameters, which win (`SHORTCUTS`, from each
    filter's own `shortcut` in the registry: model_store/core/filters/)."""
    overrides: dict[str, Any] = {}
    if filters_json is not None:
        if not isinstance(filters_json, dict) or not all(isinstance(k, str) for k in filters_json):
            raise FilterConfigError(
                f"filters must be a JSON object {{filter name: config or null}}, got {filters_json!r}")
        overrides.update(filters_json)

    for name, fields in shortcut_overrides(shortcuts or {}).items():
        base = overrides.get(name)
        overrides[name] = {**(base if isinstance(base, dict) else {}), **fields}
    return overrides or None


# -- model status, readiness and the admin routes: the bodies /v1/models, /readyz and /v1/admin/* return --------

class LoadedVersionOut(BaseModel):
    """A version loaded in the replicas, with the aliases it serves."""

    version: str
    sha256: str
    device: str
    pinned: bool = False
    aliases: list[str] = Field(default_factory=list)
    tiling: dict | None = Field(None, description="the version's default tiled inference (config.json `tiling`); "
                                                  "null: one whole-image pass unless a request asks for tiles")


class ModelStatusOut(BaseModel):
    """One served model as all its replicas see it."""

    name: str
    kind: Literal["detector", "classifier"]
    deployment: str
    ready: bool
    default_alias: str | None
    aliases: dict[str, str | list[str] | None] = Field(description=(
        "the version each served alias answers with (a list while the replicas disagree, during a swap)"))
    store_aliases: dict[str, str | None] = Field(description="where the store's aliases point")
    versions: list[LoadedVersionOut]
    errors: list[RefusedVersionOut]
    batching: BatchingOut | None
    stats: BatchStatsOut
    classify: list[dict[str, Any]] | None = Field(None, description="a detector's classifier routes")
    replicas: list[ReplicaStatus] = Field(description="each replica's own status")


class ModelsResponse(BaseModel):
    models: list[ModelStatusOut]
    admin_routes: Literal["enabled", "disabled"]


class ModelReadinessOut(BaseModel):
    ready: bool
    aliases: dict[str, str | list[str] | None] = Field(default_factory=dict)
    reason: str | None = None


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    models: dict[str, ModelReadinessOut]


class AliasMoveResponse(BaseModel):
    """An alias moved by promote or rollback, and what every replica serves after it."""

    model: str
    alias: str
    version: str
    previous: str | None
    serving: list[dict[str, str | None]] = Field(description="each replica's aliases -> versions")
    gate: dict[str, Any] | None = Field(None, description=(
        "promote: the gate before it (ran, verdict, reason, forced, comparison: both versions' precision and recall "
        "with Wilson 95 % intervals on people's verified held-out data); null on rollback"))


class PromoteGateQuery(BaseModel):
    """`POST /v1/admin/models/{model}/promote`: the gate's settings, as `trapline models promote` takes them."""

    tables: str | None = Field(None, min_length=1, max_length=4096, description=(
        "tables with people's reviews of the alias's current version (default: the model's on_promote backfill "
        "tables, else the recorder's; none: the gate is not run and the answer says why)"))
    force: bool = Field(False, description="promote a candidate the gate finds worse beyond the intervals (audited)")
    reason: str | None = Field(None, max_length=1000, description="why (kept in the audit log with a forced promote)")
    seed: int = Field(0, description="the training-set split's seed whose test cameras are held out")


class ReloadResponse(BaseModel):
    model: str
    replicas: list[dict[str, Any]] = Field(description="each replica's status after re-reading, or its error")
