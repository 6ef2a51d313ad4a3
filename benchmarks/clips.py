"""Video clips: the decoder's ceiling, the whole job against it, the cost per sampled frame against clip length, and
MegaDetector's own frame extraction on the same clips.

`flock /tmp/trapline-heavy.lock python -m benchmarks.clips [--dir DIR] [--out results.json]`

- clips made here (benchmarks/clip_files.py): 2 x 720p and 2 x 1080p, 30 s at 30 fps (H.264, a keyframe a second),
  and 720p at 15 fps, 10 s and 10 minutes long; written once under --dir and reused.
- decode ceiling: sampled frames/s of PyAV alone (model_store.core.video.ClipReader, each frame converted to RGB
  and resized to the null model's letterbox size as the job does it: full size, then OpenCV's resize; and, for
  comparison, scaled in swscale's conversion as the job did until 2026-11-27), 2 processes (the 2 cores), at 1 s
  sampling and every frame; the best of 1 and 2 decoder threads a process (FFmpeg's frame and slice threads).
- trapline: `trapline reprocess` (run_reprocess, local Ray of 2 CPUs: 2 inference actors of 0.875 CPU and the
  writer's 0.25) with the null model (`bench-null:1`, no inference cost, float32 input made on the host; and
  `bench-null-u8:1`, uint8 input as an accelerator that scales the pixels on the device takes it) on the same
  clips: sampled frames/s while the job ran (`processing_s`: from the plan's start, so with the actors' start-up),
  as a ratio of the ceiling; and the same without the job's start-up (a job of one 10 s clip at 1 s, 10 frames).
  A long clip is cut into time ranges in the job (batch.reprocess.clips.CLIP_PARTS) and the ceiling's processes
  decode the same ranges.
- per-clip cost: one clip through the core's clip loop (detect_clip, null model) in a process of its own, 10 s
  against 10 minutes of the same scene: seconds per sampled frame and the process's peak RSS.
- peer: MegaDetector's `megadetector.detection.video_utils.run_callback_on_frames` (OpenCV) with a callback that
  does nothing, in /work/mdenv, 2 processes, the same clips and sampling (every_n_frames=-1: one a second).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.bench_model import ensure_null_model
from benchmarks.clip_files import scene_clip
from benchmarks.common import DEFAULT_ROOT, DEFAULT_STORE, machine_info, print_table, ratio, timed_rss, write_json
from model_store import ModelStore

MD_PYTHON = "/work/mdenv/bin/python"
SAMPLINGS = {"1s": -1.0, "all": None}  # trapline's sampling -> MegaDetector's every_n_frames


def make_clips(root: Path) -> dict[str, list[Path]]:
    mixed = [scene_clip(root / f"set/cam{i}/clip720_{i}.mp4", (1280, 720), 30, 30, animals=1 + i, seed=i)
             for i in range(2)]
    mixed += [scene_clip(root / f"set/cam{i}/clip1080_{i}.mp4", (1920, 1080), 30, 30, animals=2, seed=10 + i)
              for i in range(2)]
    short = scene_clip(root / "length/short/clip10s_21.mp4", (1280, 720), 10, 15, seed=21)
    long = scene_clip(root / "length/long/clip10min.mp4", (1280, 720), 600, 15, seed=21)
    # At one frame a second the set alone is 120 frames, a few seconds of work: the job's start-up (actors, model)
    # would be most of what is measured, so that sampling also takes the 10-minute clip (600 frames more).
    longer = root / "set-1s"
    for clip in [*mixed, long]:
        link = longer / clip.parent.name / clip.name
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.link(clip, link)  # a hard link: the listing does not follow symlinks
    return {"set": mixed, "short": [short], "long": [long], "set-1s": sorted(longer.rglob("*.mp4"))}


def _decode_one(args: tuple[str, str, str, float, float | None, int, str]) -> int:
    from model_store import parse_config
    from model_store.core.clip_sampling import Sampling, TimeRange
    from model_store.core.preprocess import interpolation_flag, placement, resize
    from model_store.core.video import ClipReader

    path, sampling, config_json, start, end, threads, conversion = args
    config = parse_config(config_json)
    cfg = config.preprocess

    def size_for(w: int, h: int) -> tuple[int, int]:
        p = placement(w, h, config.input_size, cfg, config.stride)
        return p.new_w, p.new_h

    with ClipReader(path, threads=threads) as reader:
        span = TimeRange(start, end)
        if conversion == "swscale":  # the job's conversion until 2026-11-27: scaled in swscale's RGB conversion
            return sum(1 for _ in reader.frames(Sampling.parse(sampling), size_for, cfg.interpolation, span))
        flag = interpolation_flag(cfg.interpolation)
        return sum(1 for f in reader.frames(Sampling.parse(sampling), span=span)
                   if resize(f.rgb, *size_for(f.rgb.shape[1], f.rgb.shape[0]), flag) is not None)


def decode_ceiling(clips: list[Path], sampling: str, config_json: str, workers: int = 2,
                   conversion: str = "cv2") -> dict:
    """The best of PyAV alone with 1 and with 2 decoder threads a clip (`decode_alone`)."""
    runs = [{**decode_alone(clips, sampling, config_json, workers, threads, conversion), "threads": threads}
            for threads in (1, 2)]
    print(f"decode ceiling at {sampling} ({conversion}): " + ", ".join(
        f"{r['frames_per_s']} frames/s with {r['threads']} thread(s)" for r in runs))
    return max(runs, key=lambda r: r["frames_per_s"])


def decode_alone(clips: list[Path], sampling: str, config_json: str, workers: int, threads: int,
                 conversion: str = "cv2") -> dict:
    """PyAV alone on `workers` processes, a long clip cut into the time ranges the job cuts it into (so that the
    ceiling is the decoder's with every core busy, not one core on the longest clip). Each frame is converted as
    the job converts it (`conversion` cv2: to RGB at full size, then OpenCV's resize to the letterbox size; swscale:
    scaled in the RGB conversion, the job's way until 2026-11-27)."""
    from batch.reprocess.clips import CLIP_PARTS
    from model_store.core.clip_sampling import Sampling, clip_ranges
    from model_store.core.clips import MIN_RANGE_FRAMES
    from model_store.core.video import probe_clip

    work = [(str(c), sampling, config_json, r.start_s, r.end_s, threads, conversion) for c in clips
            for r in clip_ranges(probe_clip(str(c)), Sampling.parse(sampling), CLIP_PARTS, MIN_RANGE_FRAMES)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        frames = sum(pool.map(_decode_one, work))
    wall = time.perf_counter() - t0
    return {"frames": frames, "wall_s": round(wall, 2), "frames_per_s": round(frames / wall, 1)}


def trapline_job(archive: Path, store: str, ref: str, sampling: str) -> dict:
    from batch.reprocess.job import run_reprocess
    from batch.reprocess.options import ReprocessOptions

    with tempfile.TemporaryDirectory() as out:
        report = run_reprocess(ReprocessOptions(archive=str(archive), out=out, model=ref, store=store,
                                                concurrency=2, num_cpus=0.875, batch_size=1, rows_per_file=1,
                                                read_batch_size=1, video_sampling=sampling, progress_interval_s=60))
    if report.status != "succeeded":
        raise RuntimeError(report.error)
    return {"frames": report.frames_sampled, "processing_s": report.processing_s, "wall_s": report.wall_s,
            "frames_per_s": round(report.frames_sampled / report.processing_s, 1)}


MD_SCRIPT = """
import json, sys, time
from concurrent.futures import ProcessPoolExecutor
from megadetector.detection.video_utils import run_callback_on_frames
def one(args):
    path, every = args
    return len(run_callback_on_frames(path, lambda image, name: None, every_n_frames=every)["frame_filenames"])
if __name__ == "__main__":
    every, paths = json.loads(sys.argv[1]), sys.argv[2:]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        frames = sum(pool.map(one, [(p, every) for p in paths]))
    print(json.dumps({"frames": frames, "wall_s": time.perf_counter() - t0}))
"""


def megadetector_extraction(clips: list[Path], sampling: str) -> dict | None:
    if not Path(MD_PYTHON).exists():
        return None
    out = subprocess.run([MD_PYTHON, "-c", MD_SCRIPT, json.dumps(SAMPLINGS[sampling]), *map(str, clips)],
                         check=True, capture_output=True, text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    return {"frames": got["frames"], "wall_s": round(got["wall_s"], 2),
            "frames_per_s": round(got["frames"] / got["wall_s"], 1)}


def one_clip(path: str, store: str, ref: str, sampling: str) -> None:
    """(in a process of its own) one clip through the core's clip loop; prints frames and seconds as JSON."""
    from model_store.core.clip_sampling import Sampling
    from model_store.core.clip_settings import ClipSettings
    from model_store.core.clips import detect_clip
    from model_store.core.video import ClipReader

    detector = ModelStore(store).load_detector(ref, threads=1)
    detector.warmup()
    t0 = time.perf_counter()
    with ClipReader(path) as reader:
        clip = detect_clip(detector, reader, ClipSettings(Sampling.parse(sampling, max_frames=100_000)))
    print(json.dumps({"frames": len(clip.frames), "seconds": time.perf_counter() - t0, "reason": clip.reason}))


def per_clip_cost(clip: Path, store: str, ref: str, sampling: str) -> dict:
    row = timed_rss([sys.executable, "-m", "benchmarks.clips", "--one", str(clip), "--store", store, "--ref", ref,
                     "--sampling", sampling])
    got = json.loads(row["stdout"].strip().splitlines()[-1])
    return {"clip": clip.name, "sampling": sampling, "frames": got["frames"],
            "ms_per_frame": round(1000 * got["seconds"] / got["frames"], 2), "peak_rss_mib": row["peak_rss_mib"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=str(DEFAULT_ROOT / "clips"), help="where the clips are made (default %(default)s)")
    p.add_argument("--store", default=str(DEFAULT_STORE))
    p.add_argument("--ref", default=None, help="model (default: the null model, bench-null:1)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--sampling", default="1s", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    store = ModelStore(args.store)
    refs = [args.ref] if args.ref else [ensure_null_model(store), ensure_null_model(store, "uint8")]
    ref = refs[0]
    if args.one:
        one_clip(args.one, store.root, ref, args.sampling)
        return 0
    import ray

    from batch.reprocess.detect import config_json

    clips = make_clips(Path(args.dir))
    cfg = config_json(store.get(ref).config)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # The job's fixed cost: Ray Data's plan, the actors' and the writer's processes (imports), the model: a job of
    # one 10 s clip at 1 s (10 frames, ~0.3 s of work) is nearly all of it. Measured beside the first jobs, once
    # Ray's own start-up (its idle workers) is long over, as it is for them.
    startup: dict[str, float] = {}
    rows = []
    for sampling in SAMPLINGS:
        name = "set-1s" if sampling == "1s" else "set"
        ceiling = decode_ceiling(clips[name], sampling, cfg)
        before = decode_ceiling(clips[name], sampling, cfg, conversion="swscale")
        md = megadetector_extraction(clips[name], sampling)
        for model in refs:
            if model not in startup:
                startup[model] = trapline_job(clips["short"][0].parent, store.root, model, "1s")["processing_s"]
            job = trapline_job(Path(args.dir) / name, store.root, model, sampling)
            steady = round(job["frames"] / max(job["processing_s"] - startup[model], 1e-3), 1)
            rows.append({"sampling": sampling, "clips": name, "model": model, "frames": ceiling["frames"],
                         "pyav_fps": ceiling["frames_per_s"], "pyav_threads": ceiling["threads"],
                         "pyav_swscale_fps": before["frames_per_s"],
                         "trapline_fps": job["frames_per_s"], "trapline_frames": job["frames"],
                         "trapline/pyav": ratio(job["frames_per_s"], ceiling["frames_per_s"]),
                         "startup_s": startup[model], "after_startup_fps": steady,
                         "after_startup/pyav": ratio(steady, ceiling["frames_per_s"]),
                         "md_fps": md and md["frames_per_s"], "md_frames": md and md["frames"],
                         "trapline/md": md and ratio(job["frames_per_s"], md["frames_per_s"]),
                         "job_wall_s": job["wall_s"]})
    ray.shutdown()
    print(print_table(rows, list(rows[0])))
    lengths = [per_clip_cost(clips[k][0], store.root, ref, "1s") for k in ("short", "long")]
    print(print_table(lengths, list(lengths[0])))
    result = {"machine": machine_info(), "load": os.getloadavg(), "throughput": rows, "length": lengths}
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
