"""trapline's clip path against Ultralytics' `predict` on the same clip, and what scaling frames in swscale costs and
buys (issue 46; benchmarks/results/NOTES.md section 6).

    flock /tmp/trapline-heavy.lock python -m benchmarks.clip_parity [--out results.json]

The clip and the reference boxes are the fixture of `tests/fixtures/reference/build_clip.py` (1280x720 H.264, 72
frames; Ultralytics' boxes on every frame with the trained `trained_demo_yolov8.onnx`, square 320). Agreement rows
(`tests.fixtures.clip_parity.agreement`: reference boxes >= 0.3, same class, IoU >= 0.5):

- the clip path as it is (`detect_clip`: full-size RGB frames letterboxed by the model's own resize, as a still;
  since 2026-11-27), every 3rd frame and every frame;
- PyAV's full-size RGB frames through the still path (`cv2.resize` INTER_LINEAR, as Ultralytics);
- the clip path before 2026-11-27, swscale scaling each frame to the letterbox size inside its YUV->RGB conversion,
  with each of swscale's filters.

Cost: ms a frame to decode and prepare every frame (decode, convert, letterbox into planes; no model), the old
swscale-scaled way and the exact way (full-size conversion, `cv2.resize` to the letterbox size, padded planes),
720p to 320 (the fixture) and 1080p to 640 (the fixture re-encoded at 1080p, `yolov8n_static.onnx`);
best of `--repeats`.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.common import print_table, write_json
from model_store import ModelStore
from model_store.core.agreement import boxes_of
from model_store.core.clip_sampling import Sampling
from model_store.core.clip_settings import ClipSettings
from model_store.core.clips import detect_clip
from model_store.core.preprocess import INTERPOLATION
from model_store.core.video import ClipReader
from tests.fixtures.clip_parity import REFERENCE, agreement, clip_boxes, clip_path, reference_frames

SWSCALE_FILTERS = ("BILINEAR", "FAST_BILINEAR", "AREA", "BICUBIC", "POINT")


def letterbox_size(config, width: int, height: int) -> tuple[int, int]:
    """The size the old clip path had swscale scale a (width, height) frame to (the letterbox then only padded)."""
    in_w, in_h = config.input_size
    if config.preprocess.letterbox == "stretch":
        return in_w, in_h
    s = min(in_w / width, in_h / height)
    return max(1, round(width * s)), max(1, round(height * s))


def load(store: ModelStore, onnx: str):
    name = Path(onnx).stem.replace("_", "-")
    store.publish(REFERENCE / onnx, name, "1")
    return store.load_detector(f"{name}:1", threads=1)


def row(name: str, agreed) -> dict:
    dx, dy = agreed.mean_shift
    return {"path": name, "frames": agreed.frames, "matched": f"{agreed.matched}/{agreed.reference}",
            "extra": agreed.extras, "dscore max": round(max(agreed.dscores), 3),
            "dscore mean": round(float(np.mean(agreed.dscores)), 4), "corner px max": round(max(agreed.corners), 1),
            "corner px mean": round(float(np.mean(agreed.corners)), 2), "centre shift px": f"({dx:+.2f}, {dy:+.2f})"}


def swscale_records(det, flt: str) -> list[tuple[int, list]]:
    """Every frame scaled by swscale with filter `flt`, padded and run as the clip path does."""
    prep, out = det.preprocessor, []
    with av.open(str(clip_path())) as container:
        frames = list(container.decode(video=0))
    w, h = frames[0].width, frames[0].height
    tw, th = letterbox_size(prep.config, w, h)
    prepared = [prep.prepare_planar(f.reformat(tw, th, format="rgb24", interpolation=flt).to_ndarray(), (w, h))
                for f in frames]
    for i in range(0, len(prepared), 8):
        batch = prepared[i:i + 8]
        out += det.run_planar(np.stack([p for p, _ in batch]), [m for _, m in batch])
    return [(k, boxes_of(r)) for k, r in enumerate(out)]


def agreement_rows(det) -> list[dict]:
    ref = reference_frames()
    rows = []
    for sampling in ("3f", "all"):
        with ClipReader(str(clip_path())) as reader:
            rows.append(row(f"clip path ({sampling})", agreement(clip_boxes(detect_clip(det, reader,
                                                                 ClipSettings(Sampling.parse(sampling)))), ref)))
    with ClipReader(str(clip_path())) as reader:
        frames = list(reader.frames(Sampling.parse("all")))
    records = det.predict_batch([f.rgb for f in frames])
    rows.append(row("full-size frames, still path (exact)",
                    agreement([(f.number, boxes_of(r)) for f, r in zip(frames, records, strict=True)], ref)))
    for flt in SWSCALE_FILTERS:
        rows.append(row(f"swscale {flt} (all)", agreement(swscale_records(det, flt), ref)))
    return rows


def upscaled(src: Path, dst: Path, size: tuple[int, int]) -> Path:
    """The fixture clip re-encoded at `size` (libx264, its frame rate and keyframe interval)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height = size
        stream.pix_fmt, stream.codec_context.gop_size = "yuv420p", 12
        for frame in inp.decode(video=0):
            for packet in stream.encode(frame.reformat(*size, format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


def prepare_ms(prep, clip: Path, exact: bool) -> float:
    """ms a frame to decode and prepare every frame of `clip` (no model)."""
    cfg = prep.config
    with ClipReader(str(clip)) as reader:
        w, h = reader.info.width, reader.info.height
        size = letterbox_size(cfg, w, h)
        t0 = time.perf_counter()
        if exact:
            flag = INTERPOLATION[cfg.preprocess.interpolation]
            for f in reader.frames(Sampling.parse("all")):
                prep.prepare_planar(cv2.resize(f.rgb, size, interpolation=flag), (w, h))
        else:
            scaled = functools.partial(letterbox_size, cfg)
            for f in reader.frames(Sampling.parse("all"), scaled, cfg.preprocess.interpolation):
                prep.prepare_planar(f.rgb, (w, h))
        return (time.perf_counter() - t0) * 1000 / reader.info.frame_count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(str(Path(tmp) / "store"), cache_dir=str(Path(tmp) / "cache"))
        det = load(store, "trained_demo_yolov8.onnx")
        rows = agreement_rows(det)
        print_table(rows, list(rows[0]))
        clip1080 = upscaled(clip_path(), Path(tmp) / "walkers_1080p.mp4", (1920, 1080))
        cost = []
        for label, clip, prep in (("720p -> 320", clip_path(), det.preprocessor),
                                  ("1080p -> 640", clip1080, load(store, "yolov8n_static.onnx").preprocessor)):
            now = min(prepare_ms(prep, clip, False) for _ in range(args.repeats))
            exact = min(prepare_ms(prep, clip, True) for _ in range(args.repeats))
            cost.append({"frames": label, "swscale-scaled ms": round(now, 2), "exact ms": round(exact, 2),
                         "exact / swscale-scaled": round(exact / now, 2)})
        print_table(cost, list(cost[0]))
    if args.out:
        write_json(args.out, {"agreement": rows, "prepare_ms": cost})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
