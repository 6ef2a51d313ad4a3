"""A herd's pace as a track seen once's velocity (model_store/core/filters/track_herd.py, issue 69)."""

from __future__ import annotations

import numpy as np

from model_store.core.filters.track_costs import TrackState
from model_store.core.filters.track_herd import herd_pace
from model_store.core.filters.tracking import TrackConfig, link_camera

CONFIG = TrackConfig()
PACE = -0.05  # a frame, to the left; boxes 0.1 wide: half a box size a frame


def _box(cx: float, cy: float) -> list[float]:
    return [cx - 0.05, cy - 0.05, cx + 0.05, cy + 0.05]


def _burst(walkers: dict[int, tuple[float, float, float, list[int]]]) -> tuple[np.ndarray, ...]:
    """(times, frames, boxes, animal) of a burst of eight frames a second apart: each animal at (x0, y, pace a frame)
    in the frames listed."""
    times, frames, boxes, animal = [], [], [], []
    for a, (x0, y, pace, seen) in walkers.items():
        for f in seen:
            times.append(float(f))
            frames.append(f)
            boxes.append(_box(x0 + pace * f, y))
            animal.append(a)
    return np.array(times), np.array(frames), np.array(boxes), np.array(animal)


def _tracks_of(ids: np.ndarray, animal: np.ndarray, a: int) -> set[int]:
    return set(ids[animal == a].tolist())


# Three walkers of the herd far apart, and two side by side at the burst's start: B (animal 1) a little ahead of A
# (animal 0) on A's way, missed in frame 1, so A's frame-1 box lies nearer B's first box than A's own.
SIDE_BY_SIDE = {0: (0.644, 0.72, PACE, list(range(8))), 1: (0.605, 0.74, PACE, [0, *range(2, 8)]),
                2: (0.9, 0.2, PACE, list(range(8))), 3: (0.8, 0.4, PACE, list(range(8))),
                4: (0.7, 0.92, PACE, list(range(8)))}


def test_walkers_side_by_side_at_a_bursts_start_keep_their_own_first_boxes():
    times, frames, boxes, animal = _burst(SIDE_BY_SIDE)
    ids = link_camera(times, frames, boxes, CONFIG)
    for a in range(5):
        assert len(_tracks_of(ids, animal, a)) == 1, a
    assert len(np.unique(ids)) == 5
    # Without the herd's pace (before): A's frame-1 box goes to B's first box, and A's first box is a track alone.
    before = link_camera(times, frames, boxes, CONFIG.model_copy(update={"herd_min_walkers": 0}))
    assert len(_tracks_of(before, animal, 0)) > 1


def test_walkers_going_their_own_ways_are_no_herd():
    # Two walkers each way: no two thirds go one way, so the burst is linked once, as with the rule off.
    walkers = {0: (0.644, 0.72, PACE, list(range(8))), 1: (0.605, 0.74, PACE, [0, *range(2, 8)]),
               2: (0.1, 0.2, -PACE, list(range(8))), 3: (0.2, 0.4, -PACE, list(range(8)))}
    times, frames, boxes, _ = _burst(walkers)
    off = CONFIG.model_copy(update={"herd_min_walkers": 0})
    assert link_camera(times, frames, boxes, CONFIG).tolist() == link_camera(times, frames, boxes, off).tolist()


def test_a_grazer_in_a_herd_still_links_where_it_stands():
    # A grazer seen once, then again on its spot: the herd's pace is a second guess beside its box, not instead.
    walkers = {**SIDE_BY_SIDE, 5: (0.3, 0.6, 0.0, [0, *range(2, 8)])}
    times, frames, boxes, animal = _burst(walkers)
    ids = link_camera(times, frames, boxes, CONFIG)
    assert len(_tracks_of(ids, animal, 5)) == 1
    assert len(np.unique(ids)) == 6


def _walkers_at(paces: list[float]):
    """A TrackState of one segment whose tracks of five boxes walk at these x paces (box 0.01, a second a frame)."""
    state = TrackState(len(paces), 1)
    state.count = len(paces)
    state.hits[:], state.interval[:], state.side[:] = 5, 1.0, 0.01
    state.velocity[:, 0] = paces
    return state


def test_a_herd_and_its_mirror_image_are_judged_alike_on_the_median_pace():
    for paces in ([1.0, 1.4, 2.6, 3.0], [1.0, 1.0, 3.0, 3.0]):
        right = herd_pace(CONFIG, _walkers_at(paces), 1)[0]
        left = herd_pace(CONFIG, _walkers_at([-p for p in paces]), 1)[0]
        assert right.tolist() == [2.0, 0.0] and left.tolist() == [-2.0, 0.0]  # the mean of the middle two
