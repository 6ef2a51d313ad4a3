"""Clips without Ray: PyAV sampling (seconds, every Nth frame, every frame, seeking), bad clips as typed reasons,
and a clip through the detector core and the archive stages (one row per clip, its frames' detections, tracks)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import typing
from pathlib import Path

import cv2
import numpy as np
import pytest

from batch.export.formats import megadetector
from batch.options import parse_options
from batch.reprocess.options import ReprocessOptions
from ground.errors import OptionsError
from model_store import ConfigError, ModelStore
from model_store.core.clip_sampling import Sampling, clip_ranges
from model_store.core.clip_settings import ClipSettings
from model_store.core.clips import ClipDecoding, detect_clip
from model_store.core.config.detector import PreprocessConfig
from model_store.core.video import ClipReader, VideoDecodeError, probe_clip
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES, OCCURRENCES
from model_store.tables.table_set import TableSet
from tests.fixtures.archive import LABELS, brightness_config, brightness_model, process_without_ray
from tests.fixtures.clips import day_night_clip, frame, truncate, write_clip
from tests.fixtures.postprocess import postprocess

CREATED = dt.datetime(2024, 6, 1, 21, 30, 0)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {
        "cfr": day_night_clip(d / "a.mp4", "DDDD", fps=10, created=CREATED, gop=10),  # 4 s, 40 frames
        "long": day_night_clip(d / "b.mkv", "D" * 10, fps=10, codec="mpeg4", gop=10),  # 10 s
        "dir": d,
    }


def sampled(path, sampling, size_for=None):
    with ClipReader(str(path)) as reader:
        return [(f.number, f.offset_s, f.rgb.shape) for f in reader.frames(sampling, size_for, "area")]


def test_probe_reads_the_container_without_decoding(clips):
    info = probe_clip(str(clips["cfr"]))
    assert (info.width, info.height, info.fps, info.codec) == (160, 128, 10.0, "h264")
    assert info.duration_s == pytest.approx(4.0, abs=0.15) and info.created == CREATED


def test_sampling_every_second_every_nth_and_every_frame(clips):
    assert [(n, o) for n, o, _ in sampled(clips["cfr"], Sampling())] == [(0, 0.0), (10, 1.0), (20, 2.0), (30, 3.0)]
    assert [n for n, _, _ in sampled(clips["cfr"], Sampling.parse("15f"))] == [0, 15, 30]
    assert len(sampled(clips["cfr"], Sampling.parse("all"))) == 40
    # frames come out already scaled to what the model needs (one swscale pass), never full size first
    assert {s for _, _, s in sampled(clips["cfr"], Sampling(), lambda w, h: (80, 64))} == {(64, 80, 3)}


def test_sparse_sampling_seeks_and_lands_on_the_same_grid(clips):
    got = sampled(clips["long"], Sampling.parse("3s"))
    assert [round(o) for _, o, _ in got] == [0, 3, 6, 9]
    assert [n for n, _, _ in got] == [0, 30, 60, 90]


def test_one_frame_by_offset_or_number_is_the_frame_decoding_through_gives(clips):
    with ClipReader(str(clips["long"])) as reader:
        through = {f.number: f.rgb for f in reader.frames(Sampling.parse("all"))}
    with ClipReader(str(clips["long"])) as reader:  # seeks back and forth on one open clip
        at = reader.frame_at(5.7)
        assert (at.number, at.offset_s) == (57, pytest.approx(5.7)) and np.array_equal(at.rgb, through[57])
        assert np.array_equal(reader.frame_numbered(23, max_side=1000), through[23])
        assert reader.frame_numbered(81, max_side=80).shape == (64, 80, 3)  # scaled to the long side asked for
        assert np.array_equal(reader.frame_numbered(20, max_side=1000, max_decoded=0), through[20])  # its own keyframe
        with pytest.raises(VideoDecodeError) as far:
            reader.frame_numbered(59, max_side=80, max_decoded=3)  # 9 frames past its keyframe
        assert far.value.reason == "no_frame"
        with pytest.raises(VideoDecodeError, match="no frame"):  # past its end
            reader.frame_numbered(400, max_side=80)


def test_readers_of_one_clip_share_its_places_while_the_file_is_unchanged(tmp_path):
    """The console opens a reader for each frame it shows: the clip's packets are scanned once (the second reader's
    places are the first's), and a clip written again at the same path is numbered by its new frames."""
    path = tmp_path / "shown.mp4"
    write_clip(path, (frame(160, 128, True, i) for i in range(12)), fps=10)
    with ClipReader(str(path)) as a, ClipReader(str(path)) as b:
        assert len(a.places()) == 12 and b.places() is a.places()
    times = [0, 0.1, 0.15, 0.5, 0.9, 1.05, 1.6, 2.0, 2.2, 2.9, 3.1, 3.5, 3.6, 3.7, 4.0, 4.4]
    write_clip(path, (frame(160, 128, i % 2 == 0, i) for i in range(len(times))), fps=10, times_s=times)
    with ClipReader(str(path)) as reader:
        through = [f.rgb for f in reader.frames(Sampling.parse("all"))]
    with ClipReader(str(path)) as reader:
        assert len(reader.places()) == 16 and np.array_equal(reader.frame_numbered(14, max_side=160), through[14])


