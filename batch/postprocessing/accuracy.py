"""How accurate one model version is, from what people decided about its output: only over what people looked at,
and saying how much that is.

The evidence is the review decisions made on the version (model_store/tables/verdicts.py folds them): a confirmed
detection is a true positive with the model's label right; a relabelled one (`classify`, or a confirmation of a label
the set no longer says) a true positive whose label is off the diagonal; a rejected one, or one in an image marked
empty, a false positive; a box people added a false negative. A kept detection of a reviewed image that nobody
judged is no evidence either way. The figures (batch/postprocessing/accuracy_stats.py) are given overall, per label
and per camera (and per label within each camera), with the confusion table, each rate with its Wilson 95 % interval
and its k of n.

Used by `trapline models accuracy` and `trapline models show --tables` (batch/postprocessing/review_cli.py) and
`GET /v1/models/{name}/{version}/accuracy` (batch/views/review.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from batch.postprocessing.accuracy_stats import CONFIDENCE, NONE, detection_scores, label_scores, rate, scores
from batch.postprocessing.detection_review import Reviewing, said_label
from batch.postprocessing.determine import key_of
from batch.postprocessing.occurrences import SetPlace
from model_store.tables.decisions import MarkEmpty, RejectDetection
from model_store.tables.verdicts import VERDICT_ACTIONS, PersonVerdicts

DEFINITIONS = ("confirmed: true positive; relabelled: true positive, label off the diagonal; rejected or in an image "
               "marked empty: false positive; added box: false negative; a detection nobody judged: no evidence")


@dataclass(frozen=True)
class Evidence:
    """One judged box: what people say it is (NONE: not an animal) and what the version said (NONE: no box)."""

    kind: str  # confirmed | relabelled | rejected | empty | missed
    camera_id: str | None
    people: str
    model: str
    uri: str
    decision_id: str
    score: float | None = None  # the version's score of the box (None: a box people added)


def _kind(verdict: Any, said: str) -> str:
    if isinstance(verdict.decision, MarkEmpty):
        return "empty"
    if isinstance(verdict.decision, RejectDetection):
        return "rejected"
    return "confirmed" if verdict.label == said else "relabelled"


def gather(r: Reviewing) -> tuple[list[Evidence], dict[str, Any]]:
    """The evidence about one set, and how much of the set it covers."""
    verdicts = PersonVerdicts(r.log.read(VERDICT_ACTIONS), r.model)
    images = r.tables.current_images(r.tset.model_name, r.tset.model_version, r.tset.filters_hash)
    total_images = len(images)
    total_boxes = int(images["detection_count"].fillna(0).sum()) if total_images else 0
    current = {} if images.empty else dict(zip(zip(images["uri"], images["content_id"], strict=True),
                                               images["camera_id"], strict=True))
    camera_of = {uri: camera for (uri, _), camera in current.items()}
    looked = sorted(i for i in verdicts.images() if i in current)
    out: list[Evidence] = []
    if looked:
        for row in r.kept_boxes_in([u for u, _ in looked]).to_dict("records"):
            key = key_of(row)
            v = verdicts.get(key)
            if v is None or (key.uri, key.content_id) not in current:
                continue
            said = said_label(row)
            out.append(Evidence(_kind(v, said), current[(key.uri, key.content_id)], v.label or NONE, said, key.uri,
                                v.decision.decision_id, float(row["score"])))
        for image in looked:
            for box in verdicts.added.get(image, ()):
                out.append(Evidence("missed", current[image], box.label, NONE, image[0], box.decision_id))
    # an image marked empty with no box counts as looked at: a true negative, no pair
    reviewed = {e.uri for e in out} | {uri for uri, cid in verdicts.empty if (uri, cid) in current}
    boxes = sum(e.kind != "missed" for e in out)
    coverage = {"images": total_images, "reviewed_images": rate(len(reviewed), total_images),
                "detections": total_boxes, "reviewed_detections": rate(boxes, total_boxes),
                "added_boxes": sum(e.kind == "missed" for e in out),
                "kinds": {k: sum(e.kind == k for e in out) for k in ("confirmed", "relabelled", "rejected", "empty",
                                                                       "missed")},
                "reviewed_per_camera": dict(Counter(camera_of[u] for u in reviewed))}
    return out, coverage


def accuracy_of(r: Reviewing) -> dict[str, Any]:
    """The version's accuracy from people's decisions (see the module docstring)."""
    evidence, coverage = gather(r)
    pairs = [(e.people, e.model) for e in evidence]
    by_camera: dict[str | None, list[Evidence]] = defaultdict(list)
    for e in evidence:
        by_camera[e.camera_id].append(e)
    per_camera = [{"camera_id": cam, "reviewed_images": coverage["reviewed_per_camera"].get(cam, 0),
                   **detection_scores([(e.people, e.model) for e in group]),
                   "per_label": label_scores([(e.people, e.model) for e in group])}
                  for cam, group in sorted(by_camera.items(), key=lambda kv: str(kv[0]))]
    return {"model": r.model, "filters_hash": r.tset.filters_hash, "tables": r.tables.url,
            "confidence": CONFIDENCE, "interval": "wilson", "definitions": DEFINITIONS, "coverage": coverage,
            **scores(pairs), "per_camera": per_camera}


def measure(where: SetPlace) -> dict[str, Any]:
    """`accuracy_of` the set `where` names (the version's newest set unless a filters hash is given)."""
    return accuracy_of(Reviewing.open(where))
