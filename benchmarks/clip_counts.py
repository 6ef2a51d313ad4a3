"""Animals per clip against the truth: clips of 0-3 animals walking across a scene, through the demo detector.

`python -m benchmarks.clip_counts [--clips 16] [--first 0] [--ref demo-detector:2]`

Clip k is drawn from seed k: `--first 16 --clips 48` is a set the counting rules (`model_store.core.clip_counting`)
were not looked at on.

Each clip is 8 s at 10 fps (640x480, H.264) of one of the demo's own scene backgrounds with `k = clip % 4` animals
drawn by the demo's scene renderer (model_store/demo/scenes.py, the shapes the demo detector was trained on), each
walking at its own speed. The clip goes through the core's clip loop (one frame a second, the tracker on its
frames) and its `animals` (confirmed tracks labelled animal) and `max_per_frame` are set against k. The demo
detector is a 0.5M-parameter model (v2: held-out animal mAP50 0.82): the counts say what the tracker makes of an
imperfect detector's boxes, not what a production detector would reach.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.clip_files import write_clip
from benchmarks.common import print_table
from model_store import ModelStore
from model_store.core.clip_settings import ClipSettings
from model_store.core.clips import detect_clip
from model_store.core.video import ClipReader
from model_store.demo import scenes
from model_store.demo.publish import publish_demo

SIZE, FPS, SECONDS = (640, 480), 10, 8


def clip_frames(seed: int, animals: int):
    """The frames of one clip, and how many animals it holds. Uses the renderer's own background and animal
    drawing (private helpers of model_store/demo/scenes.py: the benchmark needs the shapes the model knows)."""
    rng = np.random.default_rng(seed)
    w, h = SIZE
    bg = np.clip(scenes._background(rng, w, h, night=False), 0, 255).astype(np.uint8)
    walkers = []
    for i in range(animals):
        size = rng.uniform(0.18, 0.3) * h
        y = (0.25 + 0.5 * i / max(1, animals)) * h  # in lanes of their own: the truth is then unambiguous
        x = rng.uniform(0, w - size * 1.4)
        speed = rng.choice([-1, 1]) * rng.uniform(0.02, 0.06) * w  # px per second
        colour = scenes._colour(rng, False, float(bg[int(y), int(x)].mean()))
        walkers.append((x, y, size * 1.4, size, speed, colour, int(rng.integers(2**31))))
    for f in range(FPS * SECONDS):
        img = bg.copy()
        for x, y, bw, bh, speed, colour, shape in walkers:
            xt = float(np.clip(x + speed * f / FPS, 0, w - bw - 1))
            scenes._animal(img, xt, y, bw, bh, colour, np.random.default_rng(shape))
        yield img


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--first", type=int, default=0, help="the first clip's seed")
    p.add_argument("--ref", default="demo-detector:2")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(str(Path(tmp) / "store"), cache_dir=str(Path(tmp) / "cache"))
        publish_demo(store)
        detector = store.load_detector(args.ref, threads=1)
        for seed in range(args.first, args.first + args.clips):
            truth = seed % 4
            path = write_clip(Path(tmp) / f"c{seed}.mp4", clip_frames(seed, truth), fps=FPS, gop=FPS)
            with ClipReader(str(path)) as reader:
                clip = detect_clip(detector, reader, ClipSettings())
            animals = sum(t.confirmed and t.label == "animal" for t in clip.tracks)
            per_frame = max((sum(d.label == "animal" for d in r.detections) for _, _, r in clip.frames), default=0)
            rows.append({"clip": seed, "truth": truth, "animals": animals, "max_per_frame": per_frame,
                         "tracks": len(clip.tracks), "frames": len(clip.frames)})
    print_table(rows, list(rows[0]))
    truth = sum(r["truth"] for r in rows)
    for key in ("animals", "max_per_frame"):
        total = sum(r[key] for r in rows)
        exact = sum(r[key] == r["truth"] for r in rows)
        off = sum(abs(r[key] - r["truth"]) for r in rows)
        print(f"{key}: {total} counted against {truth} true ({100 * (total - truth) / truth:+.0f} %), exact in "
              f"{exact}/{len(rows)} clips, mean absolute error {off / len(rows):.2f} a clip")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
