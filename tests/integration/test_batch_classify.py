"""The crop/classify stage of `trapline reprocess` on real Ray Data: classifications, snips, skip key, S3."""

from __future__ import annotations

from pathlib import Path

import cv2
import pandas as pd
import pytest

from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.summary import format_report
from model_store import ModelStore
from model_store.core.imaging import decode_image
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import CLASSIFICATIONS, DETECTIONS, IMAGES, SNIPS
from tests.fixtures.classifiers import colour_config, painted
from tests.fixtures.onnx_models import fixture_config

pytestmark = pytest.mark.ray
DEER_BIG, DEER_SMALL = (220, 180, 420, 300), (560, 80, 640, 160)
IMAGES_DRAWN = {  # rel_path -> colour of the big deer box, colour of the small one
    "cam1/a.jpg": ("red", "blue"),
    "cam1/b.jpg": ("green", "red"),
    "cam2/c.jpg": ("blue", "green"),
}
SMALL = {"num_cpus": 0.5, "read_cpus": 0.25, "classify_cpus": 0.25, "rows_per_file": 2, "read_batch_size": 2,
         "batch_size": 4, "progress_interval_s": 60}


def jpeg(colours: tuple[str, str]) -> bytes:
    img = painted(640, 480, [(colours[0], DEER_BIG), (colours[1], DEER_SMALL)])
    return cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


