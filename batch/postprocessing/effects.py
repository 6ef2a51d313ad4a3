"""What a post-processing run changed for the people reading occurrences: how many determinations differ afterwards.

`images_changed` counts images whose kept boxes changed; a reviewer asks a different question: after this run, how
many of the animals I look at have another name (or are gone, or are new)? An occurrence after the run is matched
to the occurrence before it that held most of its detections (as identifications are carried,
batch/postprocessing/determine.py `carry_identifications`); it counts as changed when it has no such occurrence or its
determined label differs. An occurrence before the run whose images were re-filtered and that no occurrence after it
matches (every box dropped, or absorbed into another) counts too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from typing import Any

Key = tuple[str, str, int]


def _keys(detections: Iterable[Mapping[str, Any]]) -> list[Key]:
    return [(d["uri"], d["content_id"], int(d["detection_index"])) for d in detections]


def determinations_changed(before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]],
                           touched: Collection[str]) -> int:
    """Occurrences whose determination differs after a run. `before` and `after` are occurrence rows (their
    `occurrence_id`, `label` and `detections` keys); `touched` the uris of the images the run re-filtered."""
    owner: dict[Key, str] = {}
    label_before: dict[str, Any] = {}
    in_scope: set[str] = set()
    for row in before:
        oid = row["occurrence_id"]
        label_before[oid] = row["label"]
        for key in _keys(row["detections"]):
            owner[key] = oid
            if key[0] in touched:
                in_scope.add(oid)
    changed = 0
    matched: set[str] = set()
    for row in after:
        votes = Counter(owner[k] for k in _keys(row["detections"]) if k in owner)
        if not votes:
            changed += 1  # a new occurrence
            continue
        oid, _ = max(votes.items(), key=lambda kv: (kv[1], kv[0]))
        matched.add(oid)
        changed += label_before[oid] != row["label"]
    return changed + len(in_scope - matched)
