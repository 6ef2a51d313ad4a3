"""An archive is a root plus relative paths: the same archive found again at another root.

A row records where its file was (`uri`, absolute) and its path under the archive's root (`rel_path`); the skip key
of a rerun is `rel_path NUL content_id` (tables/done.py), which does not depend on the root. An archive that moved
(a new drive, a NAS mounted elsewhere, `/archive` inside a container) is recognised by its content: a few of the
listing's files (evenly spaced, `SAMPLE`) are looked up by their content id among the result set's rows, and a row
whose uri ends with the file's relative path names the root the archive had then (`uri` minus `rel_path`). Every
such root is done-checked with the current one, so the moved archive's done images are skipped and nothing is
stored twice. Nothing is declared, nothing is rewritten: tables written before `rel_path` was recorded are matched
the same way (by their uri's tail).

What counts as the same file is what the skip key already says: the same relative path and the same content id
(size and mtime locally, ETag and size on S3). A copy that keeps mtimes (`cp -a`, `rsync -a`, a bind mount, a
NAS share) is the same archive here; a copy that does not (`cp -r` without `-p`) and a local archive copied to S3
(or back) have other content ids: their files are confirmed by content digest instead (tables/digests.py).
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from model_store.tables.done import relative_key
from model_store.tables.schema import IMAGES

SAMPLE = 256  # listing entries looked up by content: enough to find every root an archive was processed at


def sample(entries: pa.Table, n: int = SAMPLE) -> pa.Table:
    """Up to `n` rows of `entries` evenly spaced (first and last included), rel_path and content_id only."""
    rows = entries.num_rows
    if rows <= n:
        return entries.select(["rel_path", "content_id"])
    step = (rows - 1) / (n - 1)
    return entries.select(["rel_path", "content_id"]).take(pa.array(sorted({round(i * step) for i in range(n)})))


def roots_of(found: pa.Table, probe: pa.Table) -> set[str]:
    """The roots (with a trailing "/") that rows `found` (uri, content_id) had, for the files of `probe` (rel_path,
    content_id) with the same content id whose uri ends with the file's relative path."""
    rels: dict[str, list[str]] = {}
    for rel, cid in zip(probe["rel_path"].to_pylist(), probe["content_id"].to_pylist(), strict=True):
        rels.setdefault(cid, []).append(rel)
    out = set()
    for uri, cid in zip(found["uri"].to_pylist(), found["content_id"].to_pylist(), strict=True):
        for rel in rels.get(cid, ()):
            if uri.endswith("/" + rel):
                out.add(uri[:len(uri) - len(rel)])
    return out


def moved_roots(tables, model_name: str, model_version: str, set_hash: str, entries: pa.Table, here: str,
                done: pa.ChunkedArray | pa.Array) -> list[str]:
    """The other roots (prefixes ending in "/") this archive, now at `here`, had when rows of the result set were
    made: [] when every sampled file is done under `here` already (the usual rerun: one small check, no read).

    Seven parameters: the tables and the result set checked (model name, version, set hash, as the tables' readers
    take it), the archive's listing and where it is now (entries, here), and the keys already done there, which its
    one caller (batch/reprocess/plan.py) has computed for the run and passes so that nothing is read twice."""
    probe = sample(entries)
    if not probe.num_rows:
        return []
    if len(done):  # the probe's few keys are looked for in the done keys, not a set of a million keys built
        keys = relative_key(probe["rel_path"], probe["content_id"])
        chunks = done.chunks if isinstance(done, pa.ChunkedArray) else [done]
        hit = [c.filter(pc.is_in(c, value_set=keys)) for c in chunks]
        found = pa.chunked_array(hit, pa.string()).combine_chunks() if hit else pa.array([], pa.string())
        probe = probe.filter(pc.invert(pc.is_in(keys, value_set=found)))
    if not probe.num_rows:
        return []
    rows = tables.read(IMAGES, model_name, model_version, ["uri", "content_id"], dedupe=False,
                       filter=(ds.field("filters_hash") == set_hash)
                       & ds.field("content_id").isin(probe["content_id"].unique()))
    return sorted(roots_of(rows, probe) - {here})


MOVED_DEPTH = 16  # a moved archive's file is looked for by at most this many trailing components of its old path


def relocate(archive: str, uri: str) -> str | None:
    """Where a local file a row recorded (`uri`, at the root its archive had then) is now that the archive is at
    `archive`: the longest tail of its path that is a file under `archive` (its real path, confined there); None
    when there is none. Readers of pictures (the console, reports) use it; the rows are not rewritten."""
    base = os.path.realpath(archive).rstrip(os.sep) + os.sep
    parts = [p for p in uri.split("/") if p and p not in (".", "..")]
    for start in range(max(0, len(parts) - MOVED_DEPTH), len(parts)):
        path = os.path.realpath(os.path.join(base, *parts[start:]))
        if path.startswith(base) and os.path.isfile(path):
            return path
    return None
