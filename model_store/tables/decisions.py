"""The decisions log: what people decided about the tables, kept apart from what models produced.

A person's identification of an occurrence, a corrected classification, a detection confirmed or rejected, an image
marked empty, a box the model missed, a track cut or joined or a detection
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

from ground.errors import DecisionError
from ground.storage import Storage
from model_store.tables.locations import opened

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
    """A person's label for one detection (an edited classification, a relabel): the box is right, the label is this;
    its occurrence is re-determined."""

    action: Literal["classify"] = "classify"
    detection: DetectionKey
    label: str = Field(min_length=1, max_length=200)
    model: str | None = Field(default=None, description="NAME:VERSION whose detection it is (None: made before "
                                                        "decisions named it; applies to any version's key)")
    filters_hash: str | None = Field(default=None, description="the result set it was shown in (a record only)")


class ImageKey(BaseModel):
    """One image row, keyed as in the images table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str
    content_id: str


class _Reviewed(_DecisionBase):
    """A review of one model version's output (model_store/tables/verdicts.py reads them into true and false
    positives and misses): the version and the result set it was shown in."""

    model: str = Field(min_length=1, max_length=400, description="NAME:VERSION whose detections were reviewed")
    filters_hash: str = Field(min_length=1, max_length=64, description="the result set shown (a record only)")


class ConfirmDetection(_Reviewed):
    """This detection's box and label are right (a true positive of its version); its vote is the person's."""

    action: Literal["confirm_detection"] = "confirm_detection"
    detection: DetectionKey
    label: str = Field(min_length=1, max_length=200, description="the label confirmed (the one the person saw)")


class RejectDetection(_Reviewed):
    """This detection is not an animal, or its box is wrong (a false positive of its version): it gives no vote."""

    action: Literal["reject_detection"] = "reject_detection"
    detection: DetectionKey
    reason: Literal["not_animal", "wrong_box"] = "not_animal"


class MarkEmpty(_Reviewed):
    """No animal in this image: every detection of its version there is a false positive (unless a later decision
    about one of them says otherwise), and a box added before it no longer stands."""

    action: Literal["mark_empty"] = "mark_empty"
    image: ImageKey


class AddMissedBox(_Reviewed):
    """An animal the version missed, with its box and label (a false negative of the version)."""

    action: Literal["add_box"] = "add_box"
    image: ImageKey
    bbox: tuple[float, float, float, float] = Field(description="x, y, w, h normalised to the image (0..1)")
    label: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _inside(self) -> AddMissedBox:
        x, y, w, h = self.bbox
        if not (w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 1 + 1e-6 and y + h <= 1 + 1e-6):
            raise ValueError(f"bbox {list(self.bbox)} is not a box inside the image (x, y, w, h in 0..1, w and h > 0)")
        return self


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


