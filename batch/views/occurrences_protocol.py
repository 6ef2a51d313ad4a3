"""The request and response bodies of the occurrence routes (batch/views/occurrences.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DetectionRef(BaseModel):
    uri: str
    content_id: str
    detection_index: int = Field(ge=0)


class StitchView(DetectionRef):
    """One join of the tracker's stitching pass: the detection it attached and its evidence (issue 58)."""

    distance: float | None = Field(None, description="the look distance between the two joined tracks")
    gap_frames: int = Field(description="the frames missed between them")
    probability: float | None = Field(None, description="the calibrated probability that they are one animal")


class FoldView(DetectionRef):
    """One of the animal's second boxes the tracker folded in (a head inside its box, a duplicate beside it:
    issue 69), with the evidence of its piece."""

    share: float | None = Field(None, description="the share of the piece's frames inside or on the animal's box")
    spread: float | None = Field(None, description="the spread of its place in the animal's box, in box sizes "
                                                   "(null: a hand-over, a duplicate that took the track for a frame)")
    moved: float | None = Field(None, description="how far the animal moved meanwhile, in box sizes (a strong "
                                                  "fold: it rode along)")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tables: str | None = Field(None, description="the tables (default: the recorder's tables of the serve config)")
    model: str | None = Field(None, description="NAME or NAME:VERSION when the tables hold several")
    filters_hash: str | None = Field(None, description="the result set (default: the newest with occurrences)")
    comment: str | None = Field(None, max_length=2000)
    who: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$", description=(
        "the person deciding, as the decisions log keeps it: the person whose token sends it (default); only an "
        "admin may name someone else, and is then recorded beside them"))


class IdentifyRequest(_Body):
    """`POST /v1/occurrences/{id}/identify`: a person's determination of the whole occurrence."""

    label: str = Field(..., min_length=1, max_length=200)


class ClassifyRequest(_Body):
    """`POST /v1/occurrences/{id}/classify`: a person's label for one of its detections (an edited classification)."""

    uri: str
    content_id: str
    detection_index: int = Field(..., ge=0)
    label: str = Field(..., min_length=1, max_length=200)


class SplitRequest(_Body):
    """`POST /v1/occurrences/{id}/split`: cut the occurrence at one of its detections (it and the later ones are
    another animal), from the next track run on."""

    at: DetectionRef = Field(description="the first detection of the part that leaves")


class MergeRequest(_Body):
    """`POST /v1/occurrences/{id}/merge`: the two occurrences are one animal, from the next track run on."""

    other_id: str = Field(min_length=1, description="the occurrence to join with this one")


class MoveRequest(_Body):
    """`POST /v1/occurrences/{id}/move`: one of its detections belongs to another occurrence, from the next track
    run on."""

    detection: DetectionRef
    to: str = Field(min_length=1, description="the occurrence it belongs to")


class TrackEditView(BaseModel):
    decision: dict[str, Any] = Field(description="the decision as the log keeps it")
    applies: str = Field(description="when it takes effect")


class DeterminationView(BaseModel):
    label: str | None
    score: float | None
    how: str = Field(description="model: the vote of its classifications or detection labels; human: identified")
    model_label: str | None = Field(description="the model's vote, beside a person's determination")
    model_score: float | None
    identified_by: str | None
    decision_id: str | None
    comment: str | None


class OccurrenceView(BaseModel):
    occurrence_id: str
    camera_id: str | None
    first_time: str | None
    last_time: str | None
    frames: int
    detections: int
    confirmed: bool = Field(description="counts as an animal (enough frames or one confident detection)")
    determination: DeterminationView
    best: DetectionRef
    filters_hash: str
    run_id: str
    tracker_hash: str | None
    link_confidence: float | None = Field(None, description="how sure the tracker is of the occurrence's weakest "
                                                            "link, 0..1 (1: one detection; null: tables written "
                                                            "before it was stored)")
    weakest_link: DetectionRef | None = Field(None, description="the detection that weakest link attached")
    stitches: list[StitchView] = Field(default_factory=list, description="the joins the tracker's stitching pass "
                                                                         "made, with their evidence")
    folds: list[FoldView] = Field(default_factory=list, description="the animal's second boxes the tracker folded "
                                                                    "in, with their evidence")
    static: bool | None = Field(None, description="the track never moved (a leaf, a mark on the sheet): not "
                                                  "counted unless a person identified it (null: tables written "
                                                  "before it was stored)")


class OccurrencePage(BaseModel):
    model: str
    filters_hash: str
    total: int
    limit: int
    offset: int
    occurrences: list[OccurrenceView]


class FrameClassification(BaseModel):
    classifier: str
    version: str
    label: str
    score: float
    source: str | None = Field(None, description=(
        "which rule decided the label (the species ensemble: e.g. `classifier+rollup_to_genus`); null for a plain "
        "classifier's answer or a part written before the column"))


class FrameView(BaseModel):
    uri: str
    content_id: str
    detection_index: int
    capture_time: str | None
    label: str | None
    score: float | None
    bbox: list[float] | None = Field(description="x, y, w, h normalised")
    vote: dict[str, Any] | None
    classifications: list[FrameClassification]
    snip: str = Field(description="the snip's link (a JPEG, same token)")


class OccurrenceDetail(OccurrenceView):
    model: str
    frames_shown: list[FrameView]
    history: list[dict[str, Any]] = Field(description="the decisions about it or its detections, oldest first")
