"""Score thresholds from what people saw: per label of a version, the lowest score at which its reviewed detections
reach a target precision, with the recall kept there, each with its Wilson 95 % interval and its k of n; per camera
where that camera has evidence enough, else the label's.

The evidence is batch/postprocessing/accuracy.py's (`gather`): each judged box with what people say it is and what the
version said, and the version's score. For a label L and a threshold t, the version's answers are its reviewed boxes
labelled L scoring >= t, right where people say L too (a confirmed box; a relabelled or rejected one, or one in an
image marked empty, is wrong). Precision(t) = right / answers; recall(t) = right / every box people call L (the
version's boxes of any label and score, and the boxes people added: a box below t is a miss). The proposal is the
lowest t (a reviewed box's score) with precision(t) >= the target. A label gets none when it has fewer than
`min_label` reviewed detections, or when no t reaches the target (the best precision is given). A camera gets its own
threshold for L when it has at least `min_camera` reviewed detections the version labelled L and reaches the target
on them; else the label's applies there.

Used by `trapline models thresholds` (batch/postprocessing/thresholds_cli.py) and
`GET /v1/models/{name}/{version}/thresholds` (batch/views/review.py); `--publish` is thresholds_publish.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from batch.postprocessing.accuracy import Evidence, gather
from batch.postprocessing.accuracy_stats import CONFIDENCE, NONE, rate
from batch.postprocessing.detection_review import Reviewing
from batch.postprocessing.occurrences import SetPlace
from batch.postprocessing.thresholds_rule import FILTER, MIN_CAMERA, MIN_LABEL, TARGET, rule
from ground.errors import BatchError


@dataclass(frozen=True)
class Judged:
    """One judged box: what people call it (NONE: not an animal), what the version said (NONE: a box people added),
    its score (None for an added box) and its camera."""

    people: str
    model: str
    score: float | None
    camera_id: str | None = None


def lowest(judged: Sequence[Judged], label: str, target: float, min_n: int) -> dict[str, Any]:
    """The lowest threshold for `label` over `judged` (see the module docstring), or why there is none."""
    mine = sorted(((j.score, j.people == label) for j in judged if j.model == label and j.score is not None),
                  key=lambda p: -p[0])
    truth = sum(j.people == label for j in judged)
    out: dict[str, Any] = {"threshold": None, "reviewed": len(mine), "people": truth}
    if len(mine) < min_n:
        return {**out, "reason": f"{len(mine)} reviewed detection(s) labelled {label}; at least {min_n} needed"}
    best = found = None
    right = 0
    for i, (score, ok) in enumerate(mine):
        right += ok
        if i + 1 < len(mine) and mine[i + 1][0] == score:
            continue  # a threshold keeps every box of its score
        here = (score, right, i + 1)
        if best is None or right / (i + 1) > best[1] / best[2]:
            best = here
        if right / (i + 1) >= target:
            found = here
    if found is None:
        t, k, n = best  # type: ignore[misc]
        return {**out, "best": {"threshold": t, "precision": rate(k, n)},
                "reason": f"precision stays below {target:g} at every threshold (best {k}/{n} = {k / n:.3f} at "
                          f"score >= {t:.4f})"}
    t, k, n = found
    return {**out, "threshold": t, "precision": rate(k, n), "recall": rate(k, truth), "kept": n, "reason": None}


def propose(judged: Sequence[Judged], target: float = TARGET, min_label: int = MIN_LABEL,
            min_camera: int = MIN_CAMERA) -> dict[str, Any]:
    """Per label the lowest threshold reaching `target`, with its cameras; and the filter config that applies them."""
    if not 0 < target <= 1:
        raise BatchError(f"the target precision must be in (0, 1], got {target:g}")
    labels = sorted({j.model for j in judged} - {NONE})
    cameras = sorted({j.camera_id for j in judged if j.camera_id is not None})
    per_label, min_scores, by_camera = [], {}, {}
    for label in labels:
        entry = {"label": label, **lowest(judged, label, target, min_label), "cameras": []}
        if entry["threshold"] is not None:
            min_scores[label] = entry["threshold"]
        for cam in cameras:
            here = [j for j in judged if j.camera_id == cam]
            if sum(j.model == label for j in here) < min_camera:
                continue
            own = lowest(here, label, target, min_camera)
            entry["cameras"].append({"camera_id": cam, **own, "uses": "camera" if own["threshold"] is not None
                                     else "label"})
            if own["threshold"] is not None:
                by_camera.setdefault(cam, {})[label] = own["threshold"]
        per_label.append(entry)
    return {"target_precision": target, "confidence": CONFIDENCE, "interval": "wilson",
            "min_label_evidence": min_label, "min_camera_evidence": min_camera,
            "rule": rule(target, min_label, min_camera), "labels": per_label,
            "filter": {"name": FILTER, "config": {"min_scores": min_scores, "cameras": by_camera}}}


def judged_of(evidence: Sequence[Evidence]) -> list[Judged]:
    return [Judged(e.people, e.model, e.score, e.camera_id) for e in evidence]


def thresholds_of(r: Reviewing, target: float = TARGET, min_label: int = MIN_LABEL,
                  min_camera: int = MIN_CAMERA) -> dict[str, Any]:
    """The proposal for one result set, with the decisions it rests on (refused when nobody reviewed any of it)."""
    evidence, coverage = gather(r)
    if not any(e.score is not None for e in evidence):
        raise BatchError(f"no reviewed detections of {r.model} [filters {r.tset.filters_hash}] in {r.tables.url}: "
                         "confirm, reject, relabel, mark empty or add boxes first (`trapline review`, the console's "
                         "Review page)")
    out = propose(judged_of(evidence), target, min_label, min_camera)
    ids = sorted({e.decision_id for e in evidence})
    return {"model": r.model, "filters_hash": r.tset.filters_hash, "tables": r.tables.url, **out,
            "coverage": coverage, "decisions": {"count": len(ids), "ids": ids}}


def proposal(where: SetPlace, target: float = TARGET, min_label: int = MIN_LABEL,
             min_camera: int = MIN_CAMERA) -> dict[str, Any]:
    """`thresholds_of` the set `where` names (the version's newest set unless a filters hash is given)."""
    if not 0 < target <= 1:  # before reading anything
        raise BatchError(f"the target precision must be in (0, 1], got {target:g}")
    return thresholds_of(Reviewing.open(where), target, min_label, min_camera)
