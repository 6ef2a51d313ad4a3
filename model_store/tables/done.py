"""What a rerun skips: the done-check over one result set's image rows.

A still is done when any of its rows is (a failure counts, but for a read error, which is usually transient, and
for every failure with `--retry-failed`). A clip is judged by its current row, the newest, as readers pick it: it is
done only when that row was made with the run's clip settings (`ClipSettings.hash` in `images.clip_settings`), or
by a run before clip rows carried theirs. A clip done with other settings is redone, and its new row supersedes
the old one for every reader; a rerun with the same settings skips it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

# The columns of the images table the check reads of every row, and of the clips' rows only.
DONE_COLUMNS = ["uri", "content_id", "status", "error_reason", "kind"]
CLIP_DONE_COLUMNS = [*DONE_COLUMNS, "clip_settings", "processed_at", "run_id"]


class DoneUnder(NamedTuple):
    """What a rerun over one archive skips (`keys`), and the clips done with other settings that it redoes
    (`redo`), both as `relative_key`s."""

    keys: pa.ChunkedArray
    redo: pa.ChunkedArray


def counts_as_done(rows: pa.Table | pa.RecordBatch, retry_failed: bool) -> pa.Array:
    """Which image rows a rerun skips: all but failures (`retry_failed`) or read errors (usually transient)."""
    failed = pc.equal(rows["status"], "failed")
    retry = failed if retry_failed else pc.and_(failed, pc.equal(pc.fill_null(rows["error_reason"], ""), "read_error"))
    return pc.invert(retry)  # a row without a status is null here: not done, as a filter drops nulls


def relative_key(rel_path: pa.Array | pa.ChunkedArray, content_id: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One string per image, `rel_path NUL content_id`: the skip key of a rerun over one archive."""
    return pc.binary_join_element_wise(rel_path, content_id, "\x00")


def done_under(batches: Iterable[pa.RecordBatch], prefix: str | Sequence[str], retry_failed: bool = False,
               clips: pa.Table | None = None, clip_settings: str | None = None) -> DoneUnder:
    """The done keys of the image rows in `batches` (DONE_COLUMNS of one result set) whose uri starts with `prefix`
    (an archive's root; several: the places the same archive was at before it moved, model_store/tables/roots.py),
    and the clips to redo for other settings. `clips`: the set's clip rows (CLIP_DONE_COLUMNS), judged against
    `clip_settings` (then the clip rows of `batches` are left to them); None: a clip is judged as a still.

    A record batch at a time, so only the keys are held (a million images: ~45 MB), not the columns read whole
    and joined on their full URIs (~500 MB more at the peak, measured); the clips' rows, read apart (their row
    groups only, by the `kind` column's statistics), are few beside the stills."""
    prefixes = [prefix] if isinstance(prefix, str) else list(prefix)
    chunks = []
    for whole in batches:
        for root in prefixes:
            batch = whole.filter(pc.starts_with(whole["uri"], root))
            done = counts_as_done(batch, retry_failed)
            if clips is not None:
                done = pc.and_(done, pc.invert(pc.fill_null(pc.equal(batch["kind"], "video"), False)))
            chunks.append(_keys(batch.filter(done), root))
    redo = pa.chunked_array([], pa.string())
    if clips is not None and clips.num_rows:
        redo_chunks = []
        for root in prefixes:
            under = clips.filter(pc.starts_with(clips["uri"], root))
            done_clips, redo_clips = _clips_done(under, root, retry_failed, clip_settings)
            chunks.append(done_clips)
            redo_chunks.append(redo_clips)
        redo = pa.chunked_array(redo_chunks, pa.string())
    pa.default_memory_pool().release_unused()  # the decoded columns are gone: give their pages back
    return DoneUnder(pa.chunked_array(chunks, pa.string()), redo)


def _keys(rows: pa.Table | pa.RecordBatch, prefix: str) -> pa.Array:
    return relative_key(pc.utf8_slice_codeunits(rows["uri"], len(prefix)), rows["content_id"])


def _clips_done(rows: pa.Table, prefix: str, retry_failed: bool, clip_settings: str | None
                ) -> tuple[pa.Array, pa.Array]:
    """(done, redo) keys of clip rows, each clip judged by its newest row: its settings are the run's (or unknown,
    from a run before clip rows carried them), or they are not and the clip is redone."""
    rows = rows.sort_by([("processed_at", "descending"), ("run_id", "descending")])
    rows = rows.append_column("__row", pa.array(range(rows.num_rows), pa.int64()))
    first = rows.group_by(["uri", "content_id"], use_threads=False).aggregate([("__row", "min")])["__row_min"]
    newest = rows.take(first)
    newest = newest.filter(counts_as_done(newest, retry_failed))
    settings = newest["clip_settings"]
    same = pc.fill_null(pc.or_kleene(pc.is_null(settings), pc.equal(settings, clip_settings)), True)
    return _keys(newest.filter(same), prefix), _keys(newest.filter(pc.invert(same)), prefix)
