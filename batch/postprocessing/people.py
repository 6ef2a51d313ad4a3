"""How far each model version agrees with people: precision and recall per label against the occurrences a person
identified (the decisions log), not only against another version.

Each identification names the detections it was made on and the set they are in (model version, filters hash),
so its boxes can be read back. A version under test "says" for that occurrence what its own kept boxes in the same
images, matched by IoU to the person's boxes, vote (their first classifier's label, else the detector's; the vote
of batch/postprocessing/determine.py); no matching box is a miss. Per label L over the identified occurrences:
precision = (person L and version L) / (version L); recall = (person L and version L) / (person L).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from batch.postprocessing.determine import vote
from model_store import ModelRef
from model_store.core.filters.repeat import pairwise_iou
from model_store.tables.decisions import DecisionsLog, IdentifyOccurrence
from model_store.tables.reader import Tables
from model_store.tables.schema import CLASSIFICATIONS, DETECTIONS
from model_store.tables.table_set import TableSet


@dataclass(frozen=True)
class Truth:
    label: str
    boxes: list[tuple[str, tuple[float, float, float, float]]]  # (uri, x1, y1, x2, y2 normalised)


def human_truth(tables: Tables) -> tuple[list[Truth], int]:
    """The latest identification of each occurrence with its boxes, and how many could not be placed (made before
    identifications named their set, or their detections are gone)."""
    idents = [i for i in DecisionsLog(tables.storage).latest_identifications().values() if i.detections]
    by_set: dict[tuple[str, str], list[IdentifyOccurrence]] = defaultdict(list)
    unplaced = 0
    for i in idents:
        if i.model is None or i.filters_hash is None:
            unplaced += 1
        else:
            by_set[(i.model, i.filters_hash)].append(i)
    out = []
    for (model, filters_hash), group in by_set.items():
        ref = ModelRef.parse(model)
        uris = sorted({d.uri for i in group for d in i.detections})
        rows = tables.read(DETECTIONS, ref.name, ref.version, filter=(ds.field("filters_hash") == filters_hash)
                           & ds.field("uri").isin(uris)).to_pandas()
        box = {(r.uri, r.content_id, int(r.detection_index)): (r.bbox_x, r.bbox_y, r.bbox_x + r.bbox_w,
                                                               r.bbox_y + r.bbox_h) for r in rows.itertuples()}
        for i in group:
            found = [(d.uri, box[(d.uri, d.content_id, d.detection_index)]) for d in i.detections
                     if (d.uri, d.content_id, d.detection_index) in box]
            if found:
                out.append(Truth(i.label, found))
            else:
                unplaced += 1
    return out, unplaced


def kept_with_classifications(tables: Tables, tset: TableSet, subset: ds.Expression | None
                              ) -> tuple[set[str], pd.DataFrame]:
    """The uris a set processed in `subset`, and its kept boxes there; with classifiers, each with
    `classifications` (pipeline order)."""
    images = tables.current_images(tset.model_name, tset.model_version, tset.filters_hash, subset)
    uris = set(images["uri"]) if not images.empty else set()
    dets = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                       kept_only=True)
    if not tset.classifiers or dets.empty:
        return uris, dets
    order = [c["name"] for c in tset.classifiers]
    cls = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                      table=CLASSIFICATIONS)
    by_det: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for row in sorted(cls.to_dict("records"), key=lambda r: order.index(r["classifier_name"])
                      if r["classifier_name"] in order else len(order)):
        by_det[(row["uri"], int(row["detection_index"]))].append(row)
    return uris, dets.assign(classifications=[by_det.get((u, int(i)), []) for u, i in
                                              zip(dets["uri"], dets["detection_index"], strict=True)])


def predictions(truth: Sequence[Truth], dets: pd.DataFrame, min_iou: float) -> list[str | None]:
    """What a version's kept boxes (`dets`, with `classifications` when it has classifiers) say of each truth."""
    by_uri = {uri: g for uri, g in dets.groupby("uri", sort=False)} if not dets.empty else {}
    out = []
    for t in truth:
        votes = []
        for uri, xyxy in t.boxes:
            g = by_uri.get(uri)
            if g is None:
                continue
            boxes = np.stack([g["bbox_x"], g["bbox_y"], g["bbox_x"] + g["bbox_w"], g["bbox_y"] + g["bbox_h"]],
                             axis=1).astype(np.float64)
            iou = pairwise_iou(np.asarray([xyxy], dtype=np.float64), boxes)[0]
            j = int(np.argmax(iou))
            if iou[j] >= min_iou:
                d = g.iloc[j]
                cls = d.get("classifications") if "classifications" in g else None
                c = cls[0] if cls is not None and len(cls) else None
                votes.append({"label": c["label"] if c is not None else d["label"],
                              "score": float(c["score"] if c is not None else d["score"])})
        out.append(vote(votes)[0])
    return out


def agreement(truth: Sequence[Truth], said: Sequence[str | None]) -> dict[str, Any]:
    """Per label precision and recall of `said` against the people's labels, and the share agreed overall."""
    labels = sorted({t.label for t in truth} | {s for s in said if s is not None})
    per_label = []
    for label in labels:
        people = sum(t.label == label for t in truth)
        model = sum(s == label for s in said)
        both = sum(t.label == label and s == label for t, s in zip(truth, said, strict=True))
        per_label.append({"label": label, "people": people, "model": model, "agreed": both,
                          "precision": round(both / model, 4) if model else None,
                          "recall": round(both / people, 4) if people else None})
    agreed = sum(t.label == s for t, s in zip(truth, said, strict=True))
    return {"identified": len(truth), "agreed": agreed, "missed": sum(s is None for s in said),
            "agreement": round(agreed / len(truth), 4) if truth else None, "per_label": per_label}


def against_people(tables: Tables, tset: TableSet, truth: Sequence[Truth], min_iou: float = 0.5) -> dict[str, Any]:
    """One set's agreement with the identifications of the images it processed."""
    processed, dets = kept_with_classifications(tables, tset, ds.field("uri").isin(
        sorted({uri for t in truth for uri, _ in t.boxes})))
    seen = [t for t in truth if any(uri in processed for uri, _ in t.boxes)]
    return {"model": f"{tset.model_name}:{tset.model_version}", "filters_hash": tset.filters_hash,
            **agreement(seen, predictions(seen, dets, min_iou))}


def agreement_with_people(tables: Tables, sets: Sequence[TableSet], min_iou: float = 0.5) -> dict[str, Any] | None:
    """Each set's agreement with the people's identifications in these tables (those of the images it processed);
    None when there are none."""
    truth, unplaced = human_truth(tables)
    if not truth:
        return None
    return {"identifications": len(truth), "unplaced": unplaced, "min_iou": min_iou,
            "versions": [against_people(tables, tset, truth, min_iou) for tset in sets]}