@pytest.mark.parametrize("text", ["1", "every:0", "0s", "-2f", "3x"])
def test_a_bad_sampling_is_refused_with_the_value(text):
    with pytest.raises(ValueError, match="video sampling|greater than"):
        Sampling.parse(text)


def test_bad_clips_are_reasons_not_crashes(clips):
    d = clips["dir"]
    (d / "notes.mp4").write_bytes(b"this is not a video at all" * 40)
    cut = truncate(write_clip(d / "cut.mp4", (frame(160, 128, True, i)
                                                for i in range(30)), fps=10), 0.5)
    with pytest.raises(VideoDecodeError) as bad:
        probe_clip(str(d / "notes.mp4"))
    assert bad.value.reason == "not_video"
    with pytest.raises(VideoDecodeError) as short:
        probe_clip(str(cut))
    assert short.value.reason == "truncated"
    # FFmpeg's words, without PyAV's errno and file name (the row names the file; an upload has none)
    assert str(short.value) == "the clip is cut short (no index): Invalid data found when processing input"
    with pytest.raises(VideoDecodeError) as long_, ClipReader(str(clips["long"])) as reader:
        list(reader.frames(Sampling(max_frames=5)))
    assert long_.value.reason == "too_long" and long_.value.frames_read == 0  # refused before any decode
    with pytest.raises(VideoDecodeError) as big:
        ClipReader(str(clips["cfr"]), max_pixels=100 * 100)
    assert big.value.reason == "too_large"


def test_a_clip_that_breaks_halfway_keeps_the_frames_it_read(clips):
    d = clips["dir"]
    mkv = truncate(day_night_clip(d / "half.mkv", "D" * 8, fps=10, codec="mpeg4", gop=10), 0.5)
    got, error = [], None
    with ClipReader(str(mkv)) as reader:
        try:
            for f in reader.frames(Sampling()):
                got.append(f.number)
        except VideoDecodeError as exc:
            error = exc
    assert error is not None and error.reason == "truncated" and error.frames_read == len(got) >= 2


