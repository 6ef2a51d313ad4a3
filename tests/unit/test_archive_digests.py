"""Archives that move are the same archive (model_store/tables/digests.py): a copy that lost its mtimes (`cp -r`) or
an archive moved from a disk to a bucket has other content ids, and its files are confirmed by the sha256 every row
records, read but never inferred; a file replaced by another of the same size and path is processed again. No Ray:
the reprocess stages run in this process (tests/fixtures/archive.py)."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import plan_run
from batch.reprocess.summary import format_report
from model_store import ModelStore
from model_store.tables.digests import DIGESTS_DIR, content_digest, record_book
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import IMAGES
from tests.fixtures.archive import (
    PATH_PATTERN,
    brightness_config,
    brightness_model,
    build_archive,
    process_without_ray,
    write_local,
)


def _keep_book(plan, run_id) -> None:  # what the job does before its first part (batch/reprocess/job.py)
    record_book(plan.tables.storage, plan.confirmation.learnt)


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> dict:
    """The fixture archive processed once into its tables: every image row carries its digest."""
    d = tmp_path_factory.mktemp("digests")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(brightness_model(d / "b.onnx"), "trapcam", "1", brightness_config())
    spec = build_archive()
    archive = write_local(spec, d / "archive")
    process_without_ray(str(archive), str(d / "tables"), store.root, "trapcam:1", path_pattern=PATH_PATTERN)
    return {"dir": d, "spec": spec, "archive": archive, "store": store.root}


def _copy_of(first: dict, tmp_path, name: str = "tables") -> tuple[str, str]:
    """A `cp -r` of the archive (no times kept) and a copy of the first run's tables to process it into."""
    copy = tmp_path / "copied" / "traps"
    shutil.copytree(first["archive"], copy, copy_function=shutil.copyfile)  # as `cp -r`: every mtime is now
    tables = tmp_path / name
    shutil.copytree(first["dir"] / "tables", tables)
    return str(copy), str(tables)


def _before_digests(tables, moved: tuple[str, str] | None = None) -> None:
    """Rewrite the tables' image rows as written before `content_digest` (null), their uris moved `(old, new)`."""
    for part in (tables / IMAGES).rglob("*.parquet"):
        t = pq.read_table(part)
        t = t.set_column(t.schema.get_field_index("content_digest"), "content_digest",
                         pa.nulls(t.num_rows, pa.string()))
        if moved is not None:
            uris = [u.replace(*moved) for u in t["uri"].to_pylist()]
            t = t.set_column(t.schema.get_field_index("uri"), "uri", pa.array(uris, pa.string()))
        pq.write_table(t, part)


def _plan(first, archive: str, tables: str):
    return plan_run(ReprocessOptions(archive=archive, out=tables, model="trapcam:1", store=first["store"],
                                     path_pattern=PATH_PATTERN))


def test_every_image_row_records_the_sha256_of_the_bytes_it_was_read_from(first):
    rows = Tables(open_location(str(first["dir"] / "tables"))).read(IMAGES, columns=["rel_path", "content_digest"])
    digests = dict(zip(rows["rel_path"].to_pylist(), rows["content_digest"].to_pylist(), strict=True))
    images = {rel: data for rel, data in first["spec"].files.items() if rel not in first["spec"].ignored}
    assert digests == {rel: content_digest(data) for rel, data in images.items()}  # failed ones too (empty, broken)


