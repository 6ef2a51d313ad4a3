"""An occurrence's determination: the model's vote over its detections, and what people decided over it.

The vote: each detection of the occurrence gives one vote (its first classifier's label and score, or
the detector's when the set has no classifications); a person's label for a detection (`ClassifyDetection`
in the decisions log, or a `ConfirmDetection` of its label) replaces that detection's vote, with score 1, and a
detection a person rejected (or whose image they marked empty) gives no vote (model_store/tables/verdicts.py). The
label with the highest summed score wins (ties: the label first in alphabetical order, so a rerun gives the same
answer); its score is that sum over the number of votes (1.0: every frame agreed with full confidence).

A person's identification (`IdentifyOccurrence`) overrides the vote: the determination is `human`, and
the vote stays beside it as `model_label`, so a model that disagrees with a person is visible and counted,
never silently applied. An identification names its occurrence by id; when the id is gone (another model
version, another tracker config) it follows the occurrence that holds most of the detections it was made
on (`carry_identifications`).

Pure: the tables and the log are read by the callers (batch/postprocessing/tracks.py when writing, and
batch/postprocessing/occurrences.py when reading, so that a decision made after a run counts at once).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from model_store.tables.decisions import DetectionKey, IdentifyOccurrence


class PersonLabel(Protocol):
    label: str | None  # None: not an animal


class PersonLabels(Protocol):
    """What people said of each detection: an edited classification's mapping, or model_store/tables/verdicts.py
    `PersonVerdicts`."""

    def get(self, key: DetectionKey, default: Any = None) -> PersonLabel | None: ...

MODEL, HUMAN = "model", "human"


@dataclass(frozen=True)
class Determination:
    label: str | None
    score: float | None
    determined_by: str  # model | human
    model_label: str | None
    model_score: float | None
    identified_by: str | None = None
    decision_id: str | None = None
    comment: str | None = None

    @property
    def disagrees(self) -> bool:
        """A person decided, and the model's vote names another label."""
        return self.determined_by == HUMAN and self.model_label is not None and self.model_label != self.label

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def key_of(vote: Mapping[str, Any]) -> DetectionKey:
    return DetectionKey(uri=vote["uri"], content_id=vote["content_id"], detection_index=int(vote["detection_index"]))


def with_classifications(votes: Sequence[Mapping[str, Any]], classified: PersonLabels | None) -> list[dict[str, Any]]:
    """The votes with each person-labelled detection's vote replaced by the person's label (score 1), and those of
    detections a person said are not an animal left out."""
    out = []
    for v in votes:
        edit = classified.get(key_of(v)) if classified else None
        if edit is None:
            out.append(dict(v))
        elif edit.label is not None:
            out.append({**v, "label": edit.label, "score": 1.0, "source": HUMAN})
    return out


def vote(votes: Iterable[Mapping[str, Any]]) -> tuple[str | None, float | None]:
    """(label, score) of the vote (see the module docstring); (None, None) without votes."""
    totals: dict[str, float] = defaultdict(float)
    n = 0
    for v in votes:
        n += 1
        if v.get("label") is not None:
            totals[v["label"]] += float(v.get("score") or 0.0)
    if not totals:
        return None, None
    label = min(totals, key=lambda lab: (-totals[lab], lab))
    return label, round(totals[label] / n, 6)


def determine(votes: Sequence[Mapping[str, Any]], identification: IdentifyOccurrence | None = None,
              classified: PersonLabels | None = None) -> Determination:
    """The determination of one occurrence from its votes and the decisions that concern it."""
    model_label, model_score = vote(with_classifications(votes, classified or {}))
    if identification is None:
        return Determination(model_label, model_score, MODEL, model_label, model_score)
    return Determination(identification.label, 1.0, HUMAN, model_label, model_score, identification.who,
                         identification.decision_id, identification.comment)


def carry_identifications(occurrences: Mapping[str, Sequence[Mapping[str, Any]]],
                          identifications: Mapping[str, IdentifyOccurrence]) -> dict[str, IdentifyOccurrence]:
    """occurrence_id -> the identification that applies to it.

    `occurrences` maps each occurrence id to its detection keys ({uri, content_id, detection_index}). An
    identification of an id present applies to it. One whose id is absent applies to the occurrence sharing
    most of its detections (same keys; else, for another model version whose detection indices differ, the
    same images), when exactly one occurrence shares the most and no identification of its own id exists.
    """
    out = {oid: ident for oid, ident in identifications.items() if oid in occurrences}
    orphans = [ident for oid, ident in identifications.items() if oid not in occurrences and ident.detections]
    if not orphans:
        return out
    by_key: dict[tuple[str, str, int], str] = {}
    by_image: dict[tuple[str, str], set[str]] = defaultdict(set)
    for oid, dets in occurrences.items():
        for d in dets:
            by_key[(d["uri"], d["content_id"], int(d["detection_index"]))] = oid
            by_image[(d["uri"], d["content_id"])].add(oid)
    for ident in sorted(orphans, key=lambda i: (i.at, i.decision_id)):  # a later one wins a shared target
        target = _best([by_key.get((k.uri, k.content_id, k.detection_index)) for k in ident.detections])
        if target is None:
            target = _best([oid for k in ident.detections for oid in by_image.get((k.uri, k.content_id), ())])
        if target is not None and target not in identifications:
            out[target] = ident
    return out


def _best(candidates: list[str | None]) -> str | None:
    counts: dict[str, int] = defaultdict(int)
    for c in candidates:
        if c is not None:
            counts[c] += 1
    if not counts:
        return None
    top = max(counts.values())
    winners = [c for c, n in counts.items() if n == top]
    return winners[0] if len(winners) == 1 else None