@pytest.fixture(scope="module")
def env(tmp_path_factory, fixture_models, colour_onnx):
    d = tmp_path_factory.mktemp("classify")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.promote("fixture:1")
    store.publish(colour_onnx, "colour", "1", colour_config())
    store.publish(colour_onnx, "colour", "2", colour_config(top_k=3))
    store.promote("colour:1")
    archive = d / "archive"
    for rel, colours in IMAGES_DRAWN.items():
        (archive / rel).parent.mkdir(parents=True, exist_ok=True)
        (archive / rel).write_bytes(jpeg(colours))
    (archive / "cam2" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    return {"store": store, "archive": archive}


def opts(env, out, **kw) -> ReprocessOptions:
    return ReprocessOptions(archive=str(env["archive"]), out=str(out), model="fixture@production",
                            store=env["store"].root, classify=["colour@production"], **{**SMALL, **kw})


def snip_files(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in (out / "crops").rglob("*.jpg")}


def test_classify_and_crops_write_joined_tables_and_rerun_idempotently(ray_cluster, env, tmp_path):
    out = tmp_path / "out"
    report = run_reprocess(opts(env, out, crops=True, crop_padding=0.1))
    assert report.status == "succeeded", report.error
    assert (report.ok, report.failed) == (3, 1)
    # The summary names every table the run wrote, the stage's too (it used to say `{images,detections}`).
    written = sorted(p.name for p in out.iterdir() if (p / "model_name=fixture").is_dir())
    assert sorted(report.tables) == written == sorted([IMAGES, DETECTIONS, CLASSIFICATIONS, SNIPS])
    assert f"tables    {report.out}/{{images,detections,classifications,snips}}" in format_report(report)
    t = Tables(open_location(str(out)))
    images = t.current_images("fixture", "1", report.filters_hash)
    cls = t.committed_detections(images, "fixture", "1", report.filters_hash, table=CLASSIFICATIONS)
    dets = t.committed_detections(images, "fixture", "1", report.filters_hash)
    # Only the deer (routed by the classifier's applies_to) are classified, each by its painted colour.
    joined = cls.merge(dets, on=["uri", "content_id", "detection_index", "filters_hash", "run_id"],
                       suffixes=("", "_det"))
    assert set(joined["label_det"]) == {"deer"} and len(cls) == 2 * 3
    got = {(Path(u).relative_to(env["archive"]).as_posix(), round(s)) for u, s in
           zip(joined["uri"], joined["bbox_x"] * 640, strict=True)}
    assert len(got) == 6
    for rel, (big, small) in IMAGES_DRAWN.items():
        mine = joined[joined["uri"] == str(env["archive"] / rel)]
        by_x = dict(zip((mine["bbox_x"] * 640).round(), mine["label"], strict=True))
        assert by_x == {220.0: big, 560.0: small}
    assert set(cls["classifier_version"]) == {"1"} and all(len(s) == 3 for s in cls["scores"])
    # One snip per kept detection, named deterministically, readable, padded by 10 %.
    snips = t.committed_detections(images, "fixture", "1", report.filters_hash, table=SNIPS)
    files = snip_files(out)
    assert len(snips) == len(files) == int(dets["kept"].sum()) == 12
    big = snips[(snips["detection_index"] == 0)].iloc[0]
    assert decode_image(Path(big["crop_uri"]).read_bytes()).shape == (144, 240, 3) == \
        (big["crop_height"], big["crop_width"], 3)

    check_postprocess_and_exports(out, report.filters_hash, env["archive"], tmp_path)

    # A rerun finds everything done and writes nothing.
    again = run_reprocess(opts(env, out, crops=True, crop_padding=0.1))
    assert (again.processed, again.already_done) == (0, 4) and snip_files(out) == files

    # A run killed before its commit (the images table lost) is redone: same snip names, no copies.
    import shutil

    shutil.rmtree(out / "images")
    redo = run_reprocess(opts(env, out, crops=True, crop_padding=0.1))
    assert redo.processed == 4 and set(snip_files(out)) == set(files)

    # The skip key covers the classifier version: promoting colour:2 makes everything new again.
    env["store"].promote("colour:2")
    try:
        newer = run_reprocess(opts(env, out, crops=True, crop_padding=0.1))
    finally:
        env["store"].rollback("colour")
    assert newer.processed == 4 and newer.filters_hash != report.filters_hash
    latest = t.current_images("fixture", "1", newer.filters_hash)
    v2 = t.committed_detections(latest, "fixture", "1", newer.filters_hash, table=CLASSIFICATIONS)
    assert set(v2["classifier_version"]) == {"2"} and all(len(x) == 3 for x in v2["top_labels"])


def test_classify_over_s3_with_snips(ray_cluster, env, s3_bucket):
    import s3fs

    fs = s3fs.S3FileSystem()
    for p in env["archive"].rglob("*.jpg"):
        fs.pipe(f"{s3_bucket}/raw/{p.relative_to(env['archive']).as_posix()}".removeprefix("s3://"), p.read_bytes())
    out = f"{s3_bucket}/det"
    report = run_reprocess(ReprocessOptions(archive=f"{s3_bucket}/raw", out=out, model="fixture:1",
                                            store=env["store"].root, classify=["colour:1=deer"], crops=True,
                                            **SMALL))
    assert report.status == "succeeded", report.error
    t = Tables(open_location(out))
    images = t.current_images("fixture", "1", report.filters_hash)
    cls = t.committed_detections(images, "fixture", "1", report.filters_hash, table=CLASSIFICATIONS)
    snips = t.committed_detections(images, "fixture", "1", report.filters_hash, table=SNIPS)
    assert len(cls) == 6 and len(snips) == 12
    assert all(u.startswith(f"{s3_bucket}/det/crops/fixture/1/") for u in snips["crop_uri"])
    assert decode_image(fs.cat_file(snips["crop_uri"].iloc[0].removeprefix("s3://"))).ndim == 3
    assert pd.Series([len(fs.ls(f"{out}/crops".removeprefix("s3://"), detail=False))]).iloc[0] == 1
    assert t.read(IMAGES, "fixture", "1").num_rows == 4


def check_postprocess_and_exports(out: Path, source: str, archive: Path, tmp_path: Path) -> None:
    """Classifier filters re-applied to the stored tables (no model), and the three exports carrying them."""
    import json

    from batch.export.options import ExportOptions
    from batch.export.run import run_export
    from batch.postprocessing.run_report import format_report
    from tests.fixtures.postprocess import postprocess

    # One image first, as the console's preview asks: the blue deer is relabelled, nothing is written.
    preview = postprocess(str(out), "classifier_mask", {"allowed_labels": ["red", "green"]}, filters_hash=source,
                              image="cam1/a.jpg", dry_run=True)
    relabelled = [c for c in preview.changes if c["change"] == "relabelled"]
    assert preview.relabelled == len(relabelled) >= 1 and relabelled[0]["kept_after"], preview.changes
    [what] = relabelled[0]["relabelled"]
    assert what["from"] == "blue" and what["to"] in ("red", "green") and what["classifier"] == "colour"
    assert f"blue -> {what['to']}" in format_report(preview)
    masked = postprocess(str(out), "classifier_mask", {"allowed_labels": ["red", "green"]}, filters_hash=source)
    assert masked.filters_hash != source and masked.images == 4
    assert "2 classification(s) changed their label" in masked.notes  # the two blue deer
    t = Tables(open_location(str(out)))
    images = t.current_images("fixture", "1", masked.filters_hash)
    cls = t.committed_detections(images, "fixture", "1", masked.filters_hash, table=CLASSIFICATIONS)
    assert len(cls) == 6 and "blue" not in set(cls["label"])
    assert len(t.committed_detections(images, "fixture", "1", masked.filters_hash, table=SNIPS)) == 12
    rolled = postprocess(str(out), "rank_rollup", {"threshold": 0.99}, filters_hash=masked.filters_hash)
    cls = t.committed_detections(t.current_images("fixture", "1", rolled.filters_hash), "fixture", "1",
                                 rolled.filters_hash, table=CLASSIFICATIONS)
    assert set(cls["rank"].dropna()) <= {"temperature", "root"}

    md = tmp_path / "md.json"
    run_export(ExportOptions(tables=str(out), format="megadetector", out=str(md), filters_hash=source))
    doc = json.loads(md.read_text())
    names = doc["classification_categories"]
    a = next(i for i in doc["images"] if i["file"] == "cam1/a.jpg")
    deer = [d for d in a["detections"] if d["category"] == "1"]
    assert {names[d["classifications"][0][0]] for d in deer} == {"red", "blue"}
    assert all(len(d["classifications"]) == 2 for d in deer)  # the answer, then the rest of the top-2
    assert all("classifications" not in d for d in a["detections"] if d["category"] == "2")
    assert set(doc) <= {"info", "images", "detection_categories", "classification_categories"}  # as MD writes it
    assert doc["info"]["classifier"] == "colour 1" and doc["info"]["classifier_metadata"]["classifiers"][0]["labels"]
    dp = tmp_path / "dp"
    report = run_export(ExportOptions(tables=str(out), format="camtrap-dp", out=str(dp),
                                      filters_hash=rolled.filters_hash, allow_missing_deployments=True))
    assert any("without coordinates" in n for n in report.notes)
    obs = pd.read_csv(dp / "observations.csv")
    assert set(obs["scientificName"].dropna()) <= {"red", "green", "cool", "warm", "colour"}
    package = json.loads((dp / "datapackage.json").read_text())  # taxonomic coverage: the names observed
    assert {t["scientificName"] for t in package["taxonomic"]} == set(obs["scientificName"].dropna())
    assert obs["scientificName"].notna().sum() == 6 and obs["classifiedBy"].str.contains("colour 1").sum() == 6
    coco = tmp_path / "coco.json"
    run_export(ExportOptions(tables=str(out), format="coco", out=str(coco), filters_hash=source))
    results = json.loads(coco.read_text())
    assert sum("classification" in r for r in results) == 6
    check_report_species(out, source, tmp_path)


def check_report_species(out: Path, source: str, tmp_path: Path) -> None:
    """The review report shows what the classifier said: its version in the header, a table and gallery per species."""
    import re

    from batch.review import ReportOptions, build_report

    result = build_report(ReportOptions(str(out), str(tmp_path / "report"), filters_hash=source, per_band=2))
    html = Path(result.index).read_text()
    assert re.search(r'<div class="meta">.*classifier <code>colour:1</code>', html, re.S)
    rows = re.findall(r'<tr><td><span class="swatch"[^>]*></span>(\w+)</td><td>(\w*)</td><td class="num">(\d+)</td>'
                      r'<td class="num">(\d+)</td>', html)
    assert sorted(rows) == [("blue", "", "2", "2"), ("green", "", "2", "2"), ("red", "", "2", "2")]
    assert 'id="species"' in html and html.count('class="sband"') >= 3
    assert str(tmp_path) not in html.split("</header>")[0]  # no machine path in the header
