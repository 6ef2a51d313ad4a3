"""An archive is a root plus relative paths (model_store/tables/roots.py): the same archive copied or moved to
another root is recognised by its files' relative paths and content ids, so a rerun into the same tables finds
nothing new and stores nothing twice, and the console serves its pictures from where they are now. No Ray: the
reprocess stages run in this process (tests/fixtures/archive.py)."""

from __future__ import annotations

import os
import shutil
import warnings

import pyarrow as pa
import pytest

from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import plan_run
from batch.reprocess.summary import format_report
from batch.review.thumbs import ThumbJob, Thumbnails
from batch.views.picture_files import Source, confine
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.roots import roots_of, sample
from model_store.tables.schema import IMAGES
from tests.fixtures.archive import PATH_PATTERN, encode, picture, process_without_ray
from tests.fixtures.pictures import API, app_for, build_site, site_config

with warnings.catch_warnings():  # starlette's TestClient warns about httpx; it is still what FastAPI ships
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    return build_site(tmp_path_factory.mktemp("moves"))


def _plan(site, archive) -> object:
    return plan_run(ReprocessOptions(archive=str(archive), out=str(site["tables"]), model="trapcam:1",
                                     store=site["store"].root, path_pattern=PATH_PATTERN))


def test_roots_are_found_by_content_and_relative_path():
    probe = pa.table({"rel_path": ["cam01/a.jpg", "cam02/b.jpg"], "content_id": ["size=1;mtime_us=5", "size=2;m=6"]})
    found = pa.table({"uri": ["/old/traps/cam01/a.jpg", "/elsewhere/a.jpg", "s3://b/x/cam02/b.jpg"],
                      "content_id": ["size=1;mtime_us=5", "size=1;mtime_us=5", "size=2;m=6"]})
    # the same bytes under another relative path (/elsewhere/a.jpg) name no root: only a matching tail does
    assert roots_of(found, probe) == {"/old/traps/", "s3://b/x/"}
    many = pa.table({"rel_path": [f"{i:05d}.jpg" for i in range(1000)], "content_id": ["c"] * 1000})
    picked = sample(many, 10)["rel_path"].to_pylist()
    assert len(picked) == 10 and picked[0] == "00000.jpg" and picked[-1] == "00999.jpg"


def test_a_copied_archive_is_the_same_archive_and_a_new_file_there_is_all_that_is_new(site, tmp_path):
    archive = site["archive"]
    copy = tmp_path / "mnt" / "nas" / "traps"
    shutil.copytree(archive, copy)  # copy2: mtimes kept, as cp -a, rsync -a or a bind mount keep them
    first = _plan(site, archive)
    moved = _plan(site, copy)
    assert moved.selection.found == first.selection.found > 0
    assert (moved.selection.already_done, len(moved.selection.todo)) == (first.selection.already_done, 0)
    assert moved.moved_from == [str(archive) + "/"]
    assert "moved     the same archive" in format_report(moved.report(None, "dry-run"))

    (copy / "cam01" / "IMG_20240601_120000.jpg").write_bytes(encode(picture(64, 48, night=False, seed=7)))
    grown = _plan(site, copy)
    assert [e.rel_path for e in grown.selection.todo] == ["cam01/IMG_20240601_120000.jpg"]
    rows = len(Tables(open_location(str(site["tables"]))).read(IMAGES))
    process_without_ray(str(copy), str(site["tables"]), site["store"].root, "trapcam:1", path_pattern=PATH_PATTERN)
    assert (
        len(Tables(open_location(str(site["tables"]))).read(IMAGES)) == rows + 1
    )  # the new file only: nothing stored twice
    assert len(_plan(site, copy).selection.todo) == 0

    # a file changed in place at the new root (other bytes, other mtime) is new there, as it would be at the old one;
    # one only touched (its bytes the same) is confirmed by its digest (tables/digests.py)
    changed = copy / "cam02" / sorted(os.listdir(copy / "cam02"))[0]
    os.utime(changed, (1_700_000_000, 1_700_000_000))
    assert [e.rel_path for e in _plan(site, copy).selection.todo] == []
    changed.write_bytes(changed.read_bytes()[::-1])
    os.utime(changed, (1_700_000_000, 1_700_000_000))
    assert [e.rel_path for e in _plan(site, copy).selection.todo] == [f"cam02/{changed.name}"]


def test_the_console_serves_a_moved_archives_pictures_from_where_they_are_now(site, tmp_path):
    moved = tmp_path / "archive"  # as the container's /archive would be
    shutil.copytree(site["archive"], moved)
    config = site_config(site["store"].root, [str(site["dir"]), str(tmp_path)], [("site-a", site["tables"], moved)])
    gone = site["archive"].with_name("archive-unmounted")
    os.rename(site["archive"], gone)  # the old root no longer exists
    try:
        with TestClient(app_for(config)) as client:
            tile = client.get("/v1/pictures/cameras", headers={"Authorization": f"Bearer {API}"}).json()
            made_there = [c["latest"]["image"] for c in tile["cameras"]
                          if c["latest"]["image"]["uri"].startswith(str(site["archive"]) + "/")]
            assert made_there  # rows whose uri is where they were made, a root that is gone
            image = made_there[0]
            full = client.get(image["image_url"])
            assert full.status_code == 200, full.text
            assert full.content == (moved / image["uri"][len(str(site["archive"])) + 1:]).read_bytes()
            assert client.get(image["thumb_url"]).status_code == 200
        # a report's thumbnails, told where the archive is now (report --archive), as the console finds them
        job = ThumbJob(uri=image["uri"], boxes=())
        (tmp_path / "report" / "thumbs").mkdir(parents=True)
        assert Thumbnails(tmp_path / "report").render(job) is None  # the recorded path is gone
        assert Thumbnails(tmp_path / "report", archive=str(moved)).render(job) is not None
        src = Source("site-a", "configured", str(site["tables"]), str(moved))
        outside = tmp_path / "secret.jpg"
        outside.write_bytes(b"x")
        for uri in (str(outside), str(site["archive"] / ".." / "secret.jpg"), "/nowhere/cam01/missing.jpg"):
            with pytest.raises(Exception, match="no such picture"):
                confine(src, uri)  # only a tail that is a picture under the archive as configured now
    finally:
        os.rename(gone, site["archive"])
