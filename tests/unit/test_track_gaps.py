"""Gap filling (model_store/core/filters/track_gaps.py): a walker's first box, lost to a flicker, given back."""

from __future__ import annotations

import numpy as np

from model_store.core.filters.tracking import TrackConfig, link_camera


def _box(cx: float, cy: float, w: float = 0.1, h: float = 0.08) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _walker(first_at: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A walker at half a box size a frame, seen in frame 0, missed in frames 1-2, seen in 3-10; its box of
    frame 0 at `first_at`."""
    frames = np.array([0, *range(3, 11)])
    boxes = np.array([_box(*first_at)] + [_box(0.2 + 0.05 * f, 0.5) for f in range(3, 11)])
    return frames.astype(np.float64), frames, boxes


def test_a_walkers_first_box_before_a_flicker_joins_the_walker():
    times, frames, boxes = _walker((0.2, 0.5))
    assert len(set(link_camera(times, frames, boxes, TrackConfig(fill_max_frames=0)).tolist())) == 2  # before
    assert link_camera(times, frames, boxes, TrackConfig()).tolist() == [0] * 9


def test_a_box_off_the_walkers_path_stays_its_own_track():
    times, frames, boxes = _walker((0.2, 0.62))  # 1.5 box sizes off where the walker's pace puts it
    ids = link_camera(times, frames, boxes, TrackConfig())
    assert ids[0] != ids[1] and len(set(ids[1:].tolist())) == 1
