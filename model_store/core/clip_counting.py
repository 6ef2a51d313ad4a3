"""A clip's animals from its tracks: doubles merged into the animal they box, still background not counted.

The tracker (`model_store.core.filters.tracking`) links a clip's detections frame to frame as it links a camera's
stills; two things it cannot know from one link at a time are what makes a clip's count wrong:

- **Doubles.** A detector often boxes an animal twice in one frame: the whole animal and a part of it (its head,
  its hind quarters), or the same animal under two labels. Each box is then linked to its own track, and the clip
  counts two animals. Two tracks seen together in at least `duplicate_min_frames` frames, with one box lying
  mostly inside the other (`duplicate_inside` of the smaller box's area) in *every* frame where both are seen, are
  one animal: the weaker track is merged into the stronger. Two animals that only cross (one in front of the other
  for a frame or two) are apart in their other shared frames, so they stay two.
- **Still background.** A stump or a rock that the detector takes for an animal is boxed at the same place in
  every frame of the clip, and the tracker confirms it like an animal that stays. A clip is recorded because
  something moved; a track that never moves (its centre within `still_motion` box sizes of its mean over at least
  `still_min_frames` detections) counts only when the detector is sure of it (`still_confirm_score`): the clip's
  form of MegaDetector's repeat-detection elimination (`model_store.core.filters.repeat` for stills).

Pure numpy over one clip's kept detections; `model_store.core.clips.link_tracks` applies it after the tracker.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class ClipRows(NamedTuple):
    """A clip's kept detections as its count reads them, made once by `link_tracks` (N each): the frame number, the
    box (x1, y1, x2, y2), the score and the label."""

    frames: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


class ClipCountConfig(BaseModel):
    """How a clip's tracks become its count of animals (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    duplicate_inside: float = Field(0.8, gt=0.0, le=1.0, description="two tracks are one animal when, in every "
                                                                    "frame both are seen, this share of the smaller "
                                                                    "box's area lies inside the larger box")
    duplicate_min_frames: int = Field(2, ge=1, description="... and they are seen together in at least this many "
                                                           "frames")
    duplicate_any_label: bool = Field(True, description="doubles of different labels are merged too (an animal "
                                                        "boxed as 'animal' and, on its part, as 'person')")
    still_motion: float = Field(0.05, ge=0.0, description="a track whose box centre stays within this many box "
                                                          "sizes (the mean side) of its mean is still (0: off)")
    still_min_frames: int = Field(3, ge=2, description="a track is judged still only over at least this many "
                                                       "detections")
    still_confirm_score: float = Field(0.6, ge=0.0, le=1.0, description="a still track counts as an animal only "
                                                                        "when its best detection scores at least "
                                                                        "this")


def merge_duplicates(track_ids: np.ndarray, rows: ClipRows, config: ClipCountConfig) -> np.ndarray:
    """The track of each detection after doubles are merged (N,): a double's detections take the id of the track
    it doubles (the one with more detections, then the higher best score)."""
    ids = np.asarray(track_ids, dtype=np.int64).copy()
    if not len(ids):
        return ids
    while True:
        pair = _a_double(ids, rows, config)
        if pair is None:
            return ids
        weak, strong = pair
        ids[ids == weak] = strong


def _a_double(ids: np.ndarray, rows: ClipRows, config: ClipCountConfig) -> tuple[int, int] | None:
    """One (weaker, stronger) pair of tracks that are one animal, or None. Only boxes of one frame are compared,
    so the cost is the frames' detections squared, not the clip's."""
    frames, boxes, scores, labels = rows
    best: dict[tuple[int, int], dict[int, float]] = {}  # (a, b) -> frame -> the most of one inside the other
    for f in np.unique(frames):
        here = np.flatnonzero(frames == f)
        if len(here) < 2:
            continue
        inside = _inside(boxes[here])
        for i in range(len(here)):
            for j in range(i + 1, len(here)):
                a, b = sorted((int(ids[here[i]]), int(ids[here[j]])))
                if a != b:
                    seen = best.setdefault((a, b), {})
                    seen[int(f)] = max(seen.get(int(f), 0.0), float(inside[i, j]))
    strength = {int(t): (int((ids == t).sum()), float(scores[ids == t].max()), -int(t)) for t in np.unique(ids)}
    for (a, b), per_frame in sorted(best.items()):
        if len(per_frame) < config.duplicate_min_frames or min(per_frame.values()) < config.duplicate_inside:
            continue
        if not config.duplicate_any_label and _label(labels, ids == a) != _label(labels, ids == b):
            continue
        weak, strong = sorted((a, b), key=lambda t: strength[t])
        return weak, strong
    return None


def best_per_frame(track_ids: np.ndarray, frames: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The rows of the best-scoring detection of each (track, frame), in row order: what a track's frame count and
    label vote read, so a merged double adds no frames and no votes."""
    order = np.lexsort((-np.asarray(scores, dtype=np.float64), frames, track_ids))
    key = np.stack([np.asarray(track_ids)[order], np.asarray(frames)[order]], axis=1)
    first = np.ones(len(order), dtype=bool)
    first[1:] = (key[1:] != key[:-1]).any(axis=1)
    return np.sort(order[first])


def _label(labels: np.ndarray, rows: np.ndarray) -> str:
    values, counts = np.unique(labels[rows].astype(str), return_counts=True)
    return str(values[counts.argmax()])


def _inside(boxes: np.ndarray) -> np.ndarray:
    """(N, N): the share of the smaller box's area that lies inside the other box."""
    b = np.asarray(boxes, dtype=np.float64)
    ix = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    smaller = np.minimum(area[:, None], area[None, :])
    return np.divide(ix * iy, smaller, out=np.zeros_like(smaller), where=smaller > 0)


def still_tracks(track_ids: np.ndarray, rows: ClipRows, config: ClipCountConfig) -> set[int]:
    """The tracks that are still background: they never move and the detector is not sure of them."""
    if config.still_motion <= 0:
        return set()
    ids, scores = np.asarray(track_ids, dtype=np.int64), rows.scores
    b = np.asarray(rows.boxes, dtype=np.float64)
    centres = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)
    sides = ((b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1])) / 2
    out = set()
    for t in np.unique(ids):
        mine = ids == t
        if mine.sum() < config.still_min_frames or scores[mine].max() >= config.still_confirm_score:
            continue
        drift = np.linalg.norm(centres[mine] - centres[mine].mean(axis=0), axis=1).max()
        if drift <= config.still_motion * max(float(sides[mine].mean()), 1e-9):
            out.add(int(t))
    return out
