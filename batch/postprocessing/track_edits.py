"""People's fixes to tracks, applied after the tracker on every run: a cut, a join, a detection moved.

The decisions (model_store/tables/decisions.py `SplitOccurrence`, `MergeOccurrences`, `MoveDetection`) name
detections, never occurrence ids: an occurrence id depends on the tracker's config and on the first detection,
both of which a later run may change, while a detection's key does not. So each later run links as the tracker
says, then folds the edits over its tracks in the log's order: a cut starts a new track at the named detection
(it and the detections after it on its track leave), a join gives the named detections' tracks one id, a move
puts one detection on the track of another. A detection the run does not hold (filtered out, another scope) is
skipped. The links a person made are certain: they carry link confidence 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_store.tables.decisions import Decision, MergeOccurrences, MoveDetection, SplitOccurrence

# (uri, content_id, detection_index)
Key = tuple[str, str, int]


def apply_track_edits(track: np.ndarray, sure: np.ndarray, keys: Sequence[Key],
                      decisions: Sequence[Decision]) -> tuple[np.ndarray, np.ndarray, int]:
    """(track ids, link confidences, edits applied) after the people's edits, oldest first. `keys` are the
    detections' keys in the order of `track`, which is time order within each camera."""
    edits = [d for d in decisions if isinstance(d, (SplitOccurrence, MergeOccurrences, MoveDetection))]
    if not edits or not len(track):
        return track, sure, 0
    track, sure = track.copy(), sure.copy()
    where = {k: i for i, k in enumerate(keys)}
    next_id = int(track.max()) + 1
    applied = 0

    def pos(k) -> int | None:
        return where.get((k.uri, k.content_id, int(k.detection_index)))

    for d in edits:
        if isinstance(d, SplitOccurrence):
            p = pos(d.cut_at)
            if p is None:
                continue
            after = np.flatnonzero(track == track[p])
            after = after[after >= p]
            track[after], sure[p] = next_id, 1.0
            next_id += 1
        elif isinstance(d, MergeOccurrences):
            found = [p for p in map(pos, d.detections) if p is not None]
            if len(found) < 2:
                continue
            ids = np.unique(track[found])
            members = np.isin(track, ids)
            # the first detection of each joined track now follows a person's link: certain
            sure[[int(np.flatnonzero(track == i)[0]) for i in ids]] = 1.0
            track[members] = ids.min()
        else:
            p, q = pos(d.detection), pos(d.to)
            if p is None or q is None:
                continue
            track[p], sure[p] = track[q], 1.0
        applied += 1
    return track, sure, applied
