"""A rerun with other clip settings (sampling, tracking, counting) redoes the clips, and only them, without Ray: the
done-check (model_store/tables/done.py), the plan's counts, and the readers' one current row per clip."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import plan_run
from batch.reprocess.summary import format_report
from model_store import ModelStore
from model_store.core.clip_sampling import Sampling
from model_store.core.clip_settings import ClipSettings
from model_store.tables.done import CLIP_DONE_COLUMNS, DONE_COLUMNS, done_under
from model_store.tables.locations import open_location
from model_store.tables.maintenance import check
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from tests.fixtures.archive import brightness_config, brightness_model, encode, picture, process_without_ray
from tests.fixtures.clips import day_night_clip

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _rows(*rows: tuple) -> pa.Table:
    """Image rows (rel_path, kind, status, error_reason, clip_settings, minutes after T0) under /a/."""
    cols = {c: [] for c in CLIP_DONE_COLUMNS}
    for rel, kind, status, reason, settings, minutes in rows:
        for c, v in zip(CLIP_DONE_COLUMNS, (f"/a/{rel}", "c", status, reason, kind, settings,
                                            T0 + dt.timedelta(minutes=minutes), f"run{minutes}"), strict=True):
            cols[c].append(v)
    return pa.table(cols)


def test_a_clip_is_done_by_its_newest_row_made_with_the_runs_settings():
    rows = _rows(
        ("still.jpg", "image", "ok", None, None, 0),
        ("gone.jpg", "image", "failed", "read_error", None, 0),
        ("old.mp4", "video", "ok", None, None, 0),  # a row from before clip rows carried their settings
        ("same.mp4", "video", "ok", None, "A", 0),
        ("other.mp4", "video", "ok", None, "B", 0),
        ("back.mp4", "video", "ok", None, "A", 0), ("back.mp4", "video", "ok", None, "B", 5),  # A, then B
        ("cut.mp4", "video", "failed", "truncated", "B", 0),
        ("blip.mp4", "video", "failed", "read_error", "A", 0),
    )
    batches = rows.select(DONE_COLUMNS).to_batches()
    clips = rows.filter(pc.equal(rows["kind"], "video"))  # what Tables.done_under reads of the clips apart
    got = done_under(batches, "/a/", clips=clips, clip_settings="A")
    keys = {k.split("\x00")[0] for k in got.keys.to_pylist()}
    assert keys == {"still.jpg", "old.mp4", "same.mp4"}
    # the clips done with other settings, newest row first: back.mp4 was done with A once, but is B's now
    assert {k.split("\x00")[0] for k in got.redo.to_pylist()} == {"other.mp4", "back.mp4", "cut.mp4"}
    # without the clips read apart: a clip is judged as a still, by any of its rows
    assert len(done_under(batches, "/a/").keys) == 7 and not len(done_under(batches, "/a/").redo)
    assert not len(done_under(batches, "/elsewhere/", clips=clips, clip_settings="A").keys)


def test_the_settings_hash_leaves_out_the_frame_cap_only():
    default = ClipSettings.of()
    assert ClipSettings.of(Sampling(max_frames=5)).hash == default.hash
    others = [ClipSettings.of(Sampling.parse("all")), ClipSettings.of(None, {"max_cost": 0.4}),
              ClipSettings.of(None, None, {"still_motion": 0})]
    assert len({default.hash, *(s.hash for s in others)}) == 4


def test_a_rerun_with_other_clip_settings_redoes_the_clips_and_only_them(tmp_path):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    cam = tmp_path / "archive" / "cam01"
    cam.mkdir(parents=True)
    (cam / "IMG_0.jpg").write_bytes(encode(picture(320, 240, night=False, seed=0)))
    day_night_clip(cam / "visit.mp4", "NDDDN", fps=10)  # 5 s: 5 frames at 1 s, 3 at 2 s
    archive, out = str(tmp_path / "archive"), str(tmp_path / "out")
    tables = Tables(open_location(out))

    def plan(**options):
        return plan_run(ReprocessOptions(archive=archive, out=out, model="trapcam:1", store=store.root, **options))

    def current():
        images = tables.current_images("trapcam", "1", plan().filters.hash)
        dets = tables.committed_detections(images, "trapcam", "1", plan().filters.hash)
        return images.set_index("rel_path"), dets

    process_without_ray(archive, out, store.root, "trapcam:1")
    first, _ = current()
    assert first.loc["cam01/visit.mp4", "frames_sampled"] == 5
    assert first.loc["cam01/visit.mp4", "clip_settings"] == plan().clips.hash
    assert pd.isna(first.loc["cam01/IMG_0.jpg", "clip_settings"])  # a still has none
    same = plan()
    assert (same.selection.already_done, len(same.selection.todo), same.selection.clips_redone) == (2, 0, 0)

    redo = plan(video_sampling="2s")
    assert (redo.selection.already_done, redo.selection.clips_redone) == (1, 1)
    assert list(redo.selection.todo.table["rel_path"].to_pylist()) == ["cam01/visit.mp4"]  # the still is skipped
    assert "(1 clip(s) redone for new clip settings" in format_report(redo.report(None, "dry-run"))
    process_without_ray(archive, out, store.root, "trapcam:1", video_sampling="2s")
    now, dets = current()
    assert len(now) == 2 and now.loc["cam01/visit.mp4", "frames_sampled"] == 3
    assert now.loc["cam01/visit.mp4", "clip_settings"] == redo.clips.hash != first.loc["cam01/visit.mp4",
                                                                                          "clip_settings"]
    assert now.loc["cam01/IMG_0.jpg", "run_id"] == first.loc["cam01/IMG_0.jpg", "run_id"]  # untouched
    clip_dets = dets[dets["uri"] == now.loc["cam01/visit.mp4", "uri"]]
    assert set(clip_dets["run_id"]) == {now.loc["cam01/visit.mp4", "run_id"]}
    assert sorted(set(clip_dets[clip_dets["kept"]]["frame_number"])) == [20]  # 0, 20, 40: the animals are in 1-3 s
    assert len(tables.read(IMAGES)) == 3 and len(set(tables.read(DETECTIONS)["run_id"].to_pylist())) == 2
    assert check(out).clean  # a clip redone for new settings is a new result, not one processed twice

    assert len(plan(video_sampling="2s").selection.todo) == 0  # the same settings again: nothing to do
    back = plan()  # and back to the first: the clip's current row is the 2 s one, so it is redone again
    assert (back.selection.clips_redone, len(back.selection.todo)) == (1, 1)
    assert plan(clip_tracking='{"max_cost": 0.4}').selection.clips_redone == 1
    assert plan(clip_counting='{"still_motion": 0}').selection.clips_redone == 1
