"""A clip frame's RGB conversion: speed, and how far the model's input is from the reference, with the detections.

`flock /tmp/trapline-heavy.lock python -m benchmarks.clip_conversion [--dir DIR] [--clips 16] [--store S --ref M]`

The reference is what Ultralytics `predict` does with a video frame and what trapline does with a still: the
full-size RGB frame resized by OpenCV (the model's interpolation, `INTER_LINEAR` for YOLO configs) into the
letterbox (`Preprocessor.prepare`). Three ways to get there from a decoded yuv420p frame, one process, one thread:

- swscale: scaled in swscale's RGB conversion (`ClipReader.frames(size_for=...)`): the clip loop's until 2026-11-27;
- cv2: converted at full size by swscale, then OpenCV's resize (the reference itself): the clip loop's now;
- yuv: the Y, U and V planes resized by OpenCV at their own sizes, then `COLOR_YUV2RGB_I420` at the letterbox size
  (tried, not kept).

On the 16 clips of `benchmarks.clip_counts` (640x480, 10 fps) and on `benchmarks.clips`' two 1080p clips, one frame
a second: milliseconds a frame, the max / mean |difference| of the resized pixels against the reference, and each
frame's detections through `demo-detector:2` against the reference input's (records equal, matched boxes at IoU
>= 0.5 with the same label, max |score difference|).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.clip_counts import FPS, clip_frames
from benchmarks.clip_files import write_clip
from benchmarks.common import DEFAULT_ROOT, print_table
from model_store import ModelStore
from model_store.core.preprocess import interpolation_flag, placement
from model_store.demo.publish import publish_demo


def _size(cfg, w: int, h: int) -> tuple[int, int]:
    p = placement(w, h, cfg.input_size, cfg.preprocess, cfg.stride)
    return p.new_w, p.new_h


def conversions(cfg):
    """name -> (decoded av frame -> RGB at the letterbox's resized size)."""
    from av.video.reformatter import VideoReformatter

    ref = VideoReformatter()
    flag = interpolation_flag(cfg.preprocess.interpolation)
    sws = {"linear": "BILINEAR", "area": "AREA", "nearest": "POINT", "cubic": "BICUBIC"}[cfg.preprocess.interpolation]

    def swscale(f):
        return ref.reformat(f, *_size(cfg, f.width, f.height), format="rgb24", interpolation=sws).to_ndarray()

    def full_cv2(f):
        return cv2.resize(ref.reformat(f, format="rgb24").to_ndarray(), _size(cfg, f.width, f.height),
                          interpolation=flag)

    def yuv(f):
        (w, h), (nw, nh) = (f.width, f.height), _size(cfg, f.width, f.height)
        y, u, v = (np.frombuffer(p, np.uint8).reshape(-1, p.line_size) for p in f.planes)
        out = np.empty((nh * 3 // 2, nw), np.uint8)
        cv2.resize(y[:h, :w], (nw, nh), dst=out[:nh], interpolation=flag)
        out[nh:nh + nh // 4] = cv2.resize(u[:h // 2, :w // 2], (nw // 2, nh // 2), interpolation=flag).reshape(-1, nw)
        out[nh + nh // 4:] = cv2.resize(v[:h // 2, :w // 2], (nw // 2, nh // 2), interpolation=flag).reshape(-1, nw)
        return cv2.cvtColor(out, cv2.COLOR_YUV2RGB_I420)

    return {"swscale": swscale, "cv2": full_cv2, "yuv": yuv}


def sampled(path: str, every: int) -> list:
    import av

    with av.open(path) as c:
        return [f for i, f in enumerate(c.decode(video=0)) if i % every == 0]


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw, ih = max(0.0, min(ax + aw, bx + bw) - max(ax, bx)), max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter) if inter else 0.0


def agreement(got, want) -> tuple[int, int, float]:
    """(matched, unmatched on either side, max |score difference| of the matched) between two frames' kept boxes."""
    free, matched, worst = list(want), 0, 0.0
    for d in got:
        best = max(free, key=lambda w: _iou(d.bbox, w.bbox) if w.label == d.label else -1, default=None)
        if best is not None and best.label == d.label and _iou(d.bbox, best.bbox) >= 0.5:
            free.remove(best)
            matched += 1
            worst = max(worst, abs(d.score - best.score))
    return matched, len(got) - matched + len(free), worst


def measure(detector, clips: dict[str, list]) -> list[dict]:
    cfg = detector.config
    ways = conversions(cfg)
    rows = []
    for set_name, frames in clips.items():
        references = [ways["cv2"](f) for f in frames]
        want = _records(detector, references, frames)
        for name, fn in ways.items():
            for f in frames[:3]:
                fn(f)
            t0 = time.perf_counter()
            images = [fn(f) for f in frames]
            ms = 1000 * (time.perf_counter() - t0) / len(frames)
            diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(images, references, strict=True)]
            got = _records(detector, images, frames)
            agree = [agreement(g.detections, w.detections) for g, w in zip(got, want, strict=True)]
            rows.append({"clips": set_name, "conversion": name, "frames": len(frames), "ms_per_frame": round(ms, 2),
                         "max_diff": int(max(d.max() for d in diffs)),
                         "mean_diff": round(float(np.mean([d.mean() for d in diffs])), 3),
                         "records_equal": sum(g.detections == w.detections for g, w in zip(got, want, strict=True)),
                         "boxes": sum(len(w.detections) for w in want), "matched": sum(a[0] for a in agree),
                         "unmatched": sum(a[1] for a in agree),
                         "max_score_diff": round(max((a[2] for a in agree), default=0.0), 4)})
    return rows


def _records(detector, images: list[np.ndarray], frames: list) -> list:
    prep = detector.preprocessor
    planes = [prep.prepare_planar(img, (f.width, f.height)) for img, f in zip(images, frames, strict=True)]
    out = []
    for i in range(0, len(planes), 8):
        chunk = planes[i:i + 8]
        out += detector.run_planar(np.stack([p for p, _ in chunk]), [m for _, m in chunk])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=str(DEFAULT_ROOT / "clips"), help="benchmarks.clips' clips (made there)")
    p.add_argument("--clips", type=int, default=16, help="clips of benchmarks.clip_counts (seeds 0..N-1)")
    p.add_argument("--ref", default="demo-detector:2")
    p.add_argument("--store", default=None, help="the model's store (default: a new one with the demo's models); "
                   "e.g. the clips benchmark's, for its null model's 640-px input")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            store = ModelStore(args.store)
        else:
            store = ModelStore(str(Path(tmp) / "store"), cache_dir=str(Path(tmp) / "cache"))
            publish_demo(store)
        detector = store.load_detector(args.ref, threads=1)
        counts = [f for seed in range(args.clips) for f in sampled(
            str(write_clip(Path(tmp) / f"c{seed}.mp4", clip_frames(seed, seed % 4), fps=FPS, gop=FPS)), FPS)]
        big = [f for c in sorted(Path(args.dir).glob("set/cam*/clip1080_*.mp4")) for f in sampled(str(c), 30)]
        rows = measure(detector, {"clip_counts 640x480": counts, "1080p": big})
    print(print_table(rows, list(rows[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
