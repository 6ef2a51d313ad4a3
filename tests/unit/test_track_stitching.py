"""Stitching on the camera's own evidence (issue 58; model_store/core/filters/track_stitching.py): the calibration,
the estimated return prior, no join without evidence, and the animal descriptor it compares. Generated scenes
(benchmarks/tracking_kinds.py), no Ray."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from benchmarks.tracking_kinds import NIGHT_KINDS, night
from model_store.core.filters.appearance import ANIMAL_DESCRIPTOR_LENGTH, animal_descriptor, animal_mask
from model_store.core.filters.track_costs import CameraDetections
from model_store.core.filters.track_stitching import calibrate, return_prior, stitch_pass
from model_store.core.filters.tracking import TrackConfig, link_camera, link_camera_scored

CONFIG = TrackConfig()
KIND = {k.name: k for k in NIGHT_KINDS}


@pytest.fixture(scope="module")
def returns_night() -> dict[str, np.ndarray]:
    return night(KIND["returns-and-newcomers"], 58_001).arrays()


@pytest.fixture(scope="module")
def field_night() -> dict[str, np.ndarray]:
    return night(replace(KIND["field-night"], frames=60), 58_002).arrays()  # fixed boxes render slowly: 20 min


def _link(s: dict[str, np.ndarray], config: TrackConfig = CONFIG, animal: np.ndarray | None = None):
    return link_camera_scored(s["times_s"], s["frame_ids"], s["boxes"], config, appearance=s["appearance"],
                              scores=s["scores"], animal=s["animal"] if animal is None else animal)


def _joins(s: dict[str, np.ndarray], linked) -> tuple[int, int]:
    """(stitched joins, wrong ones): a join is wrong when the detection it attached is of another animal than the
    track's detection just before it."""
    made = wrong = 0
    for r in np.flatnonzero(~np.isnan(linked.stitches[:, 2])):
        rows = np.flatnonzero((linked.ids == linked.ids[r]) & (s["frame_ids"] < s["frame_ids"][r]))
        before = rows[np.argmax(s["frame_ids"][rows])]
        made += 1
        wrong += int(s["truth"][before] != s["truth"][r])
    return made, wrong


def test_the_calibration_reads_the_camera_own_tracks(returns_night):
    s = returns_night
    pieces = link_camera(s["times_s"], s["frame_ids"], s["boxes"], TrackConfig(stitch_gap_frames=0),
                         appearance=s["appearance"])
    vec = s["animal"] / np.linalg.norm(s["animal"], axis=1, keepdims=True)
    dets = CameraDetections(s["boxes"], np.zeros(len(pieces), dtype=np.int64), None, vec)
    step = np.unique(s["frame_ids"], return_inverse=True)[1]
    cal = calibrate(CONFIG, stitch_pass(CONFIG, pieces, step, dets))
    assert cal.enough(CONFIG)
    # two insects seen at once are far apart; one insect's two halves are close
    assert np.median(cal.different) > 10 * np.median(cal.same)
    assert np.quantile(cal.different, 0.05) > np.quantile(cal.same, 0.9)
    same, diff = cal.likelihoods(np.array([np.median(cal.same), np.median(cal.different)]))
    assert same[0] > diff[0] and diff[1] > same[1]
    assert 0 < cal.bar(CONFIG) < np.quantile(cal.different, 0.05)


def test_the_return_prior_is_estimated_not_assumed():
    rng = np.random.default_rng(0)
    returns = rng.random(2000) < 0.2
    # likelihoods of the two components at each candidate: returns are drawn from the first, newcomers the second
    x = np.where(returns, rng.normal(-5, 0.5, 2000), rng.normal(-1.5, 0.7, 2000))
    f_same = np.exp(-0.5 * ((x + 5) / 0.5) ** 2) / 0.5
    f_diff = np.exp(-0.5 * ((x + 1.5) / 0.7) ** 2) / 0.7
    assert return_prior(f_same, f_diff) == pytest.approx(0.2, abs=0.03)
    assert return_prior(f_same[~returns], f_diff[~returns]) < 0.01  # a night where nothing comes back


def test_returns_are_joined_and_newcomers_are_not(returns_night):
    linked = _link(returns_night)
    made, wrong = _joins(returns_night, linked)
    assert made >= 3 and wrong == 0
    joined = ~np.isnan(linked.stitches[:, 2])
    distance, gap, probability = linked.stitches[joined].T
    assert (probability >= CONFIG.stitch_min_probability).all() and (probability <= 1).all()
    assert (gap >= 0).all() and (gap <= CONFIG.stitch_gap_frames).all() and (distance >= 0).all()
    assert np.array_equal(linked.link_confidence[joined], probability)  # the review queue reads it


def test_no_evidence_no_join(returns_night):
    # the same night, but the look tells no two insects apart (one vector for all, with noise): its returns are
    # left split rather than joined at random
    s = returns_night
    rng = np.random.default_rng(1)
    alike = np.tile(s["animal"][:1], (len(s["boxes"]), 1)) + rng.normal(0, 0.01, s["animal"].shape)
    linked = _link(s, animal=alike.astype(np.float32))
    assert np.isnan(linked.stitches[:, 2]).all()
    # and a camera with too few animals seen together to calibrate on joins nothing, however alike two tracks look
    first = s["frame_ids"] < 20
    few = {k: v[first] for k, v in s.items() if k in ("times_s", "frame_ids", "boxes", "scores", "appearance",
                                                        "animal", "truth")}
    strict = TrackConfig(stitch_min_pairs=10_000)
    assert np.isnan(_link(few, strict).stitches[:, 2]).all()
    assert np.isnan(_link(s, strict).stitches[:, 2]).all()


