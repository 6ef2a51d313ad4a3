"""The decisions log: what people decided about the tables, kept apart from what models produced.

A person's identification of an occurrence, a corrected classification, a track cut or joined or a detection
moved to another occurrence, a confirmed or rejected re-identification, a merge, a split or a name: each is
one small JSON file under ``DST/_decisions/``, created once and never rewritten (``Storage.create_exclusive``:
a hard link locally, a PUT with ``If-None-Match`` on S3), so the log is append-only on both backends and two
writers can never overwrite each other. Every later post-processing run, reprocess, backfill or identify run reads the
log and honours it: models propose, people decide, and a new model version never silently undoes a
person's decision.

Layout::

    DST/_decisions/<decision_id>.json     one Decision, decision_id sortable by time

A decision is a typed record (one pydantic model per action, discriminated by ``action``); a new
action is one class here and one line in ``Decision``. Readers fold the log in order (``read``
returns it sorted by time, then id), so a later decision about the same subject supersedes an
earlier one where the action says so (a second ``identify`` of one occurrence replaces the first).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from trapline.errors import DecisionError
from trapline.storage import Storage

DECISIONS_DIR = "_decisions"


class DetectionKey(BaseModel):
    """One detection row, keyed as in the detections table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str
    content_id: str
    detection_index: int = Field(ge=0)


class _DecisionBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    decision_id: str = Field(description="sortable by time: 20260101T120000123456Z-1a2b3c4d")
    at: dt.datetime = Field(description="when it was recorded (UTC)")
    who: str = Field(min_length=1, max_length=200, description="the person (or token name) who decided")
    comment: str | None = Field(default=None, max_length=2000)


class IdentifyOccurrence(_DecisionBase):
    """A person's determination of an occurrence: overrides the model's vote; the latest one wins."""

    action: Literal["identify"] = "identify"
    occurrence_id: str
    label: str = Field(min_length=1, max_length=200)
    detections: list[DetectionKey] = Field(default_factory=list, description="the occurrence's detections then")
    model: str | None = Field(default=None, description="NAME:VERSION of the tables the detections are in")
    filters_hash: str | None = Field(default=None, description="their result set (with `model`: where to read "
                                                                "the boxes, to measure models against people)")


class ClassifyDetection(_DecisionBase):
    """A person's label for one detection (an edited classification); its occurrence is re-determined."""

    action: Literal["classify"] = "classify"
    detection: DetectionKey
    label: str = Field(min_length=1, max_length=200)


class SplitOccurrence(_DecisionBase):
    """This detection and the ones after it on its track are another animal: every later track run cuts the
    track that holds it there (whatever its occurrence id by then)."""

    action: Literal["split_occurrence"] = "split_occurrence"
    cut_at: DetectionKey = Field(description="the first detection of the part that leaves")
    occurrence_id: str | None = Field(default=None, description="the occurrence it was cut from (a record only)")


class MergeOccurrences(_DecisionBase):
    """The tracks holding these detections (one of each occurrence) are one animal: every later track run joins
    them."""

    action: Literal["merge_occurrences"] = "merge_occurrences"
    detections: list[DetectionKey] = Field(min_length=2)
    occurrence_ids: list[str] = Field(default_factory=list, description="the occurrences merged (a record only)")


class MoveDetection(_DecisionBase):
    """This detection belongs to the track holding `to`: every later track run moves it there."""

    action: Literal["move_detection"] = "move_detection"
    detection: DetectionKey
    to: DetectionKey
    occurrence_id: str | None = Field(default=None, description="the occurrence it was moved to (a record only)")

    @model_validator(mode="after")
    def _elsewhere(self) -> MoveDetection:
        if self.detection == self.to:
            raise ValueError("cannot move a detection onto itself")
        return self


TRACK_EDITS = (SplitOccurrence, MergeOccurrences, MoveDetection)

IndividualId = Annotated[str, Field(min_length=1, max_length=200, description="an individual's stable id")]


class ConfirmSighting(_DecisionBase):
    """This sighting is that individual: every later identify run keeps it there."""

    action: Literal["confirm_sighting"] = "confirm_sighting"
    sighting: DetectionKey
    individual_id: IndividualId


