"""Archives that move are the same archive: a file is confirmed by the digest of its bytes, never inferred twice.

A rerun skips a file whose relative path and content id (size + mtime locally, ETag + size on S3) match a done row
(tables/done.py). A copy that loses the mtimes (`cp -r`, many sync tools) or a move between a disk and a bucket
changes every content id, so that key alone would process the whole archive again. Here the files the key leaves
to do are looked up by relative path and size among the set's done rows (`nominees`); such a file is read (never
inferred) and its sha256 compared with the row's `content_digest`, which every image row records from the bytes
read for decoding (batch/reprocess/read.py). The same digest: done, as the row it matches. Another: a file replaced
by one of the same size and path, processed again.

Rows written before the digest existed have none: their file is read at the row's own uri when it is still there
unchanged (its content id as the row says), else the row cannot confirm anything and the file is processed again.

What a confirmation learnt is kept in the digest book, `DST/_digests/part-*.parquet` (uri, content_id,
content_digest): the new copy's files and the old rows' files, so the next rerun of the moved archive confirms
from the book without reading a byte. The book is a fact about files, not about a model: every model version's
reruns share it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ground.storage import Storage
from model_store.tables.archive import cached_location, content_id_of
from model_store.tables.done import counts_as_done, relative_key
from model_store.tables.schema import DIGESTS_DIR, DIGESTS_SCHEMA, IMAGES
from model_store.tables.writer import parquet_bytes

BOOK_SCHEMA = DIGESTS_SCHEMA
NOMINEE_COLUMNS = ["uri", "rel_path", "content_id", "size_bytes", "content_digest", "status", "error_reason", "kind"]
READ_THREADS = 8  # files read at once by a confirmation: hides a bucket's latency, cheap on a disk


def content_digest(data: bytes) -> str:
    """The sha256 (hex) of a file's bytes: what confirms that a copy is the same file (`sha256sum` agrees)."""
    return hashlib.sha256(data).hexdigest()


Key = tuple[str, str]  # (uri, content_id)


def read_book(storage: Storage, uris: list[str]) -> dict[Key, str]:
    """The digest book's entries for `uris`: (uri, content_id) -> digest ({} without a book)."""
    if not uris:
        return {}
    try:
        dataset = ds.dataset(storage.path(DIGESTS_DIR), filesystem=storage.fs, format="parquet", schema=BOOK_SCHEMA)
    except FileNotFoundError:
        return {}
    t = dataset.to_table(filter=ds.field("uri").isin(sorted(set(uris))))
    return {(u, c): d for u, c, d in zip(*(t[n].to_pylist() for n in BOOK_SCHEMA.names), strict=True)}


def record_book(storage: Storage, rows: list[tuple[str, str, str]]) -> str | None:
    """Add (uri, content_id, digest) rows to the book as one new part, written whole; its name (None: no rows)."""
    if not rows:
        return None
    table = pa.Table.from_arrays([pa.array(c, pa.string()) for c in zip(*rows, strict=True)], schema=BOOK_SCHEMA)
    name = f"part-{uuid.uuid4().hex}.parquet"
    if storage.is_local:
        storage.makedirs(DIGESTS_DIR)
    storage.write_atomic(parquet_bytes(table), DIGESTS_DIR, name)
    return name


def nominees(tables, model_name: str, model_version: str, set_hash: str, todo: pa.Table,
             retry_failed: bool = False) -> pa.Table:
    """The pairs (a file of `todo`, a done still row of the set) with the same relative path and size: the files a
    digest may confirm. Columns: the file's uri, rel_path, content_id, and the row's `done_uri`, `done_content_id`,
    `done_digest`."""
    files = todo.select(["uri", "rel_path", "content_id", "size_bytes"])
    empty = pa.table({c: pa.array([], pa.string()) for c in
                      ("uri", "rel_path", "content_id", "done_uri", "done_content_id", "done_digest")})
    if not files.num_rows:
        return empty
    rows = tables.read(IMAGES, model_name, model_version, NOMINEE_COLUMNS, dedupe=False,
                       filter=(ds.field("filters_hash") == set_hash)
                       & ds.field("rel_path").isin(pc.unique(files["rel_path"])))
    if not rows.num_rows:
        return empty
    still = pc.invert(pc.fill_null(pc.equal(rows["kind"], "video"), False))  # a clip is never read whole
    rows = rows.filter(pc.and_(counts_as_done(rows, retry_failed), still))
    rows = rows.select(["rel_path", "size_bytes", "uri", "content_id", "content_digest"]).rename_columns(
        ["rel_path", "size_bytes", "done_uri", "done_content_id", "done_digest"])
    pairs = files.join(rows, keys=["rel_path", "size_bytes"], join_type="inner", use_threads=False)
    return pairs.select(empty.column_names)


