"""What showing one frame of a clip costs the console (batch/views/picture_files.py `clip_frame`): a 1080p, 20 s,
30 fps H.264 clip with a keyframe every 60 frames (2 s), frames at a keyframe and just before one, 3 runs each.

    flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.clip_frame_serving
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from batch.views.picture_files import clip_frame
from benchmarks.clip_files import write_clip


def _frames(base: np.ndarray, n: int) -> Iterator[np.ndarray]:
    for i in range(n):
        frame = base.copy()
        frame[500:580, (i * 7) % 1800:(i * 7) % 1800 + 100] = 255  # a bar that moves: every frame differs
        yield frame


def main() -> None:
    base = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    path = write_clip(Path(tempfile.mkdtemp()) / "c.mp4", _frames(base, 600), fps=30, gop=60)
    print(f"1080p 20 s 30 fps, a keyframe every 60 frames: {path.stat().st_size // 1024} KiB")
    for n in (0, 59, 300, 599):
        times, jpg = [], b""
        for _ in range(3):
            t = time.perf_counter()
            jpg = clip_frame(str(path), n)
            times.append(time.perf_counter() - t)
        print(f"frame {n}: median {1000 * statistics.median(times):.0f} ms, {len(jpg) // 1024} KiB JPEG")


if __name__ == "__main__":
    main()
