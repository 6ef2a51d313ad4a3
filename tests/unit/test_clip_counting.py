"""A clip's count of animals: doubles are one animal, still background is not one, animals that cross stay two."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from model_store.core.clip_counting import ClipCountConfig, ClipRows, best_per_frame, merge_duplicates, still_tracks
from model_store.core.clip_sampling import Sampling
from model_store.core.clips import ClipDetections, link_tracks
from model_store.core.filters.tracking import TrackConfig
from model_store.core.records import Detection, FiltersApplied, ImageDetections, ModelInfo

INFO = ModelInfo(name="m", version="1", sha256="0" * 64)
NO_FILTERS = FiltersApplied(names=[], hash="", configs=[])


def clip_of(frames: list[list[tuple[str, float, tuple[float, float, float, float]]]]) -> ClipDetections:
    """A clip whose frame k (one a second) holds the given (label, score, x, y, w, h) detections."""
    out = ClipDetections(info=None, sampling=Sampling())
    for k, dets in enumerate(frames):
        record = ImageDetections(width=640, height=480, model=INFO, filters=NO_FILTERS,
                                 detections=[Detection(label=lab, class_id=0, score=s, bbox=box, box_px=box)
                                             for lab, s, box in dets])
        out.frames.append((k * 10, float(k), record))
    return out


def walking(k: int, x0: float = 0.1, y: float = 0.3, step: float = 0.03) -> tuple[float, float, float, float]:
    return (x0 + step * k, y, 0.2, 0.2)


def count(clip: ClipDetections, **config) -> int:
    link_tracks(clip, TrackConfig(), ClipCountConfig(**config))
    return clip.animals


def test_a_part_boxed_beside_its_animal_is_one_animal_of_the_animals_label():
    # the whole animal, and (less sure, another label) its head, inside it in every frame: one animal
    frames = [[("animal", 0.8, walking(k)), ("person", 0.35, (0.12 + 0.03 * k, 0.32, 0.12, 0.12)),
               ("person", 0.3, (0.18 + 0.03 * k, 0.36, 0.1, 0.12))] for k in range(6)]
    clip = clip_of(frames)
    assert count(clip, duplicate_min_frames=10**6) == 3  # the rule off: the doubles are tracks of their own
    assert count(clip) == 1
    (track,) = clip.tracks
    assert track.label == "animal" and track.detections == 18 and track.best_frame == 0
    assert len({clip.track_of[i] for i in range(18)}) == 1


def test_same_label_doubles_are_kept_apart_when_asked():
    frames = [[("animal", 0.8, walking(k)), ("person", 0.35, (0.12 + 0.03 * k, 0.32, 0.12, 0.12))]
              for k in range(6)]
    assert count(clip_of(frames), duplicate_any_label=False) == 2
    assert count(clip_of(frames)) == 1


def test_two_animals_that_cross_stay_two():
    # one walks right, one left, on nearly the same line: the smaller is inside the larger in one frame only
    frames = [[("animal", 0.8, (0.05 + 0.1 * k, 0.3, 0.3, 0.3)), ("animal", 0.7, (0.75 - 0.1 * k, 0.32, 0.2, 0.2))]
              for k in range(8)]
    clip = clip_of(frames)
    assert count(clip) == 2


def test_a_double_seen_in_one_frame_only_is_not_merged_below_the_frames_asked():
    frames = [[("animal", 0.8, walking(k))] for k in range(6)]
    frames[2].append(("animal", 0.65, (0.23, 0.31, 0.1, 0.1)))  # confident: a track of one detection that counts
    assert count(clip_of(frames), duplicate_min_frames=2) == 2
    assert count(clip_of(frames), duplicate_min_frames=1) == 1


def test_still_background_is_not_counted_unless_the_detector_is_sure():
    stump = (0.8, 0.1, 0.1, 0.09)
    frames = [[("animal", 0.8, walking(k)), ("animal", 0.45, stump)] for k in range(8)]
    clip = clip_of(frames)
    assert count(clip, still_motion=0) == 2
    assert count(clip) == 1
    assert [t.confirmed for t in clip.tracks] == [True, False]  # still a track (its snips, its boxes): not counted
    assert count(clip, still_confirm_score=0.4) == 2
    # an unsure animal that walks counts: it moved
    frames = [[("animal", 0.45, walking(k, y=0.6))] for k in range(8)]
    assert count(clip_of(frames)) == 1


def test_best_per_frame_is_one_row_per_track_and_frame():
    ids, frames = np.array([0, 0, 1, 0, 0]), np.array([0, 0, 0, 10, 10])
    scores = np.array([0.3, 0.9, 0.5, 0.6, 0.2])
    assert best_per_frame(ids, frames, scores).tolist() == [1, 2, 3]


def test_rules_on_no_detections_and_bad_settings():
    empty = np.zeros(0)
    none = ClipRows(empty, np.zeros((0, 4)), empty, empty)
    assert merge_duplicates(empty, none, ClipCountConfig()).tolist() == []
    assert still_tracks(empty, none, ClipCountConfig()) == set()
    with pytest.raises(ValidationError, match="duplicate_inside"):
        ClipCountConfig(duplicate_inside=1.5)
    with pytest.raises(ValidationError, match="extra"):
        ClipCountConfig(still_speed=1)