def test_an_archive_of_images_and_clips_gives_one_row_per_clip(tmp_path, clips):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    archive = tmp_path / "archive" / "cam01"
    day_night_clip(archive / "visit.mp4", "NDDDN", fps=10, created=CREATED)  # animals in the middle 3 s
    day_night_clip(archive / "night.avi", "NN", fps=10, codec="mpeg4")
    (archive / "broken.mov").write_bytes(b"\x00" * 1000)
    out = tmp_path / "out"
    _, plan = process_without_ray(str(tmp_path / "archive"), str(out), store.root, "trapcam:1")
    assert plan.listing.clips == 3
    images = {r["rel_path"]: r for r in Tables(open_location(str(out))).read(IMAGES).to_pylist()}
    visit, night, broken = images["cam01/visit.mp4"], images["cam01/night.avi"], images["cam01/broken.mov"]
    assert visit["kind"] == "video" and visit["status"] == "ok" and visit["frames_sampled"] == 5
    assert visit["capture_time"] == CREATED and visit["capture_time_source"] == "container"
    assert visit["fps"] == 10.0 and visit["duration_s"] == pytest.approx(5.0, abs=0.2)
    per_frame = visit["max_per_frame"]
    tracks = json.loads(visit["clip_tracks"])
    assert per_frame == 4 and visit["detection_count"] == 3 * per_frame  # the fixture's 4 boxes in 3 frames
    # tracks, not 3x: the deer and the fox boxed on one spot are one animal (a double, merged); of the two boxes
    # that never move, the one the model is unsure of (0.3) is still background, not an animal (clip_counting)
    assert [(t["label"], t["detections"], t["confirmed"]) for t in tracks] == [
        ("deer", 6, True), ("fox", 3, True), ("deer", 3, False)]
    assert visit["clip_animals"] == 2 and visit["clip_label"] == "deer"
    assert (night["status"], night["kind"], night["frames_sampled"]) == ("empty", "video", 2)
    assert (broken["status"], broken["error_reason"]) == ("failed", "not_video")
    dets = [
        d
        for d in Tables(open_location(str(out))).read(DETECTIONS).to_pylist()
        if d["uri"] == visit["uri"] and d["kept"]
    ]
    assert sorted({d["frame_number"] for d in dets}) == [10, 20, 30]
    assert {d["frame_time"] - CREATED for d in dets} == {dt.timedelta(seconds=s) for s in (1, 2, 3)}
    assert len({d["detection_index"] for d in dets}) == len(dets)  # keyed by clip and index, like a still's
    assert {d["clip_track"] for d in dets} == {t["track"] for t in tracks}

    # MegaDetector's video convention, as its validator checks it: every clip entry has a frame rate (-1 when the
    # clip could not be read, with its failure) and each of its detections a frame_number
    tables = Tables(open_location(str(out)))
    all_dets = tables.read(DETECTIONS).to_pandas()
    tset = TableSet("trapcam", "1", all_dets["filters_hash"].iloc[0], tables.metadata("trapcam", "1"))
    md = {e["file"]: e for e in megadetector(tables.read(IMAGES).to_pandas(), all_dets[all_dets["kept"]],
                                             tset)["images"]}
    assert md["cam01/broken.mov"]["frame_rate"] == -1 and md["cam01/broken.mov"]["detections"] is None
    assert md["cam01/visit.mp4"]["frame_rate"] == 10.0 and md["cam01/night.avi"]["detections"] == []
    assert {d["frame_number"] for d in md["cam01/visit.mp4"]["detections"]} == {10, 20, 30}

    # the occurrences post-processing takes a clip's sampled frames as frames of its camera: the same animals
    postprocess(str(out), "track", {})
    occ = Tables(open_location(str(out))).read(OCCURRENCES).to_pylist()
    mine = [o for o in occ if o["uri"] == visit["uri"] and o["confirmed"]]
    assert len(mine) == per_frame and {o["frames"] for o in mine} == {3}


# (field, the model's config, animals by it, the run's fields, animals by them, a bad run value and what the door
# says, a bad model value). Counting: the visit's still deer scores 0.3, background at the default
# still_confirm_score (0.6), an animal at 0.2. Tracking: its animals are seen in 3 frames, so no track is an animal
# when the model asks for 5 (and no sure box).
CLIP_SETTINGS = [
    ("clip_counting", {"still_confirm_score": 0.2}, 3, {"still_confirm_score": 0.6}, 2,
     {"still_confirm_score": 2}, r"still_confirm_score: .*less than or equal to 1", {"duplicate_inside": 0}),
    ("clip_tracking", {"min_frames": 5, "confirm_score": 1.0}, 0, {"min_frames": 3}, 2,
     {"max_cost": 0}, r"max_cost: .*greater than 0", {"no_such_knob": 1}),
]


@pytest.mark.parametrize(("field", "model", "by_model", "run", "by_run", "bad", "says", "bad_model"), CLIP_SETTINGS)
def test_how_a_clip_is_counted_and_tracked_comes_from_the_model_then_the_run(tmp_path, field, model, by_model, run,
                                                                            by_run, bad, says, bad_model):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", {**brightness_config(), field: model})
    day_night_clip(tmp_path / "archive" / "cam01" / "visit.mp4", "NDDDN", fps=10)

    def animals(out: str, **options) -> int:
        process_without_ray(str(tmp_path / "archive"), str(tmp_path / out), store.root, "trapcam:1", **options)
        [row] = Tables(open_location(str(tmp_path / out))).read(IMAGES).to_pylist()
        return row["clip_animals"]

    assert animals("model") == by_model
    assert animals("run", **{field: json.dumps(run)}) == by_run  # the run's fields over the model's
    flag = "--" + field.replace("_", "-")
    with pytest.raises(OptionsError, match=f"{flag}: {says}"):
        parse_options(ReprocessOptions, {"archive": str(tmp_path), "out": str(tmp_path / "o"), "model": "trapcam:1",
                                         field: json.dumps(bad)}, "reprocess")
    with pytest.raises(ConfigError, match=field):
        store.publish(brightness_model(tmp_path / "m2.onnx"), "trapcam", "2", {**brightness_config(), field: bad_model})


