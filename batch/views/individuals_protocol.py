"""The request and response bodies of the individual routes (batch/views/individuals.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from model_store.tables.decisions import DetectionKey


class IndividualView(BaseModel):
    individual_id: str
    name: str | None = Field(description="the name a person gave it")
    label: str
    first_seen: str | None
    last_seen: str | None
    cameras: list[str]
    sightings: int
    confirmed: bool = Field(description="a person confirmed one of its sightings, merged into it or started it")


class IndividualPage(BaseModel):
    run_id: str | None = Field(description="the newest identify run (None: trapline identify has not run here)")
    total: int
    limit: int
    offset: int
    individuals: list[IndividualView]


class SightingView(BaseModel):
    uri: str
    content_id: str
    detection_index: int
    rel_path: str | None
    camera_id: str | None
    capture_time: str | None
    p_same: float | None = Field(description="calibrated P(same individual) to the rest of its individual")
    individual_id: str | None = Field(description="the individual it belongs to now")
    decision: str = Field(description="matched, new, confirmed (by a person) or rejected (a person said no)")
    snip: str = Field(description="the snip's link (a JPEG, same token)")


class ReviewPage(BaseModel):
    run_id: str | None
    total: int
    limit: int
    offset: int
    low: float
    high: float
    sightings: list[SightingView]


class Candidate(IndividualView):
    p_same: float = Field(description="the best P(same) between one of its sightings and one of this individual's")


class IndividualDetail(IndividualView):
    run_id: str
    sightings_shown: list[SightingView]
    closest: list[Candidate] = Field(description="the other individuals its sightings came nearest to: to merge")
    history: list[dict[str, Any]] = Field(description="the decisions about it or its sightings, oldest first")


class DecisionRequest(BaseModel):
    """`POST /v1/individuals/decisions`: one person's decision, with the fields its action needs:
    `confirm_sighting` / `reject_sighting` (sighting, individual_id), `merge` (individual_id keeps its id and name,
    other_id joins it), `split` (individual_id, sightings: they leave together as a new individual), `name`
    (individual_id, name), `new_individual` (sighting: "no match")."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["confirm_sighting", "reject_sighting", "merge", "split", "name", "new_individual"]
    tables: str | None = Field(None, description="the tables (default: the recorder's tables of the serve config)")
    who: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$", description=(
        "the person deciding, as the decisions log keeps it: the person whose token sends it (default); only an "
        "admin may name someone else, and is then recorded beside them"))
    comment: str | None = Field(None, max_length=2000)
    individual_id: str | None = None
    other_id: str | None = None
    name: str | None = None
    sighting: DetectionKey | None = None
    sightings: list[DetectionKey] | None = None


class DecisionView(BaseModel):
    decision: dict[str, Any] = Field(description="the decision as the log keeps it")
    individual: IndividualView | None = Field(description="the individual it concerns, as it is now")