def test_a_copy_without_its_times_infers_nothing_twice_and_its_next_rerun_reads_nothing(first, tmp_path):
    copy, tables = _copy_of(first, tmp_path)
    n = len(first["spec"].files) - len(first["spec"].ignored)
    plan = _plan(first, copy, tables)
    assert (len(plan.selection.todo), plan.selection.already_done) == (0, n)
    c = plan.confirmation
    assert (c.confirmed, c.files_read, c.differ) == (n, n, 0)
    assert c.bytes_read == sum(len(d) for r, d in first["spec"].files.items() if r not in first["spec"].ignored)
    assert f"{n} file(s) with new times or ETags confirmed done by content" in format_report(plan.report(None, "x"))

    rows = len(Tables(open_location(tables)).read(IMAGES))
    process_without_ray(copy, tables, first["store"], "trapcam:1", path_pattern=PATH_PATTERN, on_plan=_keep_book)
    assert len(Tables(open_location(tables)).read(IMAGES)) == rows  # nothing inferred, nothing stored twice
    again = _plan(first, copy, tables)  # the book knows the copy's files now: confirmed without a byte read
    assert (len(again.selection.todo), again.confirmation.confirmed, again.confirmation.files_read) == (0, n, 0)


def test_a_file_replaced_by_another_of_the_same_size_and_path_is_processed_again(first, tmp_path):
    copy, tables = _copy_of(first, tmp_path)
    rel = "cam02/DSC_0002.JPG"
    path = f"{copy}/{rel}"
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # one byte of the picture's scan: same size, same name, not the same file
    open(path, "wb").write(bytes(data))
    plan = _plan(first, copy, tables)
    assert [e.rel_path for e in plan.selection.todo] == [rel]
    assert plan.confirmation.differ == 1
    assert "1 of the same path and size hold other bytes: processed again" in format_report(plan.report(None, "x"))


def test_rows_written_before_the_digest_are_confirmed_by_their_own_file_while_it_is_unchanged(first, tmp_path):
    copy, tables = _copy_of(first, tmp_path)
    _before_digests(tmp_path / "tables")
    n = len(first["spec"].files) - len(first["spec"].ignored)
    plan = _plan(first, copy, tables)
    assert (len(plan.selection.todo), plan.confirmation.confirmed) == (0, n)
    assert plan.confirmation.files_read == 2 * n  # each old file and its copy, once
    assert len(plan.confirmation.learnt) == 2 * n  # both kept in the book: the next rerun reads nothing
    record_book(Tables(open_location(tables)).storage, plan.confirmation.learnt)
    assert _plan(first, copy, tables).confirmation.files_read == 0

    # another copy, with the old files changed since their rows: nothing left to confirm by, processed again
    fresh = tmp_path / "fresh"
    shutil.copytree(first["dir"] / "tables", fresh)
    _before_digests(fresh, moved=(str(first["archive"]), str(tmp_path / "gone")))
    unknown = _plan(first, copy, str(fresh))
    assert len(unknown.selection.todo) == n and unknown.confirmation.unconfirmable == n
    assert not (fresh / DIGESTS_DIR).exists()  # planning writes nothing


def test_an_archive_moved_from_a_disk_to_a_bucket_infers_nothing_twice(first, tmp_path, s3_bucket):
    from ground.storage import Storage

    tables = tmp_path / "tables"
    shutil.copytree(first["dir"] / "tables", tables)
    url = f"{s3_bucket}/moved/traps"
    Storage(url).fs.put(str(first["archive"]) + "/", url, recursive=True)  # an `aws s3 sync`: new ETags, no mtimes
    n = len(first["spec"].files) - len(first["spec"].ignored)
    plan = _plan(first, url, str(tables))
    assert (len(plan.selection.todo), plan.selection.already_done, plan.confirmation.confirmed) == (0, n, n)
    process_without_ray(url, str(tables), first["store"], "trapcam:1", path_pattern=PATH_PATTERN,
                        on_plan=_keep_book)
    assert len(Tables(open_location(str(tables))).read(IMAGES)) == len(
        Tables(open_location(str(first["dir"] / "tables"))).read(IMAGES)
    )
    assert _plan(first, url, str(tables)).confirmation.files_read == 0

    back = tmp_path / "back"  # and from the bucket to a disk again (`aws s3 sync` down: new mtimes)
    Storage(url).fs.get(url + "/", str(back) + "/", recursive=True)
    home = _plan(first, str(back), str(tables))
    assert (len(home.selection.todo), home.confirmation.confirmed) == (0, n)
