"""Clips through the real reprocess job (Ray Data on the shared test cluster): an archive of a camera's stills with
a clip, a night clip and a truncated clip beside them gives one row per file, by kind, exactly once."""

from __future__ import annotations

import datetime as dt

import pytest

from batch.export.base import ExportRows
from batch.export.camtrap import camtrap_dp
from batch.export.camtrap_options import CamtrapOptions
from batch.export.formats import megadetector
from batch.jobs.control import manifest_progress
from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.summary import format_report
from model_store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from model_store.tables.table_set import TableSet
from tests.fixtures.archive import brightness_config, brightness_model, encode, picture
from tests.fixtures.clips import day_night_clip, truncate

pytestmark = pytest.mark.ray
CREATED = dt.datetime(2024, 6, 1, 21, 30, 0)


def test_a_folder_of_stills_and_clips_through_the_job(ray_cluster, tmp_path):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config(video_sampling="2s"))
    cam = tmp_path / "archive" / "cam01"
    cam.mkdir(parents=True)
    for i in range(3):
        (cam / f"IMG_{i}.jpg").write_bytes(encode(picture(320, 240, night=False, seed=i)))
    day_night_clip(cam / "visit.mp4", "NNDDDDNN", fps=10, created=CREATED)  # animals from 2 s to 6 s
    truncate(day_night_clip(cam / "cut.mkv", "D" * 8, fps=10, codec="mpeg4", gop=10), 0.5)
    out = tmp_path / "out"
    opts = ReprocessOptions(archive=str(tmp_path / "archive"), out=str(out), model="trapcam:1", store=store.root,
                            num_cpus=0.5, rows_per_file=3, batch_size=4, video_sampling="1s")
    report = run_reprocess(opts)
    assert report.status == "succeeded", report.error
    assert (report.found, report.clips_found, report.processed, report.clips) == (5, 2, 5, 2)
    assert (report.failed, report.clips_failed) == (1, 1)
    text = format_report(report)
    assert "found 3 image(s), 2 clip(s)" in text and "2 of them clips (1 failed)" in text

    rows = {r["rel_path"]: r for r in Tables(open_location(str(out))).read(IMAGES).to_pylist()}
    visit, cut = rows["cam01/visit.mp4"], rows["cam01/cut.mkv"]
    # the run's --video-sampling (1 s) over the model's default (2 s): 8 frames of the 8 s clip
    assert (visit["status"], visit["kind"], visit["frames_sampled"]) == ("ok", "video", 8)
    boxes = visit["max_per_frame"]  # tracks, not 4x; a double is one animal, an unsure still box none
    assert (boxes, visit["clip_animals"], visit["detection_count"]) == (4, 2, 4 * boxes)
    assert (cut["status"], cut["error_reason"], cut["kind"]) == ("failed", "truncated", "video")
    assert 0 < cut["frames_sampled"] < 8 and "ends at" in cut["error"]
    assert {rows[k]["kind"] for k in rows if k.endswith(".jpg")} == {"image"}

    dets = Tables(open_location(str(out))).read(DETECTIONS).to_pandas()
    visit_dets = dets[(dets["uri"] == visit["uri"]) & dets["kept"]]
    assert sorted(set(visit_dets["frame_number"])) == [20, 30, 40, 50]

    # the MegaDetector format's video convention: one entry per clip, each detection with its frame_number
    tables = Tables(open_location(str(out)))
    tset = TableSet("trapcam", "1", dets["filters_hash"].iloc[0], tables.metadata("trapcam", "1"))
    images = tables.read(IMAGES).to_pandas()
    entry = next(e for e in megadetector(images, dets[dets["kept"]], tset)["images"] if e["file"] == "cam01/visit.mp4")
    assert entry["frame_rate"] == 10.0 and {d["frame_number"] for d in entry["detections"]} == {20, 30, 40, 50}

    # Camtrap DP: the clip is a video/mp4 media row; its animals one event-level observation over the clip's span
    options = CamtrapOptions(tables=str(out), out=str(out / "dp"), format="camtrap-dp")
    media, observations = camtrap_dp(ExportRows(images, dets[dets["kept"]]), tset, options)
    clip_media = next(m for m in media if m["fileName"] == "visit.mp4")
    assert clip_media["fileMediatype"] == "video/mp4" and clip_media["timestamp"].startswith("2024-06-01T21:30:00")
    seen = [o for o in observations if o["eventID"] == f"clip_{clip_media['mediaID']}"]
    assert {o["observationLevel"] for o in seen} == {"event"} and sum(o["count"] for o in seen) == visit["clip_animals"]
    assert all(o["eventEnd"].startswith("2024-06-01T21:30:08") for o in seen)

    again = run_reprocess(opts)  # exactly once: a rerun finds every clip done (the failed one is not retried)
    assert (again.already_done, again.processed) == (5, 0)

    # Other clip settings: the clips are redone (the cut one too: its row was made with the old ones), the stills
    # skipped, and every reader sees one current row per clip, the new one; the same settings again skip them.
    sparse = opts.model_copy(update={"video_sampling": "2s"})
    redo = run_reprocess(sparse)
    assert (redo.already_done, redo.clips_redone, redo.processed, redo.clips) == (3, 2, 2, 2), redo.error
    assert "(2 clip(s) redone for new clip settings" in format_report(redo)
    [manifest] = [m for m in tables.manifests() if m.run_id == redo.run_id]
    assert manifest_progress(manifest)["stages"]["plan"]["clips_redone"] == 2  # what GET /v1/jobs/{id} says
    current = tables.current_images("trapcam", "1", tset.filters_hash).set_index("rel_path")
    assert len(current) == 5 and current.loc["cam01/visit.mp4", "frames_sampled"] == 4
    assert current.loc["cam01/IMG_0.jpg", "run_id"] == report.run_id  # the stills as they were
    kept = tables.committed_detections(current.reset_index(), "trapcam", "1", tset.filters_hash, kept_only=True)
    assert sorted(set(kept[kept["uri"] == visit["uri"]]["frame_number"])) == [20, 40]
    assert (run_reprocess(sparse).processed, run_reprocess(sparse).already_done) == (0, 5)