def test_the_field_night_is_not_stitched_into_fewer_insects(field_night):
    # issue 58's night: one hue, fixed-size boxes, no returns: a join there is always wrong
    linked = _link(field_night)
    made, wrong = _joins(field_night, linked)
    assert wrong <= max(1, made // 20)


def test_a_walker_broken_past_its_reach_is_continued_without_calibration():
    # one deer walking fast in a burst (no second animal: nothing to calibrate on) jumps past its gate once;
    # a sitter that leaves and a newcomer landing next to it in the next frame are not joined
    times, frames, boxes = [], [], []
    for f in range(10):
        cx = 0.1 + 0.06 * f + (0.12 if f >= 5 else 0.0)
        times.append(float(f))
        frames.append(f)
        boxes.append([cx - 0.05, 0.4, cx + 0.05, 0.5])
    walker = link_camera(np.array(times), np.array(frames), np.array(boxes), CONFIG)
    assert len(set(walker.tolist())) == 1
    times, frames, boxes = [], [], []
    for f in range(10):
        cx = 0.5 if f < 5 else 0.56  # a sitter, then a newcomer a little over a body length off
        times.append(20.0 * f)
        frames.append(f)
        boxes.append([cx - 0.025, 0.4, cx + 0.025, 0.45])
    sitter = link_camera(np.array(times), np.array(frames), np.array(boxes), TrackConfig(sit_reach=0.5))
    assert len(set(sitter.tolist())) == 2


def _fixed_box(val: float, extent: float, light: float = 1.0, seed: int = 0) -> np.ndarray:
    """A 64 x 64 fixed box on a white sheet with a plain insect (hue 15) of `val` covering `extent` of its side."""
    rng = np.random.default_rng(seed)
    hsv = np.zeros((64, 64, 3), np.float32)
    hsv[:] = (25, 18, 225 * light)
    yy, xx = np.mgrid[0:64, 0:64]
    inside = ((xx - 32) / (32 * extent)) ** 2 + ((yy - 32) / (24 * extent)) ** 2 <= 1
    hsv[inside] = (15, 120, val * light)
    hsv += rng.normal(0, 4, hsv.shape).astype(np.float32) * np.array([0.2, 1, 1], np.float32)
    return cv2.cvtColor(np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8), cv2.COLOR_HSV2RGB)


def test_the_animal_descriptor_reads_tone_and_extent_inside_a_fixed_box():
    def d(a, b):
        return 1.0 - float(a @ b)

    base = animal_descriptor(_fixed_box(120, 0.6))
    assert base.shape == (ANIMAL_DESCRIPTOR_LENGTH,) and np.isclose(np.linalg.norm(base), 1.0)
    again = animal_descriptor(_fixed_box(120, 0.6, light=1.06, seed=1))  # the same insect, next frame's light
    darker = animal_descriptor(_fixed_box(60, 0.6, seed=2))  # same hue, another tone
    smaller = animal_descriptor(_fixed_box(120, 0.3, seed=3))  # same look, a smaller insect in the same box
    assert d(base, darker) > 4 * d(base, again)
    assert d(base, smaller) > 4 * d(base, again)
    # the mask: the insect, not the sheet (and the model's mask, when given, is used as is)
    mask = animal_mask(_fixed_box(120, 0.6))
    assert 0.2 < mask.mean() < 0.4 and mask[32, 32] and not mask[2, 2]
    given = np.zeros((64, 64), bool)
    given[20:44, 20:44] = True
    assert not np.allclose(animal_descriptor(_fixed_box(120, 0.6), given), base)
    with pytest.raises(ValueError, match="mask"):
        animal_descriptor(_fixed_box(120, 0.6), given[:10])


def test_a_walkers_folded_head_boxes_do_not_shrink_its_size_for_stitching():
    # A walker (no appearances: only a walker's next step is stitched) with its head boxed apart in four frames
    # (folded: it rode along), then a jump the frame pass refuses. Its own boxes are of one size with the next
    # track's; with the heads in its mean size the two were refused as two sizes.
    frames, boxes = [], []
    for f in range(20):
        cx = 0.1 + 0.03 * f + (0.16 if f >= 10 else 0.0)
        frames.append(f), boxes.append([cx - 0.05, 0.45, cx + 0.05, 0.55])
        if f in (1, 3, 5, 7):
            frames.append(f), boxes.append([cx + 0.01, 0.48, cx + 0.04, 0.51])
    frames_a = np.array(frames)
    linked = link_camera_scored(frames_a * 1.0, frames_a, np.array(boxes), CONFIG)
    assert (~np.isnan(linked.folds[:, 0])).sum() == 4 and len(np.unique(linked.ids)) == 1
    assert np.isfinite(linked.stitches[:, 2]).sum() == 1
