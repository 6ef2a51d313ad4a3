"""The benchmark's detector mistakes (tests/fixtures/detector_mistakes.py) do what they say, on a tiny scene."""

from __future__ import annotations

import numpy as np

from benchmarks.tracking_mistakes import TARGET, mistaken
from model_store.core.filters.appearance import animal_descriptor, appearance_descriptor
from tests.fixtures.detector_mistakes import Mistakes, with_mistakes

BLANK = np.zeros((16, 16, 3), dtype=np.uint8)
DIMS = (len(appearance_descriptor(BLANK)), len(animal_descriptor(BLANK)))


def _scene(frames: int = 40) -> dict:
    """Two sitting animals, one box each per frame, and their truth."""
    boxes, ids, truth = [], [], []
    for f in range(frames):
        for animal, (x, y) in enumerate(((0.2, 0.2), (0.26, 0.2))):  # touching
            boxes.append([x, y, x + 0.06, y + 0.1])
            ids.append(f)
            truth.append(animal)
    n = len(boxes)
    rng = np.random.default_rng(0)
    return {"name": "tiny", "kind": "tiny", "n_animals": 2, "times_s": np.array(ids, dtype=float) * 20,
            "frame_ids": np.array(ids), "boxes": np.array(boxes), "scores": np.full(n, 0.8),
            "truth": np.array(truth), "appearance": rng.random((n, DIMS[0])).astype(np.float32),
            "animal": rng.random((n, DIMS[1])).astype(np.float32)}


def _inside(small: np.ndarray, big: np.ndarray) -> bool:
    return bool((small[:2] >= big[:2] - 1e-9).all() and (small[2:] <= big[2:] + 1e-9).all())


def test_no_mistakes_leave_the_scene_as_it_was_and_each_mistake_is_deterministic():
    scene = _scene()
    same = with_mistakes(scene, Mistakes(), seed=1)
    assert all(np.array_equal(same[k], scene[k]) for k in ("boxes", "truth", "frame_ids"))
    m = Mistakes(part_share=0.3, flicker_rate=0.1, static_boxes=1, merge_share=0.2, jitter=0.02)
    a, b = with_mistakes(scene, m, seed=7), with_mistakes(scene, m, seed=7)
    other = with_mistakes(scene, m, seed=8)
    assert np.array_equal(a["boxes"], b["boxes"]) and not np.array_equal(a["boxes"], other["boxes"])
    assert a["n_animals"] == 2 and len(scene["boxes"]) == 80  # the truth and the clean scene are untouched


def test_part_boxes_lie_inside_their_animals_box_at_a_place_of_its_own():
    scene = _scene()
    out = with_mistakes(scene, Mistakes(part_share=0.5, part_nested=1.0), seed=2)
    extra = np.arange(len(scene["boxes"]), len(out["boxes"]))
    assert 20 <= len(extra) <= 60 and (out["truth"][extra] >= 0).all()
    for r in extra:
        own = np.flatnonzero((out["frame_ids"] == out["frame_ids"][r]) & (out["truth"] == out["truth"][r]))[0]
        w = out["boxes"][own, 2] - out["boxes"][own, 0]
        assert _inside(out["boxes"][r], out["boxes"][own] + np.array([-1, -1, 1, 1]) * 0.2 * w)


def test_flicker_drops_runs_of_frames_and_static_boxes_never_move():
    scene = _scene()
    out = with_mistakes(scene, Mistakes(flicker_rate=0.1, flicker_frames=3), seed=3)
    assert len(out["boxes"]) < len(scene["boxes"]) and (out["truth"] >= 0).all()
    out = with_mistakes(scene, Mistakes(static_boxes=1, static_presence=1.0), seed=4)
    static = out["boxes"][out["truth"] == -1]
    assert len(static) == 40 and np.ptp(static, axis=0).max() < 0.01
    assert out["appearance"].shape == (120, DIMS[0]) and out["animal"].shape == (120, DIMS[1])


def test_merged_boxes_cover_both_touching_animals():
    scene = _scene()
    out = with_mistakes(scene, Mistakes(merge_share=1.0), seed=5)
    assert len(out["boxes"]) == 40  # every frame's two touching animals became one box over both
    assert np.allclose(out["boxes"][:, [0, 2]], [0.2, 0.32])


def test_a_scenes_mistakes_follow_its_index_in_the_whole_set_and_each_draw_is_its_own():
    """benchmarks.tracking_mistakes.mistaken: a scene picked out with --kinds gets the mistakes it gets in the
    whole set (its index, not its place in the pick), and another draw lays other mistakes over it."""
    scenes = list(enumerate([_scene(), {**_scene(), "kind": "other"}]))
    whole = mistaken(scenes, TARGET, seed=3)
    picked = mistaken([scenes[1]], TARGET, seed=3)
    assert np.array_equal(picked[0]["boxes"], whole[1]["boxes"])
    assert not np.array_equal(whole[0]["boxes"], whole[1]["boxes"])  # two scenes, two seeds
    again = mistaken([scenes[1]], TARGET, seed=3, draw=1)
    assert not np.array_equal(again[0]["boxes"], whole[1]["boxes"])


def test_split_boxes_lie_beside_their_animals_box_of_about_its_size_in_some_frames():
    scene = _scene(200)
    out = with_mistakes(scene, Mistakes(split_share=1.0, split_frames=0.4, split_gap=0.1, split_overlap=0.1,
                                        split_ratio=0.7), seed=3)
    n = len(scene["boxes"])
    extra, truth = out["boxes"][n:], out["truth"][n:]
    assert np.array_equal(out["boxes"][:n], scene["boxes"]) and out["n_animals"] == 2
    for animal in (0, 1):
        mine = extra[truth == animal]
        assert 0.15 * 200 <= len(mine) <= 0.65 * 200  # in some of its frames only
        own = scene["boxes"][scene["truth"] == animal][0]
        w, h = own[2] - own[0], own[3] - own[1]
        sides = np.stack([mine[:, 2] - mine[:, 0], mine[:, 3] - mine[:, 1]], axis=1) / [w, h]
        assert (sides >= 0.7 - 1e-9).all() and (sides <= 1.0 + 1e-9).all()  # about its size
        assert not any(_inside(b, own) for b in mine)  # beside it, never inside it
        centre = (mine[:, :2] + mine[:, 2:]) / 2 - (own[:2] + own[2:]) / 2
        along = np.abs(centre / [w, h]).max(axis=1)
        assert (along >= 0.7 - 0.1 - 0.2).all() and (along <= 1.0 + 0.1 + 0.2).all()  # one side, a small gap
        assert len({tuple(np.sign(np.round(c / [w, h]))) for c in centre}) == 1  # the same side every frame
