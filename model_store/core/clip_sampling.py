"""The sampling plan of a clip: which frames go through the detector, how a long clip is cut into time ranges, and
where seeking saves decoding. No decoding here: `model_store.core.video.ClipReader` follows the plan.

Pure Python over a clip's container facts (`ClipInfo`, which `model_store.core.video.probe_clip` reads): the run's
options and a model's config validate a sampling without loading FFmpeg's libraries.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MAX_FRAMES = 1800  # sampled frames per clip: 30 minutes at one a second
# Before a clip's keyframe grid is known (KeyframeGrid), seek to the next sampled time only when it is at least this
# far ahead: camera clips put a keyframe every 0.5-2 s.
SEEK_MIN_GAP_S = 2.0


@dataclass(frozen=True)
class ClipInfo:
    """What the container says of a clip, without decoding a frame."""

    width: int
    height: int
    fps: float | None  # average frame rate (None: the container does not say)
    duration_s: float | None
    frame_count: int | None  # from the container header (None: not stored; estimate from fps x duration)
    codec: str
    created: dt.datetime | None  # the container's creation_time, naive (as the camera wrote it)


class Sampling(BaseModel):
    """Which frames of a clip go through the detector: one every `every_s` seconds (the default, 1 s), every
    `every_n`-th frame, or every frame; at most `max_frames` per clip."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["seconds", "frames", "all"] = Field("seconds", description="seconds: one frame every EVERY_S "
                                                      "seconds; frames: every EVERY_N-th frame; all: every frame")
    every_s: float = Field(1.0, gt=0.0, description="seconds between sampled frames (mode seconds)")
    every_n: int = Field(1, ge=1, description="frames between sampled frames (mode frames)")
    max_frames: int = Field(DEFAULT_MAX_FRAMES, ge=1, description="a clip that needs more sampled frames than this "
                                                                  "is a failed row (reason too_long)")

    @model_validator(mode="after")
    def _one_step(self) -> Sampling:
        if self.mode == "all" and (self.every_n != 1):
            raise ValueError("mode 'all' takes no every_n")
        return self

    @classmethod
    def parse(cls, text: str, max_frames: int = DEFAULT_MAX_FRAMES) -> Sampling:
        """'1s' / '0.5s' (seconds), '5f' / 'every:5' (every 5th frame), 'all' (every frame)."""
        t = text.strip().lower()
        if t in ("all", "every", "every-frame"):
            return cls(mode="all", max_frames=max_frames)
        if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*s", t):
            return cls(mode="seconds", every_s=float(m.group(1)), max_frames=max_frames)
        if m := re.fullmatch(r"(?:(\d+)\s*f|every:(\d+))", t):
            return cls(mode="frames", every_n=int(m.group(1) or m.group(2)), max_frames=max_frames)
        raise ValueError(f"video sampling {text!r}: expected '1s' (a frame every N seconds), '5f' (every 5th "
                         "frame) or 'all'")

    def expected_frames(self, duration_s: float | None, fps: float | None, frame_count: int | None) -> int | None:
        """How many frames this sampling takes from a clip of this length (None: unknown)."""
        if self.mode == "seconds":
            return math.floor(duration_s / self.every_s) + 1 if duration_s else None
        total = frame_count or (round(duration_s * fps) if duration_s and fps else None)
        if total is None:
            return None
        return math.ceil(total / (self.every_n if self.mode == "frames" else 1))


@dataclass(frozen=True)
class TimeRange:
    """A part of a clip, [start_s, end_s) in seconds from its first frame (end None: to its end)."""

    start_s: float = 0.0
    end_s: float | None = None


def clip_ranges(info: ClipInfo, sampling: Sampling, parts: int, min_frames: int) -> list[TimeRange]:
    """The clip cut into up to `parts` time ranges of at least `min_frames` sampled frames each, so that the ranges
    together sample exactly the frames the whole clip would.

    A clip sampled every N seconds is cut on the sampling's time grid; a clip sampled every frame or every Nth frame
    at frame times of the average rate (a range takes the frames whose time is in it, and every Nth by the frame's
    place in the clip, which a reader knows after its seek too: `ClipReader.places`; on a variable frame rate the
    cuts are merely uneven). A clip of unknown length or frame rate is not cut."""
    expected = sampling.expected_frames(info.duration_s, info.fps, info.frame_count)
    if not expected or parts < 2 or (sampling.mode != "seconds" and not info.fps):
        return [TimeRange()]
    parts = min(parts, expected // max(1, min_frames))
    if parts < 2:
        return [TimeRange()]
    step = {"seconds": sampling.every_s, "frames": sampling.every_n / info.fps,  # type: ignore[operator]
            "all": 1 / info.fps}[sampling.mode]  # type: ignore[operator]
    cuts = [round(expected * k / parts) * step for k in range(1, parts)]
    starts = [0.0, *cuts]
    return [TimeRange(s, e) for s, e in zip(starts, [*cuts, None], strict=True)]

class KeyframeGrid:
    """Where a clip's keyframes are, learnt as it is decoded, so that it seeks only where that saves decoding.

    A seek lands on the last keyframe at or before the target; it saves work when that keyframe comes after the frame
    just decoded. Camera clips put keyframes on a regular grid (every 0.5-2 s), so after two of them the grid says
    where the next ones are; until then a seek is tried only for a target SEEK_MIN_GAP_S ahead. A seek that lands
    behind what was decoded already (keyframes off the grid) turns seeking off for the rest of the clip."""

    def __init__(self, fps: float) -> None:
        self.frame_s = 1 / fps if fps else 0.04
        self.last: float | None = None
        self.interval: float | None = None
        self.off = False

    def saw(self, t: float) -> None:
        if self.last is not None and t - self.last > self.frame_s / 2:
            gap = t - self.last
            self.interval = gap if self.interval is None else min(self.interval, gap)
        self.last = t

    def landed_behind(self) -> None:
        self.off = True

    def worth_seeking(self, t: float, target: float) -> bool:
        if self.off:
            return False
        if self.interval is None or self.last is None:
            return target - t >= SEEK_MIN_GAP_S
        landing = self.last + math.floor((target - self.last) / self.interval + 1e-6) * self.interval
        return landing > t + 1.5 * self.frame_s  # at least one frame left undecoded


def describe(sampling: Sampling) -> str:
    return {"seconds": f"one frame every {sampling.every_s:g} s", "frames": f"every {sampling.every_n}th frame",
            "all": "every frame"}[sampling.mode]