def test_a_variable_frame_rate_clip_samples_by_presentation_time(tmp_path):
    times = [0, 0.1, 0.15, 0.5, 0.9, 1.05, 1.6, 2.0, 2.2, 2.9, 3.1, 3.5]
    path = write_clip(tmp_path / "vfr.mp4", (frame(160, 128, True, i) for i in range(len(times))), fps=10,
                      times_s=times)
    assert sampled(path, Sampling()) == [(0, 0.0, (128, 160, 3)), (5, 1.05, (128, 160, 3)),
                                         (7, 2.0, (128, 160, 3)), (10, 3.1, (128, 160, 3))]
    assert [o for _, o, _ in sampled(path, Sampling.parse("all"))] == times


def test_a_clip_cut_into_time_ranges_gives_the_record_of_an_uncut_pass(tmp_path):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    detector = store.load_detector("trapcam:1")
    path = day_night_clip(tmp_path / "walk.mp4", "NDDDNNDDDDNDN", fps=10, gop=10)  # 13 s: 13 sampled frames

    def run(parts: int, clip=path, sampling=Sampling()):
        reopen = functools.partial(ClipReader, str(clip))
        with reopen() as reader:
            return detect_clip(detector, reader, ClipSettings(sampling),
                               decoding=ClipDecoding(batch_size=4, reopen=reopen, parts=parts, min_range_frames=4))

    def record(c):
        frames = [(n, o, [(d.label, d.bbox, d.score) for d in r.detections]) for n, o, r in c.frames]
        return frames, c.tracks, c.track_of, c.reason

    whole, cut = run(1), run(3)
    assert [r.start_s for r in clip_ranges(whole.info, Sampling(), 3, 4)] == [0.0, 5.0, 9.0]  # on the 1 s grid
    assert [n for n, _, _ in cut.frames] == list(range(0, 130, 10))
    assert record(cut) == record(whole) and whole.animals >= 1
    # every frame: cut at frame times (not on a keyframe), each frame read once, numbered as an uncut pass does
    every = Sampling.parse("all")
    assert [r.start_s for r in clip_ranges(whole.info, every, 3, 4)] == pytest.approx([0.0, 4.3, 8.7])
    whole, cut = run(1, sampling=every), run(3, sampling=every)
    assert [n for n, _, _ in cut.frames] == list(range(130)) and record(cut) == record(whole)
    # every Nth frame: cut at frame times too, each range taking every Nth frame of the clip (by its place)
    nth = Sampling.parse("3f")
    assert [r.start_s for r in clip_ranges(whole.info, nth, 3, 4)] == pytest.approx([0.0, 4.5, 8.7])
    whole, cut = run(1, sampling=nth), run(3, sampling=nth)
    assert [n for n, _, _ in cut.frames] == list(range(0, 130, 3)) and record(cut) == record(whole)
    # a clip that breaks: the ranges past the break say so, and every frame read before it is kept
    broken = truncate(day_night_clip(tmp_path / "cut.mkv", "D" * 14, fps=10, codec="mpeg4", gop=10), 0.5)
    whole, cut = run(1, broken), run(3, broken)
    assert cut.reason == whole.reason == "truncated" and [f[0] for f in cut.frames] == [f[0] for f in whole.frames]


def test_a_clip_snips_and_classifies_the_best_frame_of_each_track(tmp_path, colour_onnx):
    from batch.reprocess.actor_settings import ClassifySettings, DetectorSettings
    from batch.reprocess.classify import ClassifyActor
    from batch.reprocess.detect import DetectorActor
    from batch.reprocess.job import _spec
    from batch.reprocess.options import ReprocessOptions
    from batch.reprocess.plan import plan_run
    from batch.reprocess.read import read_and_prepare
    from model_store.tables.listing import entries_table
    from model_store.tables.schema import CLASSIFICATIONS, SNIPS
    from tests.fixtures.classifiers import COLOUR_LABELS, colour_config

    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    store.publish(colour_onnx, "colour", "1", colour_config(applies_to=list(LABELS)))
    day_night_clip(tmp_path / "archive" / "cam01" / "visit.mp4", "NDDDN", fps=10, gop=10)
    plan = plan_run(ReprocessOptions(archive=str(tmp_path / "archive"), out=str(tmp_path / "out"), model="trapcam:1",
                                     store=store.root, crops=True, classify=["colour:1"]))
    spec = _spec(plan, "run", 1)
    detect = DetectorActor(DetectorSettings(spec.store_url, spec.ref, spec.filter_specs, clips_url=spec.archive_url,
                                            clips=spec.clips))
    results = detect(read_and_prepare(entries_table(plan.selection.todo), archive_url=spec.archive_url,
                                      config_json=spec.config_json))
    crop = ClassifyActor(ClassifySettings(spec.store_url, spec.stage.routes, spec.filter_specs, spec.stage.crops,
                                          spec.archive_url, spec.out_url, "trapcam", "1", spec.stage.result_hash))
    [row] = crop(results).to_pylist()
    tracks = json.loads(row["clip_tracks"])
    best = sorted(t["best_detection_index"] for t in tracks)
    assert row["status"] == "ok" and len(tracks) >= 1
    # one snip and one classification a track (not one a sampled frame), on its best detection, cut from that
    # frame at full size
    assert sorted(s["detection_index"] for s in row[SNIPS]) == best
    assert sorted(c["detection_index"] for c in row[CLASSIFICATIONS]) == best
    assert {c["label"] for c in row[CLASSIFICATIONS]} <= set(COLOUR_LABELS)
    dets = {d["detection_index"]: d for d in row["detections"]}
    for s in row[SNIPS]:
        d = dets[s["detection_index"]]
        assert (s["crop_width"], s["crop_height"]) == (round(d["bbox_w"] * 160), round(d["bbox_h"] * 128))
        snip = cv2.imdecode(np.frombuffer(Path(s["crop_uri"].removeprefix("file://")).read_bytes(), np.uint8), 1)
        assert snip.shape[:2] == (s["crop_height"], s["crop_width"]) and snip.mean() > 100  # a day frame's pixels


