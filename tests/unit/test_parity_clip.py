"""trapline's clip path against the reference libraries on the same clip (issue 46; benchmarks NOTES.md section 6).

The fixture (`tests/fixtures/reference/build_clip.py`) holds Ultralytics' `predict` on every frame of a 1280x720
H.264 clip with a trained detector (`trained_demo_yolov8.onnx`, square 320: the frames are scaled down 4x), and
the frame numbers MegaDetector's `video_utils` samples from it and from a variable-frame-rate clip.

trapline's clip path does what Ultralytics does to a video frame: the full-size RGB frame (PyAV's is OpenCV's to
the pixel) resized with `cv2.resize` INTER_LINEAR into the letterbox (`model_store.core.clips`, as a still). So the
clip path must give Ultralytics' boxes: the bounds below are exact up to float noise. (Until 2026-11-27 swscale
scaled each frame inside its RGB conversion: 118/123 boxes matched, mean |dscore| 0.067, corners 5.2 px off;
benchmarks NOTES.md section 6.) `test_the_bar_catches_a_channel_swap_and_a_shifted_letterbox` shows the bounds fail on
those two bugs; the figures are in every failure message.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from batch.views.picture_files import clip_frame
from model_store import ModelStore
from model_store.core.agreement import boxes_of
from model_store.core.clip_sampling import Sampling, TimeRange
from model_store.core.clip_settings import ClipSettings
from model_store.core.clips import detect_clip
from model_store.core.imaging import decode_image
from model_store.core.video import ClipReader
from tests.fixtures.clip_parity import REFERENCE, agreement, clip_boxes, clip_path, expected, reference_frames

MODEL = REFERENCE / "trained_demo_yolov8.onnx"
STRIDE = expected()["ultralytics_vid_stride"]["vid_stride"]  # 3
MEGADETECTOR = expected()["megadetector"]["clips"]
CFR, VFR = clip_path("clip").name, clip_path("vfr_clip").name

# Exact: every reference box matched, none extra, scores and corners equal up to float noise (measured: 123/123 and
# 31/31, |dscore| 0.000, corners 0.00 px). With the channels swapped: 7 extra, mean |dscore| 0.100, corners mean
# 10.1 px; with the letterbox one model pixel (4 clip pixels) low: corners mean 8.7 px, centre shift +4.0 px.
MIN_MATCHED = 1.0  # share of the reference boxes >= 0.3 matched (same class, IoU >= 0.5)
MAX_EXTRA = 0.0  # product boxes >= 0.3 with no reference box, as a share of the reference boxes
MAX_MEAN_DSCORE = 1e-3
MAX_MEAN_CORNER_PX = 0.05  # in the 1280x720 clip's pixels: 4 px is one pixel of the model's input
MAX_MEAN_SHIFT_PX = 0.05  # |mean signed centre shift| in x and in y: a displaced letterbox moves every box


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip-parity")
    store = ModelStore(str(root / "store"), cache_dir=str(root / "cache"))
    store.publish(MODEL, "trained-demo", "1")  # no config: derived from the export, as a user would publish it
    return store.load_detector("trained-demo:1", threads=1)


def run_clip(detector, sampling: str):
    with ClipReader(str(clip_path())) as reader:
        clip = detect_clip(detector, reader, ClipSettings(Sampling.parse(sampling)))
    assert clip.reason is None, clip.error
    return clip


def within_bounds(agreed) -> list[str]:
    """The bounds `agreed` breaks (empty: within all)."""
    n = agreed.reference
    broken = []
    if agreed.matched < MIN_MATCHED * n:
        broken.append(f"matched {agreed.matched}/{n} < {MIN_MATCHED:.0%}")
    if agreed.extras > MAX_EXTRA * n:
        broken.append(f"{agreed.extras} extra > {MAX_EXTRA:.0%} of {n}")
    if np.mean(agreed.dscores or [1]) > MAX_MEAN_DSCORE:
        broken.append(f"mean |dscore| > {MAX_MEAN_DSCORE}")
    if np.mean(agreed.corners or [1e9]) > MAX_MEAN_CORNER_PX:
        broken.append(f"mean corner deviation > {MAX_MEAN_CORNER_PX} px")
    if max(abs(v) for v in agreed.mean_shift) > MAX_MEAN_SHIFT_PX:
        broken.append(f"mean centre shift > {MAX_MEAN_SHIFT_PX} px")
    return broken


@pytest.mark.parametrize(("sampling", "every"), [(f"{STRIDE}f", str(STRIDE)), ("1s", "-1")])
def test_clip_path_agrees_with_ultralytics_predict(detector, sampling, every):
    """Every 3rd frame (frames 0, 3, 6, ...) and one a second (the default: 0, 12, 24, ..., decoded from seeks)
    through `detect_clip`, against Ultralytics' boxes on the same frames; the frames are those MegaDetector takes
    for `every_n_frames` 3 and -1. The reference's own `vid_stride=3` takes frames 2, 5, 8 (it grabs 3 and keeps
    the last): the fixture holds its every-frame run, so both are compared on the same frames."""
    clip = run_clip(detector, sampling)
    numbers = [n for n, _, _ in clip.frames]
    assert numbers == MEGADETECTOR[CFR]["samplings"][every]["run_callback_on_frames"]
    if sampling == f"{STRIDE}f":
        assert [n + STRIDE - 1 for n in numbers] == expected()["ultralytics_vid_stride"]["frames"]
    agreed = agreement(clip_boxes(clip), reference_frames())
    print(f"\nclip path ({sampling}) vs Ultralytics predict: {agreed.summary()}")
    assert agreed.reference >= 30  # a trained detector: real boxes to compare
    assert not within_bounds(agreed), f"clip path ({sampling}) vs Ultralytics predict: {agreed.summary()}; " \
                                      f"out of bounds: {', '.join(within_bounds(agreed))}"


def test_full_size_frames_give_ultralytics_boxes_exactly(detector):
    """Where the deviation comes from: PyAV's full-size RGB frames are OpenCV's to the pixel (both convert with
    swscale's defaults), and the still path (`cv2.resize` INTER_LINEAR, as Ultralytics) on them gives Ultralytics'
    boxes exactly: the reference the clip path is held to."""
    sampling = Sampling.parse(f"{2 * STRIDE}f")  # every 6th frame: 12 frames, ~60 boxes (all 72 agree: BENCHMARKS)
    with ClipReader(str(clip_path())) as reader:
        frames = list(reader.frames(sampling))  # no size_for: full size
    capture = cv2.VideoCapture(str(clip_path()))
    try:
        opencv = []
        for k in range(frames[-1].number + 1):
            ok, bgr = capture.read()
            assert ok, f"OpenCV could not read frame {k}"
            opencv.append(bgr)
    finally:
        capture.release()
    for f in frames:
        diff = np.abs(f.rgb.astype(np.int16) - cv2.cvtColor(opencv[f.number], cv2.COLOR_BGR2RGB)).max()
        assert diff == 0, f"frame {f.number}: PyAV's full-size RGB differs from OpenCV {cv2.__version__}'s by up to " \
                          f"{diff} grey levels (the fixture's boxes were made from OpenCV's frames)"
    records = detector.predict_batch([f.rgb for f in frames])
    agreed = agreement([(f.number, boxes_of(r)) for f, r in zip(frames, records, strict=True)], reference_frames())
    print(f"\nfull-size frames, still path vs Ultralytics predict: {agreed.summary()}")
    assert agreed.matched == agreed.reference and not agreed.extras, agreed.summary()
    assert max(agreed.dscores) <= 1e-4 and max(agreed.corners) <= 0.01, agreed.summary()


@pytest.mark.parametrize("bug", ["channels swapped", "letterbox 1 px low"])
def test_the_bar_catches_a_channel_swap_and_a_shifted_letterbox(detector, monkeypatch, bug):
    """The bounds are tight enough to fail on real regressions: BGR planes into an RGB model, and frames padded one
    model pixel (4 clip pixels) lower than the box mapping assumes."""
    prep = detector.preprocessor
    prepare = prep.prepare_planar

    def broken(rgb, original_size):
        planes, meta = prepare(rgb, original_size)
        if bug == "channels swapped":
            return np.ascontiguousarray(planes[::-1]), meta
        return np.roll(planes, 1, axis=1), meta

    monkeypatch.setattr(prep, "prepare_planar", functools.wraps(prepare)(broken))
    agreed = agreement(clip_boxes(run_clip(detector, f"{STRIDE}f")), reference_frames())
    print(f"\n{bug}: {agreed.summary()}; out of bounds: {', '.join(within_bounds(agreed))}")
    assert within_bounds(agreed), f"{bug} passes the bar: {agreed.summary()}"



def sampled(clip: str, sampling: str) -> list[tuple[int, float]]:
    """(frame number, offset s) of the frames trapline samples from a fixture clip."""
    with ClipReader(str(REFERENCE / "clips" / clip)) as reader:
        return [(f.number, f.offset_s) for f in reader.frames(Sampling.parse(sampling))]


def as_trapline(every: str) -> str:
    """MegaDetector's every_n_frames (N > 0: every Nth frame; N < 0: every -N seconds) as trapline's sampling."""
    n = float(every)
    return f"{int(n)}f" if n > 0 else f"{-n:g}s"


@pytest.mark.parametrize(("clip", "every"), [(c, e) for c in (CFR, VFR) for e in MEGADETECTOR[c]["samplings"]
                                             if c == CFR or float(e) > 0])
def test_frames_sampled_as_megadetector_samples_them(clip, every):
    """Every Nth frame (both clips) and every N seconds on a constant-rate clip: the frames MegaDetector's
    `run_callback_on_frames` and `video_to_frames` take, numbered as they number them (decode order from 0)."""
    md = MEGADETECTOR[clip]["samplings"][every]
    assert md["run_callback_on_frames"] == md["video_to_frames"]
    assert [n for n, _ in sampled(clip, as_trapline(every))] == md["run_callback_on_frames"]


@pytest.mark.parametrize("every", [e for e in MEGADETECTOR[VFR]["samplings"] if float(e) < 0])
def test_seconds_on_a_variable_frame_rate_clip_follow_the_clock(every):
    """Where MegaDetector and trapline legitimately differ: on a variable frame rate MegaDetector turns N seconds
    into every int(N x average fps) frames (so its samples drift off the clock where the rate changes), trapline
    takes the first frame at or after each multiple of N seconds."""
    step = -float(every)
    times = expected()["vfr_clip"]["times_s"]
    grid = [min(t for t in times if t + 1e-6 >= k * step) for k in range(int(times[-1] / step) + 1)]
    got = sampled(VFR, as_trapline(every))
    assert [offset for _, offset in got] == pytest.approx(grid, abs=1e-3)
    fps = MEGADETECTOR[VFR]["opencv"]["fps"]
    md = MEGADETECTOR[VFR]["samplings"][every]["run_callback_on_frames"]
    assert md == list(range(0, len(times), max(1, int(step * fps))))  # MegaDetector's rule, on the record


@pytest.mark.parametrize("every", [e for e in MEGADETECTOR[VFR]["samplings"] if float(e) < 0])
def test_frame_numbers_on_a_variable_frame_rate_clip_are_decode_order(every):
    """A sampled frame's number is its place in the clip (what MegaDetector's tools and the export's
    `frame_number` mean), also after the reader seeks past frames it does not need."""
    times = expected()["vfr_clip"]["times_s"]
    got = sampled(VFR, as_trapline(every))
    place = [min(range(len(times)), key=lambda k: abs(times[k] - offset)) for _, offset in got]
    assert [n for n, _ in got] == place


def test_a_frame_shown_by_its_number_is_the_frame_sampled():
    """The console and the report show a sampled frame by its number (`ClipReader.frame_numbered`): it must be the
    frame the detector saw."""
    with ClipReader(str(clip_path("vfr_clip"))) as reader:
        seen = {f.number: f.rgb for f in reader.frames(Sampling.parse(f"{STRIDE * 5}f"))}
    for number, rgb in seen.items():
        with ClipReader(str(clip_path("vfr_clip"))) as reader:
            shown = reader.frame_numbered(number, max_side=max(rgb.shape))
        assert np.array_equal(shown, rgb), f"frame {number}"


@pytest.mark.parametrize("sampling", ["all", "4f"])
def test_later_time_ranges_number_and_pick_frames_as_the_whole_clip_does(sampling):
    """A time range that starts from a seek (a long clip cut into ranges, `clip_ranges`) numbers its frames by their
    place in the clip, and every Nth frame is every Nth of the clip, not of the range: the ranges together give the
    frames an uncut pass gives, across the clip's change of frame rate (15 fps, then 5 fps from 3 s)."""
    with ClipReader(str(clip_path("vfr_clip"))) as reader:
        whole = [(f.number, f.offset_s) for f in reader.frames(Sampling.parse(sampling))]
    cuts = [0.0, 1.7, 3.1, 4.5, None]  # inside a keyframe interval, at the change, in the 5 fps part
    parts = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        with ClipReader(str(clip_path("vfr_clip"))) as reader:
            got = reader.frames(Sampling.parse(sampling), span=TimeRange(start, end))
            parts += [(f.number, f.offset_s) for f in got]
    assert parts == whole
    times = expected()["vfr_clip"]["times_s"]
    step = 1 if sampling == "all" else 4
    assert [n for n, _ in whole] == list(range(0, len(times), step))


def test_the_consoles_frame_of_a_clip_is_the_frame_of_that_number():
    """The console's strip asks for a clip's frame by its number (`batch.views.picture_files.clip_frame`): on a
    variable frame rate too the JPEG it serves is that frame (the nearest of all the clip's frames to it), also past
    the change of rate, where time x average rate lands 6 frames late."""
    with ClipReader(str(clip_path("vfr_clip"))) as reader:
        every = [f.rgb.astype(np.int16) for f in reader.frames(Sampling.parse("all"))]
    for number in (0, 20, 45, 50, 59):
        shown = decode_image(clip_frame(str(clip_path("vfr_clip")), number, side=max(every[0].shape)))
        off = [float(np.abs(shown - f).mean()) for f in every]
        assert int(np.argmin(off)) == number, f"frame {number} shows frame {int(np.argmin(off))}"
