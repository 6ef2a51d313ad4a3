"""Camera-trap-like video clips made here (PyAV writing H.264 or MPEG-4 Part 2), written once and reused.

`write_clip` encodes any RGB frames; `scene_clip` makes a clip of a textured trail-camera background (the stills
benchmark's `camera_trap_frame`) with sensor grain and `animals` dark bodies walking across it, at a camera's
settings (a keyframe every second, `veryfast`: CABAC and B-frames on, as cameras encode, unlike `ultrafast`).
The tests' tiny clips use the same writer (tests/fixtures/clips.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.images import camera_trap_frame


def write_clip(path: str | Path, frames: Iterable[np.ndarray], fps: float = 10.0, codec: str = "libx264",
               created: dt.datetime | None = None, gop: int | None = None, preset: str = "ultrafast",
               times_s: Iterable[float] | None = None) -> Path:
    """Encode RGB uint8 frames (H, W, 3; even sides) into `path`. `times_s`: each frame's time (a variable frame
    rate), else one every 1/fps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    times = iter(times_s) if times_s is not None else None
    with av.open(str(path), mode="w") as container:
        if created is not None:
            container.metadata["creation_time"] = created.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        stream = None
        for rgb in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
                if times is not None:
                    stream.codec_context.time_base = Fraction(1, 1000)
                if gop:
                    stream.codec_context.gop_size = gop
                if codec == "libx264":
                    stream.options = {"preset": preset}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(next(times) * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode() if stream is not None else ():
            container.mux(packet)
    return path


def scene_frames(size: tuple[int, int], n: int, fps: float, animals: int, seed: int = 0) -> Iterator[np.ndarray]:
    """`n` frames of one background with grain and `animals` bodies crossing it at walking speed."""
    w, h = size
    bg = camera_trap_frame(4 * seed, size, seed)  # a day frame (index % 4 != 3)
    rng = np.random.default_rng(seed)
    grain = [rng.normal(0, 4, (h, w, 3)).astype(np.int16) for _ in range(4)]
    starts = [(rng.uniform(0, w), rng.uniform(0.45, 0.8) * h, rng.choice([-1, 1]) * rng.uniform(0.05, 0.12) * w)
              for _ in range(animals)]
    for i in range(n):
        img = bg.astype(np.int16) + grain[i % 4]
        for x0, y, speed in starts:
            x = (x0 + speed * i / fps) % w
            cv2.ellipse(img, (int(x), int(y)), (w // 14, h // 16), 0, 0, 360, (70, 55, 40), -1)
        yield np.clip(img, 0, 255).astype(np.uint8)


def scene_clip(path: str | Path, size: tuple[int, int], seconds: float, fps: float = 30.0, animals: int = 2,
               seed: int = 0, **kw) -> Path:
    """A trail-camera clip (see the module docstring), written unless `path` exists already."""
    path = Path(path)
    if path.exists():
        return path
    n = round(seconds * fps)
    tmp = path.with_name(f".{path.name}")
    write_clip(tmp, scene_frames(size, n, fps, animals, seed), fps=fps, gop=round(fps),
               **{"preset": "veryfast", **kw})
    tmp.rename(path)
    return path
