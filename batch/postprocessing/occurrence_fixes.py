"""`trapline occurrences review | split | merge | move`: see the least certain tracks and fix them from the shell;
the runners and printers of the registry's `occurrences` commands (batch/commands.py; options: options.py).

The same functions as the HTTP routes (batch/postprocessing/occurrences.py): a fix is a decision in the tables'
decisions log, applied by the next `trapline postprocess --filter track` and every run after it.
"""

from __future__ import annotations

import json
from typing import Any

from batch.postprocessing import occurrences
from batch.postprocessing.determine import key_of
from batch.postprocessing.options import (
    MergeOptions,
    MoveOptions,
    OccurrenceFixOptions,
    OccurrenceReviewOptions,
    SplitOptions,
)
from ground.errors import BatchError
from ground.printed import Printed
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables

APPLIES = "recorded; it applies at the next `trapline postprocess --filter track` over these tables"


def review(o: OccurrenceReviewOptions, progress: Any = None) -> Printed:
    occ = occurrences.load(Tables(open_location(o.tables)), o.model, o.filters_hash)
    queue = occurrences.review_queue(occ.rows, o.below)
    lines = [f"{len(queue)} occurrence(s) with a link under {o.below} "
             f"({occ.tset.model_name}:{occ.tset.model_version} [filters {occ.tset.filters_hash}])"]
    listed = []
    for row in queue.head(o.limit).to_dict("records"):
        at = [key_of(d) for d in row["detections"]].index(key_of(row["weakest_link"]))
        listed.append({"occurrence_id": row["occurrence_id"], "link_confidence": row["link_confidence"],
                       "frames": row["frames"], "label": row["label"], "weakest_frame": at})
        lines.append(f"  {row['occurrence_id']}  confidence {row['link_confidence']:.2f}  {row['frames']:>4} frame(s)  "
                     f"{row['label'] or '-'}  weakest link at frame {at}")
    return Printed({"below": o.below, "total": len(queue), "occurrences": listed}, "\n".join(lines))


def _frame_key(place: occurrences.SetPlace, o: OccurrenceFixOptions, frame: int) -> Any:
    occ = place.load()
    frames = occurrences.frames(place.tables, occ, occurrences.find(occ, o.occurrence))
    if not 0 <= frame < len(frames):
        raise BatchError(f"--frame must be 0..{len(frames) - 1}, got {frame}")
    return key_of(frames[frame])


def _place(o: OccurrenceFixOptions) -> occurrences.SetPlace:
    return occurrences.SetPlace(Tables(open_location(o.tables)), o.model, o.filters_hash)


def _recorded(decision: dict[str, Any]) -> Printed:
    return Printed(decision, f"{json.dumps(decision)}\n{APPLIES}")


def split(o: SplitOptions, progress: Any = None) -> Printed:
    place = _place(o)  # the tables opened once: the frame's key and the decision read through them
    return _recorded(occurrences.split(place, o.occurrence, _frame_key(place, o, o.frame), o.who, o.comment))


def merge(o: MergeOptions, progress: Any = None) -> Printed:
    return _recorded(occurrences.merge(_place(o), o.occurrence, o.other, o.who, o.comment))


def move(o: MoveOptions, progress: Any = None) -> Printed:
    place = _place(o)  # as split
    return _recorded(occurrences.move(place, o.occurrence, _frame_key(place, o, o.frame), o.to, o.who, o.comment))
