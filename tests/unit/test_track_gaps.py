"""Gap filling (model_store/core/filters/track_gaps.py): a walker's first box, lost to a flicker, given back; a walker
lost every few frames joined from its chain of lone boxes; an animal's box and its second box in a sitter's hole."""

from __future__ import annotations

import numpy as np

from model_store.core.filters.track_costs import CameraDetections
from model_store.core.filters.track_gaps import fill_gaps
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


def _lost_walker(sizes: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sitter seen in frames 0-10 and a walker at two thirds of a box size a frame, seen only in frames 0, 3, 6
    and 8 (each time two box sizes on: past what the frame pass links after a miss); the walker's box in those
    four frames scaled in area by `sizes`."""
    sitter = [(f, _box(0.8, 0.2)) for f in range(11)]
    walker = [(f, _box(0.1 + 0.06 * f, 0.5, 0.1 * s ** 0.5, 0.08 * s ** 0.5))
              for f, s in zip((0, 3, 6, 8), sizes, strict=True)]
    rows = sorted(sitter + walker, key=lambda r: r[0])
    frames = np.array([f for f, _ in rows])
    return frames.astype(np.float64), frames, np.array([b for _, b in rows])


def _walker_ids(times: np.ndarray, frames: np.ndarray, boxes: np.ndarray, config: TrackConfig,
                appearance: np.ndarray | None = None) -> set[int]:
    ids = link_camera(times, frames, boxes, config, appearance=appearance)
    return set(ids[boxes[:, 1] > 0.4].tolist())


def test_a_walker_lost_every_few_frames_is_one_track_not_a_chain_of_lone_boxes():
    times, frames, boxes = _lost_walker()
    assert len(_walker_ids(times, frames, boxes, TrackConfig(fill_max_frames=0))) == 4  # before: four "animals"
    assert len(_walker_ids(times, frames, boxes, TrackConfig())) == 1


def test_lone_boxes_on_a_line_of_other_sizes_or_looks_stay_apart():
    times, frames, boxes = _lost_walker(sizes=(1.0, 0.5, 1.0, 0.5))  # each half or twice the next one's area
    assert len(_walker_ids(times, frames, boxes, TrackConfig())) == 4
    times, frames, boxes = _lost_walker()
    looks = np.zeros((len(boxes), 4))
    looks[:, 0] = 1.0  # the sitter and the walker's first and third boxes alike, its second and fourth another
    walker = np.flatnonzero(boxes[:, 1] > 0.4)
    looks[walker[[1, 3]]] = [0.0, 1.0, 0.0, 0.0]
    assert len(_walker_ids(times, frames, boxes, TrackConfig(), appearance=looks)) == 4


def _sitter_with_a_hole(extra: list[tuple[int, float, float]]) -> tuple[np.ndarray, ...]:
    """fill_gaps' inputs: a sitter at (0.5, 0.5) seen in frames 0-4 and 7-10 (track 0), and one short track per
    `extra` (frame, x, y) box in its hole, tracks 1, 2, ..."""
    frames = [*range(5), *range(7, 11)]
    rows = [(f, 0.5, 0.5, 0) for f in frames] + [(f, x, y, i + 1) for i, (f, x, y) in enumerate(extra)]
    boxes = np.array([_box(x, y) for _, x, y, _ in rows])
    dets = CameraDetections(boxes, np.zeros(len(rows), dtype=np.int64), None, None)
    step = np.array([f for f, *_ in rows])
    dets.time, dets.segment = step.astype(np.float64), np.zeros(len(rows), dtype=np.int64)
    return np.array([t for *_, t in rows]), step, dets


def test_an_animal_and_its_second_box_in_a_sitters_hole_give_the_nearer_back_and_leave_the_other_to_fold():
    # Frame 5: the sitter's own box, and a duplicate beside it (two short tracks for one gap, in the same frame).
    track_of, step, dets = _sitter_with_a_hole([(5, 0.51, 0.5), (5, 0.525, 0.5)])
    joined, rows, sure = fill_gaps(TrackConfig(), track_of, step, dets)
    assert joined[-2] == 0 and joined[-1] == 2 and rows.tolist() == [len(track_of) - 2]
    assert 0 < sure[0] <= 1
    # Two short tracks in different frames of the hole: which is the sitter's is not said; nothing is joined.
    track_of, step, dets = _sitter_with_a_hole([(5, 0.51, 0.5), (6, 0.52, 0.5)])
    joined, rows, _ = fill_gaps(TrackConfig(), track_of, step, dets)
    assert joined.tolist() == track_of.tolist() and not len(rows)


def test_boxes_of_unknown_time_beside_a_walker_are_linked_without_a_numpy_warning():
    """A picture without a capture time is a track of its own; gap filling left its track's ends unread but
    computed them, and numpy printed "invalid value encountered in subtract" to the user's console."""
    import warnings

    times, frames, boxes = _walker((0.2, 0.5))
    times = np.concatenate([times, [np.nan, np.nan]])
    frames = np.concatenate([frames, [200, 201]])
    boxes = np.concatenate([boxes, [_box(0.5, 0.5), _box(0.5, 0.5)]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids = link_camera(times, frames, boxes, TrackConfig())
    assert ids[:9].tolist() == [0] * 9 and len({*ids[9:].tolist()} - {0}) == 2
