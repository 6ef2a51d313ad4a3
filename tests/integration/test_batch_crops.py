"""`trapline crops --tables`: snips from stored tables match `reprocess --crops`, reruns add nothing, S3, failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from batch.postprocessing.options import CropsOptions
from batch.postprocessing.snips import format_report, run_crops
from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from model_store import CropOptions, ModelStore
from model_store.core.imaging import decode_image
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import SNIPS
from tests.fixtures.onnx_models import fixture_config
from tests.integration.test_batch_classify import IMAGES_DRAWN, SMALL, jpeg

pytestmark = pytest.mark.ray
GEOMETRY = {"crop_padding": 0.1, "crop_square": True}
OPTIONS = CropOptions(padding=0.1, square=True)


def snips_of(tables, **scope) -> object:
    """`trapline crops --tables TABLES --crop-padding 0.1 --crop-square`, as its options model."""
    return run_crops(CropsOptions(tables=str(tables), crop_padding=OPTIONS.padding, crop_square=OPTIONS.square,
                                  **scope))


@pytest.fixture(scope="module")
def env(tmp_path_factory, fixture_models):
    d = tmp_path_factory.mktemp("crops")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    archive = d / "archive"
    for rel, colours in IMAGES_DRAWN.items():
        (archive / rel).parent.mkdir(parents=True, exist_ok=True)
        (archive / rel).write_bytes(jpeg(colours))
    return {"store": store, "archive": archive}


def reprocess(env, archive, out, **kw):
    report = run_reprocess(ReprocessOptions(archive=str(archive), out=str(out), model="fixture:1",
                                            store=env["store"].root, **{**SMALL, **kw}))
    assert report.status == "succeeded", report.error
    return report


def snip_rows(out: str, filters_hash: str) -> set[tuple]:
    """(detection_index, crop path below DST, width, height) of the committed snips rows."""
    t = Tables(open_location(out))
    images = t.current_images("fixture", "1", filters_hash)
    rows = t.committed_detections(images, "fixture", "1", filters_hash, table=SNIPS)
    return {(int(r.detection_index), r.crop_uri.split("/crops/", 1)[1], int(r.crop_width), int(r.crop_height))
            for r in rows.itertuples()}


def files(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in (out / "crops").rglob("*.jpg")}


def test_same_snips_as_reprocess_and_a_rerun_writes_nothing(ray_cluster, env, tmp_path):
    with_crops, later = tmp_path / "with_crops", tmp_path / "later"
    made = reprocess(env, env["archive"], with_crops, crops=True, **GEOMETRY)
    plain = reprocess(env, env["archive"], later)
    assert plain.filters_hash == made.filters_hash and not (later / "crops").exists()

    expected = snip_rows(str(with_crops), made.filters_hash)
    n = len(expected)
    assert n >= 6  # both painted boxes of each image, at least
    report = snips_of(str(later))
    assert report.failed == [] and report.images == 3 and report.written == report.snips == n
    assert report.rows_added == n and report.images_read == 3
    assert snip_rows(str(later), plain.filters_hash) == expected
    assert set(files(later)) == set(files(with_crops))  # the same deterministic names
    snip = next(iter((later / "crops").rglob("*.jpg")))
    assert decode_image(snip.read_bytes()).ndim == 3

    before = files(later)
    again = snips_of(str(later))
    assert (again.written, again.rows_added, again.images_read, again.already) == (0, 0, 0, n)
    assert files(later) == before
    # A later reprocess --crops skips these images as done: still one row per snip, none missing.
    redo = reprocess(env, env["archive"], later, crops=True, **GEOMETRY)
    assert redo.processed == 0
    assert snip_rows(str(later), plain.filters_hash) == expected
    assert f"written 0 new snip(s), {n} already there" in format_report(again)


def test_missing_image_is_listed_and_the_rest_are_cut(ray_cluster, env, tmp_path):
    archive, out = tmp_path / "archive", tmp_path / "out"
    shutil.copytree(env["archive"], archive)
    report = reprocess(env, archive, out)
    (archive / "cam1" / "b.jpg").unlink()
    crops = snips_of(str(out), cameras=["cam1"])
    assert [f["uri"] for f in crops.failed] == [str(archive / "cam1" / "b.jpg")]
    assert crops.images == 2 and crops.images_read == 1 and crops.written == crops.rows_added > 0
    assert {p.name.split("_")[0] for p in (out / "crops").rglob("*.jpg")} == {"a"}
    assert "failed: 1 image(s) could not be read" in format_report(crops)
    assert len(snip_rows(str(out), report.filters_hash)) == crops.written


def test_tables_and_archive_on_s3(ray_cluster, env, s3_bucket):
    import s3fs

    fs = s3fs.S3FileSystem()
    for p in env["archive"].rglob("*.jpg"):
        fs.pipe(f"{s3_bucket}/raw/{p.relative_to(env['archive']).as_posix()}".removeprefix("s3://"), p.read_bytes())
    out = f"{s3_bucket}/det"
    report = reprocess(env, f"{s3_bucket}/raw", out)
    crops = snips_of(out)
    assert crops.failed == [] and crops.written == crops.rows_added == crops.snips >= 6
    rows = snip_rows(out, report.filters_hash)
    assert len(rows) == crops.written and all(path.startswith("fixture/1/") for _, path, _, _ in rows)
    first = sorted(rows)[0][1]
    assert decode_image(fs.cat_file(f"{s3_bucket}/det/crops/{first}".removeprefix("s3://"))).ndim == 3
    again = snips_of(out)
    assert (again.written, again.rows_added, again.already) == (0, 0, crops.written)