@dataclass
class Confirmation:
    """What a confirming pass found: the files it confirmed (`keys`, relative keys a rerun skips), what it read,
    and the book rows it learnt (written when a run starts: planning writes nothing)."""

    keys: list[str] = field(default_factory=list)
    files_read: int = 0
    bytes_read: int = 0
    differ: int = 0  # files of the same path and size whose bytes are not the row's: processed again
    unconfirmable: int = 0  # files whose rows carry no digest and whose old file is gone: processed again
    learnt: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def confirmed(self) -> int:
        return len(self.keys)


class Reader:
    """Reads and hashes files at their uri (any root: the archive's, an old row's), counting what it read."""

    def __init__(self) -> None:
        self.files = self.bytes = 0

    def digest(self, uri: str, content_id: str | None = None) -> str | None:
        """The file's digest; None when it cannot be read, or (`content_id` given) no longer is that content."""
        storage, path = _storage_of(uri)
        try:
            if content_id is not None and content_id_of(storage.fs.info(path)) != content_id:
                return None  # the old file changed since its row: it says nothing about the row's bytes
            data = storage.fs.cat_file(path)
        except Exception:  # noqa: BLE001 - gone or unreadable: not confirmed, the file is processed again
            return None
        self.files += 1
        self.bytes += len(data)
        return content_digest(data)


def _storage_of(uri: str) -> tuple[Storage, str]:
    """The Storage of the directory (or bucket) holding `uri`, and the path its filesystem reads it by."""
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        return cached_location(f"{scheme}://{rest.split('/', 1)[0]}"), rest
    return cached_location("/"), uri  # one Storage for every local file, not one per directory


def confirm(pairs: pa.Table, book: dict[Key, str], threads: int = READ_THREADS,
            reader: Reader | None = None) -> Confirmation:
    """Confirm each file of `pairs` (`nominees`) by its digest against its rows': the book's, the row's column, or
    an old row's file read again while unchanged. A file is read only when some row has a digest to compare."""
    reader = reader or Reader()
    out = Confirmation()
    by_file: dict[tuple[str, str, str], list[tuple[str, str, str | None]]] = {}
    for uri, rel, cid, d_uri, d_cid, d_digest in zip(*(pairs[c].to_pylist() for c in pairs.column_names),
                                                     strict=True):
        by_file.setdefault((uri, rel, cid), []).append((d_uri, d_cid, d_digest or book.get((d_uri, d_cid))))
    legacy = sorted({(u, c) for rows in by_file.values() for u, c, d in rows if d is None})
    with ThreadPoolExecutor(threads, thread_name_prefix="digest") as pool:
        old = dict(zip(legacy, pool.map(lambda k: reader.digest(*k), legacy), strict=True))
        out.learnt += [(u, c, d) for (u, c), d in old.items() if d is not None]
        wanted = {f: {d or old.get((u, c)) for u, c, d in rows} - {None} for f, rows in by_file.items()}
        out.unconfirmable = sum(1 for w in wanted.values() if not w)
        files = [f for f, w in wanted.items() if w]
        known = {f: book.get((f[0], f[2])) for f in files}
        unread = [f for f in files if known[f] is None]
        known.update(zip(unread, pool.map(lambda f: reader.digest(f[0]), unread), strict=True))
    for f in files:
        if known[f] is None:  # unreadable now: the run reads it again and records why it cannot
            out.unconfirmable += 1
        elif known[f] in wanted[f]:
            out.keys.append(f"{f[1]}\x00{f[2]}")
            if (f[0], f[2]) not in book:
                out.learnt.append((f[0], f[2], known[f]))
        else:
            out.differ += 1
    out.files_read, out.bytes_read = reader.files, reader.bytes
    return out


def confirmer(tables, model_name: str, model_version: str, set_hash: str, retry_failed: bool = False
              ) -> tuple[Callable[[pa.Table], pa.Table], Confirmation]:
    """A hook for `select` (batch/reprocess/selection.py): the files left to do minus those a digest confirms, and
    the Confirmation it fills in."""
    found = Confirmation()

    def hook(todo: pa.Table) -> pa.Table:
        pairs = nominees(tables, model_name, model_version, set_hash, todo, retry_failed)
        if not pairs.num_rows:
            return todo
        result = confirm(pairs, read_book(tables.storage, [*pairs["uri"].to_pylist(),
                                                           *pairs["done_uri"].to_pylist()]))
        found.__dict__.update(result.__dict__)
        if not result.keys:
            return todo
        keys = relative_key(todo["rel_path"], todo["content_id"])
        return todo.filter(pc.invert(pc.is_in(keys, value_set=pa.array(result.keys, pa.string()))))

    return hook, found