class RejectSighting(_DecisionBase):
    """This sighting is not that individual: no later run puts it back with that individual's sightings."""

    action: Literal["reject_sighting"] = "reject_sighting"
    sighting: DetectionKey
    individual_id: IndividualId


class MergeIndividuals(_DecisionBase):
    """Two individuals are one: `other_id`'s sightings join `individual_id`, which keeps its id and name."""

    action: Literal["merge"] = "merge"
    individual_id: IndividualId
    other_id: IndividualId

    @model_validator(mode="after")
    def _two(self) -> MergeIndividuals:
        if self.individual_id == self.other_id:
            raise ValueError(f"cannot merge individual {self.individual_id!r} into itself")
        return self


class SplitIndividual(_DecisionBase):
    """These sightings of an individual are another animal: they leave it, together, as a new individual."""

    action: Literal["split"] = "split"
    individual_id: IndividualId
    sightings: list[DetectionKey] = Field(min_length=1)


class NameIndividual(_DecisionBase):
    """A person's name for an individual; kept through every later run."""

    action: Literal["name"] = "name"
    individual_id: IndividualId
    name: str = Field(min_length=1, max_length=200)


class NewIndividual(_DecisionBase):
    """"No match": this sighting is an individual not seen before (it leaves the one it was put with)."""

    action: Literal["new_individual"] = "new_individual"
    sighting: DetectionKey


Decision = Annotated[IdentifyOccurrence | ClassifyDetection | ConfirmSighting | RejectSighting | MergeIndividuals
                     | SplitIndividual | NameIndividual | NewIndividual | SplitOccurrence | MergeOccurrences
                     | MoveDetection, Field(discriminator="action")]
INDIVIDUAL_DECISIONS = (ConfirmSighting, RejectSighting, MergeIndividuals, SplitIndividual, NameIndividual,
                        NewIndividual)
_DECISION = TypeAdapter(Decision)


def new_decision_id(now: dt.datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}"


def make(action: type[_DecisionBase], who: str, comment: str | None = None, **fields) -> Decision:
    """A new decision of class `action`, stamped now; a bad field is a DecisionError naming it."""
    now = dt.datetime.now(dt.timezone.utc)
    try:
        return action(decision_id=new_decision_id(now), at=now, who=who, comment=comment, **fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "decision"
        raise DecisionError(f"{where}: {first['msg'].removeprefix('Value error, ')}", field=where) from None


class DecisionsLog:
    """The append-only log beside one set of tables (`tables` is their root URL or a Storage on it)."""

    def __init__(self, tables: str | Storage) -> None:
        self.storage = tables if isinstance(tables, Storage) else Storage(tables)

    def append(self, decision: Decision) -> Decision:
        """Record `decision` once; its id is new, so a clash means a bug, and it is refused, not overwritten."""
        data = decision.model_dump_json().encode()
        if not self.storage.create_exclusive(data, DECISIONS_DIR, f"{decision.decision_id}.json"):
            raise DecisionError(f"decision {decision.decision_id} is already in the log")
        return decision

    def read(self) -> list[Decision]:
        """Every decision, oldest first. A file that is not a decision is an error naming it, never skipped:
        a lost decision would let a model overwrite what a person said."""
        if not self.storage.exists(DECISIONS_DIR):
            return []
        out = []
        for name in sorted(self.storage.listdir(DECISIONS_DIR)):
            if not name.endswith(".json") or name.startswith("."):
                continue
            raw = self.storage.read_bytes(DECISIONS_DIR, name)
            try:
                out.append(_DECISION.validate_python(json.loads(raw)))
            except (ValueError, ValidationError) as exc:
                raise DecisionError(f"{self.storage.url(DECISIONS_DIR, name)} is not a decision: {exc}") from None
        out.sort(key=lambda d: (d.at, d.decision_id))
        return out

    def latest_identifications(self) -> dict[str, IdentifyOccurrence]:
        """occurrence_id -> the last person's identification of it."""
        return {d.occurrence_id: d for d in self.read() if isinstance(d, IdentifyOccurrence)}

    def latest_classifications(self) -> dict[DetectionKey, ClassifyDetection]:
        """detection key -> the last person's label for it."""
        return {d.detection: d for d in self.read() if isinstance(d, ClassifyDetection)}
