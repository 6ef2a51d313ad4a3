"""Choose what a run processes: time window, newest per camera, already-done images, a limit.

All of it on the listing's columns (Arrow): a million files are chosen from without one object per file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Set
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from model_store.tables.done import relative_key
from model_store.tables.listing import Entries, as_table, to_us

KEY = ["uri", "content_id"]  # an image version's identity: with the model version and result set, the skip key


@dataclass(frozen=True)
class Selection:
    found: int  # image files in the archive
    selected: int  # after --since/--until/--latest-per-camera
    already_done: int  # selected images this model version and filter set already has
    todo: Entries  # what this run processes (after --limit), in path order
    held_back: int = 0  # left for a later run by --limit
    clips_redone: int = 0  # of `todo`, the clips done before with other clip settings (redone for this run's)


def in_window(when: dt.datetime | None, since: dt.datetime | None, until: dt.datetime | None) -> bool:
    """since <= when <= until (both ends inclusive); unknown times are outside any window."""
    if since is None and until is None:
        return True
    if when is None:
        return False
    return (since is None or when >= since) and (until is None or when <= until)


def _window(table: pa.Table, since: dt.datetime | None, until: dt.datetime | None) -> pa.Table:
    if since is None and until is None:
        return table
    times = table["capture_time_us"]
    mask = pc.greater_equal(times, 0)  # -1: unknown, outside any window
    if since is not None:
        mask = pc.and_(mask, pc.greater_equal(times, to_us(since)))
    if until is not None:
        mask = pc.and_(mask, pc.less_equal(times, to_us(until)))
    return table.filter(mask)


def latest_per_camera(entries) -> Entries:
    """The newest capture of each camera (ties broken by path), in uri order; files without a camera form
    one group."""
    table = as_table(entries)
    best: dict[str | None, tuple[int, str, int]] = {}
    for i, (camera, when, rel) in enumerate(zip(*(table[c].to_pylist() for c in
                                                  ("camera_id", "capture_time_us", "rel_path")), strict=True)):
        cur = best.get(camera)
        if cur is None or (when, rel) > cur[:2]:  # an unknown time (-1) loses to any known one
            best[camera] = (when, rel, i)
    chosen = table.take(sorted(i for _, _, i in best.values()))
    return Entries(chosen.take(pc.sort_indices(chosen, [("uri", "ascending")])))


def not_done(table: pa.Table, done: Set[tuple[str, str]] | pa.Table | pa.ChunkedArray) -> pa.Table:
    """The rows of `table` whose image is not in `done`, in order: a set of (uri, content_id), a table of them, or
    the `relative_key`s of one archive (`Tables.done_under`: what a run plans with, the lightest)."""
    if isinstance(done, pa.ChunkedArray | pa.Array):
        if not len(done) or not table.num_rows:
            return table
        seen = pc.is_in(relative_key(table["rel_path"], table["content_id"]), value_set=done)
        return table.filter(pc.invert(seen))
    if not isinstance(done, pa.Table):
        mask = [key not in done for key in zip(table["uri"].to_pylist(), table["content_id"].to_pylist(),
                                                strict=True)] if done else [True] * table.num_rows
        return table.filter(pa.array(mask, pa.bool_()))
    if not done.num_rows or not table.num_rows:
        return table
    keys = table.select(KEY).append_column("row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    left = keys.join(done.select(KEY), keys=KEY, join_type="left anti", use_threads=False)
    rows = left["row"]
    return table.take(rows.take(pc.sort_indices(rows)))  # a join keeps no order: back to path order


@dataclass(frozen=True)
class Window:
    """Which listed images a run takes: those captured in [since, until] (None: open), only each camera's newest
    (`latest`), and at most `limit` of what is left to do."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    latest: bool = False
    limit: int | None = None


def select(entries, done: Set[tuple[str, str]] | pa.Table | pa.ChunkedArray, window: Window = Window(), *,
           redo: pa.ChunkedArray | None = None, confirm: Callable[[pa.Table], pa.Table] | None = None) -> Selection:
    """Apply the window, then newest-per-camera, then drop done images, then the limit (in path order). `redo`:
    the `relative_key`s of clips done with other settings (`Tables.done_under`), counted when they are in `todo`.
    `confirm`: drops from what is left to do the files a content digest shows done (tables/digests.py), before the
    limit, so a moved archive's files are read to be confirmed only when the window chose them."""
    table = as_table(entries)
    chosen, limit = _window(table, window.since, window.until), window.limit
    if window.latest:
        chosen = latest_per_camera(chosen).table
    todo = not_done(chosen, done)
    if confirm is not None and todo.num_rows:
        todo = confirm(todo)
    already = chosen.num_rows - todo.num_rows
    held = 0
    if limit is not None and todo.num_rows > limit:
        held = todo.num_rows - limit
        todo = todo.slice(0, limit)
    redone = 0
    if redo is not None and len(redo) and todo.num_rows:
        redone = pc.sum(pc.is_in(relative_key(todo["rel_path"], todo["content_id"]), value_set=redo)).as_py() or 0
    return Selection(found=table.num_rows, selected=chosen.num_rows, already_done=already, todo=Entries(todo),
                     held_back=held, clips_redone=redone)
