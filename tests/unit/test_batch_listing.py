"""The archive listed in pages (locally and on a real S3-compatible server) and chosen from by key, without
one object per file (model_store/tables/listing.py, batch/reprocess/selection.py; no Ray)."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from batch.reprocess.selection import Window, select
from batch.reprocess.summary import RunReport, format_report
from model_store.tables import listing as listing_module
from model_store.tables.archive import ArchiveError, PathPattern, content_id_of, open_location
from model_store.tables.listing import Entries, list_archive
from tests.fixtures.archive import PATH_PATTERN, build_archive, write_local, write_s3


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    spec = build_archive()
    return spec, write_local(spec, tmp_path_factory.mktemp("archive"))


def test_a_local_archive_listed_in_small_pages_is_the_archive_in_path_order_with_fsspecs_identities(
        archive, monkeypatch):
    """Pages of 3 files: every image once, sorted, junk skipped, and each content id the one fsspec's listing
    gives (the tables already hold those: a new identity would redo every image)."""
    spec, root = archive
    monkeypatch.setattr(listing_module, "PAGE_FILES", 3)
    storage = open_location(str(root))
    listing = list_archive(storage, pattern=PathPattern(PATH_PATTERN))
    assert isinstance(listing.entries, Entries) and listing.entries.table.num_rows == len(spec.images)
    assert [e.rel_path for e in listing.entries] == spec.images
    assert listing.ignored == len(spec.ignored)
    # the run says what it left out and why: junk apart from files of a kind --extensions could take in
    assert listing.ignored_kinds == {"hidden or system": 3, ".txt": 1}
    report = RunReport(run_id="r", status="succeeded", model="m:1", filters_hash="f", archive=str(root), out="o",
                       found=len(spec.images), ignored_files=listing.ignored, ignored_kinds=listing.ignored_kinds)
    assert "4 other file(s) ignored (hidden or system 3, .txt 1; --extensions adds a kind)" in format_report(report)
    assert listing.unmatched == sum(not r.startswith("cam01/") for r in spec.images)
    fsspec_ids = {p: content_id_of(i) for p, i in storage.fs.find(storage.root, detail=True).items()}
    assert {e.path: e.content_id for e in listing.entries} == {p: fsspec_ids[p] for p in
                                                              (e.path for e in listing.entries)}
    os.symlink(root / spec.images[0], root / "cam03" / "link.jpg")  # a symlink is not an image of the archive
    try:
        assert len(list_archive(storage).entries) == len(spec.images)
    finally:
        os.unlink(root / "cam03" / "link.jpg")


def test_an_s3_archive_is_listed_a_page_of_keys_at_a_time(s3_bucket, s3_server, monkeypatch):
    spec = build_archive()
    url = write_s3(spec, f"{s3_bucket}/archive", s3_server)
    monkeypatch.setattr(listing_module, "S3_PAGE_KEYS", 2)  # many requests, as a large archive makes
    calls = []
    real = listing_module.sync
    monkeypatch.setattr(listing_module, "sync", lambda *a, **k: calls.append(k) or real(*a, **k))
    listing = list_archive(open_location(url))
    assert [e.rel_path for e in listing.entries] == spec.images
    assert listing.ignored == len(spec.ignored)
    assert len(calls) >= len(spec.files) // 2 and all(k["MaxKeys"] == 2 for k in calls)
    assert all(e.content_id.startswith("etag=") and e.uri.startswith(url) for e in listing.entries)
    with pytest.raises(ArchiveError, match="does not exist"):
        list_archive(open_location("s3://no-such-bucket-here/archive"))


def test_what_is_done_is_looked_up_by_key_and_the_rest_keeps_path_order(archive):
    """A table of done keys (what the planner reads from the tables) chooses as a set of them does."""
    spec, root = archive
    entries = list_archive(open_location(str(root))).entries
    picked = [entries[i] for i in range(0, len(entries), 3)]
    keys = {(e.uri, e.content_id) for e in picked}
    table = pa.table({"uri": [k[0] for k in keys] * 2, "content_id": [k[1] for k in keys] * 2})  # a key twice
    by_table, by_set = select(entries, table, Window(limit=4)), select(entries, keys, Window(limit=4))
    assert by_table == by_set
    assert by_table.already_done == len(picked) and by_table.held_back == len(entries) - len(picked) - 4
    assert [e.rel_path for e in by_table.todo] == [e.rel_path for e in entries if e not in picked][:4]


def test_a_local_listing_is_in_string_path_order_where_the_walk_is_not(tmp_path, monkeypatch):
    """The walk goes a directory at a time ("b/c.jpg" before "b.jpg"); the listing is still in path order."""
    monkeypatch.setattr(listing_module, "PAGE_FILES", 2)
    for rel in ("cam/b/c.jpg", "cam/b.jpg", "cam/a.jpg", "cam-2/x.jpg", "cam/b/a.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    rels = [e.rel_path for e in list_archive(open_location(str(tmp_path))).entries]
    assert rels == sorted(rels) == ["cam-2/x.jpg", "cam/a.jpg", "cam/b.jpg", "cam/b/a.jpg", "cam/b/c.jpg"]
