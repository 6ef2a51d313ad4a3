"""People's verdicts on one model version's detections: the review decisions of the log (model_store/tables/
decisions.py) folded into what a person says each detection is (a label, or not an animal) and the animals each
image holds that the version missed.

The rules, applied in the log's order (time, then id), so the latest decision about a subject wins:

- a detection's verdict is its latest `confirm_detection` (the label confirmed), `classify` (the person's label: a
  relabel) or `reject_detection` (not an animal, or a wrong box);
- `mark_empty` on an image: every detection of the version there is not an animal, unless a later decision about that
  detection says otherwise, and the boxes added to the image before the mark no longer stand;
- `add_box`: an animal the version missed, with its box and label;
- a revoked decision (`revoke`) counts as never made.

Each review decision names the version it was made on (`model`): a version is judged only by what people said of its
own output. A `classify` made before decisions named their version applies to every version's detection of that key,
as it always has. Readers: the occurrences' vote (batch/postprocessing/determine.py: a rejected detection gives no
vote, a confirmed one votes the person's label) and the accuracy of a version (batch/postprocessing/accuracy.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from model_store.tables.decisions import (
    AddMissedBox,
    ClassifyDetection,
    ConfirmDetection,
    Decision,
    DetectionKey,
    MarkEmpty,
    RejectDetection,
    RevokeDecision,
)

VERDICT_ACTIONS = ("confirm_detection", "reject_detection", "classify", "mark_empty", "add_box", "revoke")
Image = tuple[str, str]  # (uri, content_id)


@dataclass(frozen=True)
class Verdict:
    """What a person says one detection is: `label`, or None (not an animal), and the decision in force."""

    label: str | None
    decision: ClassifyDetection | ConfirmDetection | RejectDetection | MarkEmpty


def _order(d: Decision) -> tuple:
    return d.at, d.decision_id


class PersonVerdicts:
    """The verdicts in force for one model version (`model` NAME:VERSION; None: every version's decisions). Looked up
    like a mapping of DetectionKey -> Verdict (`get`), so the occurrences' vote takes it where it took the edited
    classifications."""

    def __init__(self, decisions: Iterable[Decision], model: str | None = None) -> None:
        decisions = list(decisions)
        revoked = {d.revoked_id for d in decisions if isinstance(d, RevokeDecision)}
        self.detections: dict[DetectionKey, Verdict] = {}
        self.empty: dict[Image, MarkEmpty] = {}
        self.added: dict[Image, list[AddMissedBox]] = defaultdict(list)
        for d in sorted(decisions, key=_order):
            made_on = getattr(d, "model", None)
            if d.decision_id in revoked or (model is not None and made_on is not None and made_on != model):
                continue
            if isinstance(d, ConfirmDetection | ClassifyDetection):
                self.detections[d.detection] = Verdict(d.label, d)
            elif isinstance(d, RejectDetection):
                self.detections[d.detection] = Verdict(None, d)
            elif isinstance(d, MarkEmpty):
                image = (d.image.uri, d.image.content_id)
                self.empty[image] = d
                self.added.pop(image, None)
            elif isinstance(d, AddMissedBox):
                self.added[(d.image.uri, d.image.content_id)].append(d)

    def get(self, key: DetectionKey, default: Verdict | None = None) -> Verdict | None:
        """The verdict on one detection: its own latest, or its image's empty mark when that is later."""
        own = self.detections.get(key)
        mark = self.empty.get((key.uri, key.content_id))
        if mark is not None and (own is None or _order(mark) > _order(own.decision)):
            return Verdict(None, mark)
        return own or default

    def images(self) -> set[Image]:
        """Every image a verdict, an empty mark or an added box is about."""
        return ({(k.uri, k.content_id) for k in self.detections} | set(self.empty)
                | {i for i, boxes in self.added.items() if boxes})

    def __bool__(self) -> bool:
        return bool(self.detections or self.empty or self.added)
