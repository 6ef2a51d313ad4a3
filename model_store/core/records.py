"""The detection record: the one output shape shared by the library, the service and batch jobs."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModelInfo(BaseModel):
    """Which model version produced a result."""

    name: str
    version: str
    sha256: str


class LabelScore(BaseModel):
    """One label of a classifier's answer and its probability."""

    label: str
    score: float


class Classification(BaseModel):
    """What one classifier version says about one detection's crop.

    `label` / `score` are the answer after the classifier filters (class mask, rank rollup), which
    may be a higher taxon than any of the model's labels; `top` is the model's own top-k and
    `scores` its whole probability vector in label order (kept so stored tables re-filter
    without the model; the HTTP answer leaves it out unless verbose).
    """

    model: ModelInfo
    label: str
    score: float
    rank: str | None = Field(None, description="taxonomy rank of `label` when it is a rolled-up taxon")
    taxon_path: list[str] = Field(default_factory=list, description="taxonomy path of `label`, root first")
    top: list[LabelScore] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list, description="classifier filters that changed the answer")
    scores: list[float] | None = None
    source: str | None = Field(None, description="how the species ensemble reached `label`: detector, classifier, "
                                                 "classifier+rollup_to_genus, classifier+geofence+rollup_to_family...")


class MaskRLE(BaseModel):
    """One binary mask as COCO compressed RLE (what pycocotools' `mask.encode` gives, counts as text)."""

    size: tuple[int, int] = Field(description="height, width of the image")
    counts: str = Field(description="COCO compressed run-length counts, column-major, starting with background")


class Detection(BaseModel):
    """One box. `bbox` is normalised [x, y, width, height] from the top-left (MegaDetector / Camtrap DP)."""

    label: str
    class_id: int
    score: float
    bbox: tuple[float, float, float, float]
    box_px: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in original image pixels")
    flags: list[str] = Field(default_factory=list, description="post-processing filters that fired")
    classifications: list[Classification] = Field(
        default_factory=list, description="one per classifier of the pipeline this detection's label is routed to")
    crop_uri: str | None = Field(None, description="where the snip of this detection was written, if it was")
    mask: MaskRLE | None = Field(None, description="a segmentation model's mask of this detection in image pixels; "
                                                    "null for box-only models")


class FiltersApplied(BaseModel):
    """The post-processing filters that ran, in order, with their full configs and a stable hash."""

    names: list[str]
    hash: str
    configs: list[dict]


class ImageDetections(BaseModel):
    """All detections of one image by one model version.

    `detections` are the kept boxes; `dropped` are raw detections that a filter with
    action "drop" removed, kept here so callers and tables can re-filter without the model.
    """

    model: ModelInfo
    width: int
    height: int
    detections: list[Detection]
    dropped: list[Detection] = Field(default_factory=list)
    filters: FiltersApplied
    tiling: dict | None = Field(None, description="the tiled inference that made these boxes (model_store/core/"
                                                  "tiling.py): its settings and this image's tile count; null: one "
                                                  "whole-image pass")
    timing_ms: dict[str, float] = Field(default_factory=dict)

    def ranked(self) -> list[tuple[Detection, bool]]:
        """Every raw detection with its kept flag, highest score first: list position = `detection_index`
        in the tables (kept before dropped on equal scores)."""
        every = [(d, True) for d in self.detections] + [(d, False) for d in self.dropped]
        return sorted(every, key=lambda p: -p[0].score)

    def kept_indices(self) -> list[int]:
        """The `detection_index` (position in `ranked()`) of each kept detection, in `detections` order."""
        every = self.detections + self.dropped
        order = sorted(range(len(every)), key=lambda i: -every[i].score)  # the same stable sort as ranked()
        index = [0] * len(every)
        for position, i in enumerate(order):
            index[i] = position
        return index[:len(self.detections)]
