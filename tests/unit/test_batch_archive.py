"""Archive listing, camera/time identification and selection (no Ray)."""

from __future__ import annotations

import datetime as dt

import pytest

from batch.reprocess.selection import Window, latest_per_camera, select
from model_store.tables.archive import ArchiveError, PathPattern, exif_capture_time, open_location
from model_store.tables.listing import list_archive, resolve_capture_times
from tests.fixtures.archive import PATH_PATTERN, build_archive, encode, picture, write_local


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    spec = build_archive()
    return spec, write_local(spec, tmp_path_factory.mktemp("archive"))


def test_listing_finds_images_recursively_and_skips_junk(archive):
    spec, root = archive
    listing = list_archive(open_location(str(root)), pattern=PathPattern(PATH_PATTERN))
    assert [e.rel_path for e in listing.entries] == spec.images
    assert listing.ignored == len(spec.ignored)
    assert listing.unmatched == sum(not r.startswith("cam01/") for r in spec.images)
    by_rel = {e.rel_path: e for e in listing.entries}
    assert {e.camera_id for e in listing.entries} == {"cam01", "cam02", "cam03"}
    e = by_rel["cam01/2024-05-01/IMG_20240501_080000.jpg"]
    assert e.uri == str(root / e.rel_path)
    assert (e.capture_time, e.capture_time_source) == (dt.datetime(2024, 5, 1, 8), "path")
    assert e.content_id.startswith(f"size={len(spec.files[e.rel_path])};mtime_us=")
    assert by_rel["cam02/DSC_0001.JPG"].capture_time is None  # not in the name: resolved later


def test_capture_time_falls_back_from_path_to_exif_to_mtime(archive):
    spec, root = archive
    storage = open_location(str(root))
    entries = resolve_capture_times(storage, list_archive(storage, pattern=PathPattern(PATH_PATTERN)).entries)
    for e in entries:
        if e.rel_path in spec.times:
            assert e.capture_time == spec.times[e.rel_path], e.rel_path
    sources = {e.rel_path.split("/")[0]: e.capture_time_source for e in entries if e.rel_path not in spec.failed}
    assert sources == {"cam01": "path", "cam02": "exif", "cam03": "mtime"}


def test_known_capture_times_avoid_reading_headers(archive, monkeypatch):
    spec, root = archive
    storage = open_location(str(root))
    entries = [e for e in list_archive(storage).entries if e.rel_path.startswith("cam02/DSC_000")]
    known = {(e.uri, e.content_id): (dt.datetime(2001, 1, 1), "exif") for e in entries}
    monkeypatch.setattr(storage.fs, "cat_file", lambda *a, **k: pytest.fail("read a header it already knew"))
    out = resolve_capture_times(storage, entries, known)
    assert {e.capture_time for e in out} == {dt.datetime(2001, 1, 1)}


def test_exif_capture_time_needs_only_the_head_and_tolerates_garbage():
    data = encode(picture(64, 48, False, 1), exif_time=dt.datetime(2023, 7, 8, 9, 10, 11))
    assert exif_capture_time(data[:4096]) == dt.datetime(2023, 7, 8, 9, 10, 11)
    assert exif_capture_time(encode(picture(64, 48, False, 1))) is None
    assert exif_capture_time(b"") is None
    assert exif_capture_time(b"not an image at all") is None


def test_path_pattern_groups_and_errors():
    p = PathPattern(r"(?P<camera>[^/]+)/(?P<year>\d{4})-(?P<month>\d\d)-(?P<day>\d\d)/"
                    r"IMG_(?P<hour>\d\d)(?P<minute>\d\d)")
    assert p.match("site7/2024-02-29/IMG_2359.jpg") == (True, "site7", dt.datetime(2024, 2, 29, 23, 59))
    assert p.match("other/file.jpg") == (False, None, None)
    fmt = PathPattern(r"(?P<timestamp>\d{2}\.\d{2}\.\d{4})", time_format="%d.%m.%Y")
    assert fmt.match("x/31.12.2023.jpg")[2] == dt.datetime(2023, 12, 31)
    with pytest.raises(ArchiveError, match="unknown named groups.*'cam'"):
        PathPattern(r"(?P<cam>[^/]+)")
    with pytest.raises(ArchiveError, match="not a valid regular expression"):
        PathPattern(r"(?P<camera>[^/]+")
    with pytest.raises(ArchiveError, match="year, month and day"):
        PathPattern(r"(?P<year>\d{4})")


def test_an_image_under_the_archive_root_gets_the_default_camera(tmp_path):
    (tmp_path / "cam01").mkdir()
    for rel in ("IMG_0001.JPG", "cam01/IMG_0002.JPG"):
        (tmp_path / rel).write_bytes(b"x")
    cameras = {e.rel_path: e.camera_id for e in list_archive(open_location(str(tmp_path))).entries}
    assert cameras == {"IMG_0001.JPG": "unknown", "cam01/IMG_0002.JPG": "cam01"}
    # a path pattern without a camera group falls back the same way
    with_pattern = list_archive(open_location(str(tmp_path)), pattern=PathPattern(r"IMG_(?P<timestamp>\d{4})"))
    assert {e.camera_id for e in with_pattern.entries} == {"unknown", "cam01"}


def test_missing_archive_is_a_clear_error(tmp_path):
    with pytest.raises(ArchiveError, match="is not a directory"):
        list_archive(open_location(str(tmp_path / "nope")))
    with pytest.raises(ArchiveError, match="unsupported location"):
        open_location("ftp://host/path")


def test_selection_window_latest_done_and_limit(archive):
    spec, root = archive
    storage = open_location(str(root))
    entries = resolve_capture_times(storage, list_archive(storage, pattern=PathPattern(PATH_PATTERN)).entries)
    latest = {e.camera_id: e.rel_path for e in latest_per_camera(entries)}
    assert latest == spec.latest_per_camera()

    day = select(entries, set(), Window(since=dt.datetime(2024, 5, 1),
                                         until=dt.datetime(2024, 5, 1, 23, 59, 59, 999999)))
    assert {e.rel_path for e in day.todo} == {r for r, t in spec.times.items() if t.date() == dt.date(2024, 5, 1)}
    assert (day.found, day.selected) == (len(spec.images), 8)  # 7 cam01 pictures + the text file's mtime

    done = {(e.uri, e.content_id) for e in entries[:10]}
    sel = select(entries, done, Window(limit=5))
    assert (sel.already_done, len(sel.todo), sel.held_back) == (10, 5, len(entries) - 15)
    assert [e.rel_path for e in sel.todo] == [e.rel_path for e in entries[10:15]]

    sel = select(entries, {(e.uri, e.content_id) for e in entries}, Window(latest=True))
    assert (sel.selected, sel.already_done, sel.todo) == (3, 3, [])
