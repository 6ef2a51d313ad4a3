"""Side folds (issue 84): one animal boxed as two boxes of about one size side by side, the second now and then,
folded into one track; two animals side by side and a mother with her young kept two. Small constructed scenes:
the tracker alone, no Ray, no tables."""

from __future__ import annotations

import numpy as np

from model_store.core.filters.tracking import TrackConfig
from tests.unit.test_track_folds import CONFIG, Scene, _box

OFF = CONFIG.model_copy(update={"side_density": 0.0})  # no side folds


def _walker_split(rng: np.random.Generator, shows: float, look_of_second: int = 0) -> Scene:
    """A beetle walking right for 20 frames; in about `shows` of its frames its head is boxed apart beside it (a
    box of about its size, a little gap, never inside it)."""
    scene = Scene()
    for f in range(20):
        cx = 0.1 + 0.02 * f
        scene.add(f, _box(cx, 0.5, 0.06, 0.08), 0, score=0.85, look=0)
        if rng.random() < shows:
            scene.add(f, _box(cx + 0.065 + rng.normal(0, 0.002), 0.5, 0.055, 0.075), 0, score=0.7,
                      look=look_of_second)
    return scene


def test_a_walkers_second_box_beside_it_now_and_then_is_folded_with_its_rows_kept():
    scene = _walker_split(np.random.default_rng(4), 0.4)
    second = np.array(scene.boxes)[:, 0] > np.array([b[0] for b in scene.boxes])[0] + 0.02 * np.array(scene.frames)
    linked, counted = scene.link(seconds_per_frame=20.0)
    assert counted.sum() == 1 and len(np.unique(linked.ids)) == 1
    folded = ~np.isnan(linked.folds[:, 0])
    assert folded.any() and not (folded & ~second).any()  # only second boxes folded, every row kept
    share, spread = linked.folds[folded, 1], linked.folds[folded, 2]
    assert (share == 1.0).all() and (spread <= CONFIG.fold_spread).all()  # always beside it, at a kept offset
    # Without side folds the second boxes count as one animal or more of their own.
    _, before = scene.link(OFF)
    assert before.sum() >= 2


def test_a_sitters_second_box_is_a_weak_fold_for_the_review_queue():
    rng = np.random.default_rng(5)
    scene = Scene()
    for f in range(40):  # a moth that shuffles on the sheet (it is not flagged as never moving)
        cx, cy = 0.4 + rng.normal(0, 0.003), 0.4 + rng.normal(0, 0.004)
        scene.add(f, _box(cx, cy, 0.05, 0.08), 0, look=1)
        if rng.random() < 0.35:  # its reflection, beside it, about its size
            scene.add(f, _box(cx + 0.055, cy, 0.045, 0.075), 0, score=0.65, look=1)
    linked, counted = scene.link()
    assert counted.sum() == 1
    folded = ~np.isnan(linked.folds[:, 0])
    assert folded.any() and (linked.link_confidence[folded] <= 0.5).all()


def test_a_box_beside_that_looks_like_another_animal_is_not_folded():
    scene = _walker_split(np.random.default_rng(4), 0.4, look_of_second=2)
    linked, _ = scene.link()
    assert np.isnan(linked.folds[:, 0]).all()


def test_two_alike_animals_walking_side_by_side_at_one_pace_stay_two():
    rng = np.random.default_rng(6)
    scene = Scene()
    for f in range(15):  # both seen in nearly every frame, one a little ahead, a small gap between their boxes
        cx = 0.1 + 0.04 * f
        if f != 6:
            scene.add(f, _box(cx + rng.normal(0, 0.002), 0.5, 0.12, 0.15), 0, score=0.9, look=3)
        if f != 11:
            scene.add(f, _box(cx + 0.13 + rng.normal(0, 0.002), 0.5, 0.11, 0.14), 1, score=0.9, look=3)
    linked, counted = scene.link(seconds_per_frame=1.0)
    assert counted.sum() == 2 and np.isnan(linked.folds[:, 0]).all()
    truth = np.array(scene.truth)
    assert not set(linked.ids[truth == 1]) & set(linked.ids[truth == 0])


def test_a_mother_with_her_young_stays_two():
    rng = np.random.default_rng(7)
    scene = Scene()
    for f in range(15):
        cx = 0.2 + 0.03 * f
        scene.add(f, _box(cx + rng.normal(0, 0.002), 0.5, 0.16, 0.2), 0, score=0.9, look=3)
        if f not in (4, 9):  # the young, smaller, close beside her, moving with her
            scene.add(f, _box(cx + 0.14 + rng.normal(0, 0.002), 0.53, 0.1, 0.12), 1, score=0.85, look=3)
    linked, counted = scene.link(seconds_per_frame=1.0)
    assert counted.sum() == 2 and np.isnan(linked.folds[:, 0]).all()


def test_side_density_zero_turns_side_folds_off():
    scene = _walker_split(np.random.default_rng(4), 0.4)
    linked, _ = scene.link(TrackConfig(side_density=0.0))
    assert len(np.unique(linked.ids)) >= 2