def test_a_clip_detected_by_a_deployment_gives_the_record_of_a_local_detector(tmp_path):
    from batch.reprocess.served_clips import ServedFrames

    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    detector = store.load_detector("trapcam:1")
    path = day_night_clip(tmp_path / "visit.mp4", "NDDDN", fps=10)
    calls = []

    class Answer:  # what a Serve handle's call gives: .result() (the replica's records as dicts), or its error
        def __init__(self, images, metas):
            calls.append(len(images))
            self.records = [r.model_dump() for r in detector.run_prepared(images, metas)]

        def result(self):
            if len(calls) == 1:  # the first call meets a full lane: every frame of it is sent again
                raise TimeoutError("the bulk lane is full")
            return self.records

    served = ServedFrames(detector.preprocessor, Answer, lambda record: None, lambda exc, tries: 0.0, object)
    with ClipReader(str(path)) as a, ClipReader(str(path)) as b:
        four = ClipDecoding(batch_size=4)
        local, remote = detect_clip(detector, a, ClipSettings(), decoding=four), detect_clip(served, b, ClipSettings(),
                                                                                             decoding=four)
    assert calls == [4, 4, 1] and remote.reason is None and remote.filters is None
    assert [(n, o, r.detections) for n, o, r in remote.frames] == [(n, o, r.detections) for n, o, r in local.frames]
    assert remote.tracks == local.tracks and remote.animals >= 1


@pytest.mark.parametrize("interpolation", typing.get_args(PreprocessConfig.model_fields["interpolation"].annotation))
def test_a_clip_frame_s_record_is_the_still_s_with_every_preprocess_interpolation(tmp_path, interpolation):
    # a clip's frames are converted at full size and letterboxed by the model's own resize (OpenCV's, or Pillow's
    # bicubic for MegaDetector's preprocessing), as a still is: each frame's record is that frame's as a still
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    cfg = brightness_config(preprocess={"interpolation": interpolation})
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", cfg)
    detector = store.load_detector("trapcam:1")
    path = day_night_clip(tmp_path / "visit.mp4", "NDDN", fps=10)
    inputs, run_planar = [], detector.run_planar

    def seen(planes, metas, filters=None):  # the model's input, as the clip loop hands it over
        inputs.extend(planes.copy())
        return run_planar(planes, metas, filters)

    detector.run_planar = seen
    with ClipReader(str(path)) as reader:
        clip = detect_clip(detector, reader, ClipSettings(), decoding=ClipDecoding(batch_size=4))
    assert clip.reason is None and [n for n, _, _ in clip.frames] == [0, 10, 20, 30] and clip.animals >= 1
    with ClipReader(str(path)) as reader:
        frames = list(reader.frames(Sampling()))
    assert frames[0].rgb.shape[:2] != tuple(detector.config.input_size)  # the letterbox resizes
    prepared = [detector.prepare(f.rgb) for f in frames]
    assert all(np.array_equal(got, image.transpose(2, 0, 1)) for got, (image, _) in zip(inputs, prepared, strict=True))
    stills = [detector.run_prepared([image], [meta])[0] for image, meta in prepared]
    assert [r.detections for _, _, r in clip.frames] == [r.detections for r in stills]
