"""Choose what a run processes: time window, newest per camera, already-done images, a limit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Set
from dataclasses import dataclass

from batch.tables.archive import ArchiveEntry


@dataclass(frozen=True)
class Selection:
    found: int  # image files in the archive
    selected: int  # after --since/--until/--latest-per-camera
    already_done: int  # selected images this model version and filter set already has
    todo: list[ArchiveEntry]  # what this run processes (after --limit)
    held_back: int = 0  # left for a later run by --limit


def in_window(when: dt.datetime | None, since: dt.datetime | None, until: dt.datetime | None) -> bool:
    """since <= when <= until (both ends inclusive); unknown times are outside any window."""
    if since is None and until is None:
        return True
    if when is None:
        return False
    return (since is None or when >= since) and (until is None or when <= until)


def latest_per_camera(entries: Iterable[ArchiveEntry]) -> list[ArchiveEntry]:
    """The newest capture of each camera (ties broken by path); files without a camera form one group."""
    best: dict[str | None, ArchiveEntry] = {}
    for e in entries:
        cur = best.get(e.camera_id)
        if cur is None or (e.capture_time or dt.datetime.min, e.rel_path) > (cur.capture_time or dt.datetime.min,
                                                                              cur.rel_path):
            best[e.camera_id] = e
    return sorted(best.values(), key=lambda e: e.uri)


def select(entries: list[ArchiveEntry], done: Set[tuple[str, str]], *, latest: bool = False,
           since: dt.datetime | None = None, until: dt.datetime | None = None, limit: int | None = None) -> Selection:
    """Apply the window, then newest-per-camera, then drop done images, then the limit (in path order)."""
    chosen = [e for e in entries if in_window(e.capture_time, since, until)]
    if latest:
        chosen = latest_per_camera(chosen)
    todo = [e for e in chosen if (e.uri, e.content_id) not in done]
    already = len(chosen) - len(todo)
    held = 0
    if limit is not None and len(todo) > limit:
        held = len(todo) - limit
        todo = todo[:limit]
    return Selection(found=len(entries), selected=len(chosen), already_done=already, todo=todo, held_back=held)