class CorrectClock(_DecisionBase):
    """Camera `camera_id`'s clock was `offset_s` seconds ahead (negative: behind) for the pictures it stamped
    from `recorded_from` to `recorded_until` (its own clock's readings, as the tables hold them), and/or its
    times there are local to `zone` rather than to the deployment's. Applied on every read (model_store/tables/
    clock.py); where several cover one picture the latest wins; a `revoke` undoes it."""

    action: Literal["correct_clock"] = "correct_clock"
    camera_id: str = Field(min_length=1, max_length=200)
    recorded_from: dt.datetime = Field(description="first camera-clock reading covered (naive, as recorded)")
    recorded_until: dt.datetime = Field(description="last camera-clock reading covered (naive, as recorded)")
    offset_s: float = Field(0.0, description="how far ahead the clock was: true time = recorded - offset_s")
    zone: str | None = Field(None, description="read the times as local to this IANA zone")

    @model_validator(mode="after")
    def _sane(self) -> CorrectClock:
        if self.recorded_from.tzinfo is not None or self.recorded_until.tzinfo is not None:
            raise ValueError("recorded_from/recorded_until are the camera's own readings: give them without an "
                             "offset, as the tables show them")
        if self.recorded_until < self.recorded_from:
            raise ValueError(f"recorded_until {self.recorded_until} is before recorded_from {self.recorded_from}")
        if self.zone is not None:
            import zoneinfo
            try:
                zoneinfo.ZoneInfo(self.zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {self.zone!r} (an IANA name, e.g. Europe/Amsterdam)") from None
        elif self.offset_s == 0:
            raise ValueError("a clock correction needs an offset (offset_s) or a zone")
        return self


class MarkTimestampIssues(_DecisionBase):
    """Deployment `deployment_id`'s clock cannot be fixed (or can again, `issues` false): exported with
    Camtrap DP's `timestampIssues`."""

    action: Literal["timestamp_issues"] = "timestamp_issues"
    deployment_id: str = Field(min_length=1, max_length=200)
    issues: bool = True


class RevokeDecision(_DecisionBase):
    """An earlier decision no longer holds: readers act as if it had not been made (it stays in the log)."""

    action: Literal["revoke"] = "revoke"
    revoked_id: str = Field(min_length=1, max_length=200)


Decision = Annotated[IdentifyOccurrence | ClassifyDetection | ConfirmDetection | RejectDetection | MarkEmpty
                     | AddMissedBox | ConfirmSighting | RejectSighting | MergeIndividuals
                     | SplitIndividual | NameIndividual | NewIndividual | SplitOccurrence | MergeOccurrences
                     | MoveDetection | CorrectClock | MarkTimestampIssues | RevokeDecision,
                     Field(discriminator="action")]
REVIEW_DECISIONS = (ConfirmDetection, RejectDetection, MarkEmpty, AddMissedBox)
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
    """The append-only log beside one set of tables (`storage`: their root, opened at the door)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = opened(storage, "DecisionsLog")

    def append(self, decision: Decision) -> Decision:
        """Record `decision` once; its id is new, so a clash means a bug, and it is refused, not overwritten."""
        data = decision.model_dump_json().encode()
        if not self.storage.create_exclusive(data, DECISIONS_DIR, f"{decision.decision_id}.json"):
            raise DecisionError(f"decision {decision.decision_id} is already in the log")
        return decision

    def read(self, actions: tuple[str, ...] | None = None) -> list[Decision]:
        """Every decision (of the given `actions` only, when given), oldest first. A file that is not a decision is
        an error naming it, never skipped: a lost decision would let a model overwrite what a person said."""
        wanted = None if actions is None else [f'"action":"{a}"'.encode() for a in actions]
        if not self.storage.exists(DECISIONS_DIR):
            return []
        out = []
        for name in sorted(self.storage.listdir(DECISIONS_DIR)):
            if not name.endswith(".json") or name.startswith("."):
                continue
            raw = self.storage.read_bytes(DECISIONS_DIR, name)
            if wanted is not None and not any(w in raw for w in wanted):  # as written by `append`: no parse needed
                continue
            try:
                out.append(_DECISION.validate_python(json.loads(raw)))
            except (ValueError, ValidationError) as exc:
                raise DecisionError(f"{self.storage.url(DECISIONS_DIR, name)} is not a decision: {exc}") from None
        out.sort(key=lambda d: (d.at, d.decision_id))
        return out

    def latest_identifications(self) -> dict[str, IdentifyOccurrence]:
        """occurrence_id -> the last person's identification of it."""
        return {d.occurrence_id: d for d in self.read() if isinstance(d, IdentifyOccurrence)}

    def time_decisions(self) -> list[CorrectClock | MarkTimestampIssues]:
        """The clock corrections and timestamp-issue marks in force (revoked ones left out), oldest first."""
        decisions = self.read(("correct_clock", "timestamp_issues", "revoke"))
        revoked = {d.revoked_id for d in decisions if isinstance(d, RevokeDecision)}
        return [d for d in decisions if isinstance(d, CorrectClock | MarkTimestampIssues)
                and d.decision_id not in revoked]

    def latest_classifications(self) -> dict[DetectionKey, ClassifyDetection]:
        """detection key -> the last person's label for it."""
        return {d.detection: d for d in self.read() if isinstance(d, ClassifyDetection)}
