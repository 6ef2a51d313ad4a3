"""Generated camera-trap-like JPEGs with a fixed seed, written once and reused.

`python -m benchmarks.images --count 64 [--size 1920x1080] [--out DIR]`

Each frame has what makes real trap images expensive to decode and compress poorly: foliage
texture at several scales, sensor grain, trunks, sometimes an animal-like blob, the black
data strip with a timestamp at the bottom, and one in four is a grey infrared night shot.
At 1920x1080 and quality 90 the files come out at about 0.3-0.7 MB, like real ones.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import DEFAULT_IMAGES
from model_store.core.imaging import encode_jpeg

FULL_HD = (1920, 1080)
SMALL = (640, 480)


def _fractal(rng: np.random.Generator, w: int, h: int, octaves: int = 6, base: int = 4) -> np.ndarray:
    """Multi-scale value noise in about -1..1 (coarse blobs plus fine leaf texture)."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        gw, gh = max(2, base * 2**k * w // max(w, h)), max(2, base * 2**k * h // max(w, h))
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.62
    return out / total


def camera_trap_frame(index: int, size: tuple[int, int] = FULL_HD, seed: int = 0) -> np.ndarray:
    """One RGB uint8 frame; the same (index, size, seed) always gives the same pixels."""
    w, h = size
    rng = np.random.default_rng([seed, index, w, h])
    night = index % 4 == 3
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    horizon = rng.uniform(0.15, 0.45)
    tex = _fractal(rng, w, h)
    fine = _fractal(rng, w, h, octaves=3, base=64)
    if night:
        base = 0.25 + 0.25 * (y > horizon) + 0.18 * tex + 0.10 * fine
        rgb = np.repeat(base[..., None], 3, axis=2)
    else:
        sky = np.stack([0.55 + 0.2 * y, 0.65 + 0.15 * y, 0.85 + 0.0 * y], -1) * np.ones((h, w, 1), np.float32)
        leaf = np.stack([0.25 + 0.25 * tex, 0.35 + 0.30 * tex, 0.15 + 0.15 * tex], -1) + 0.12 * fine[..., None]
        mask = (y > horizon + 0.05 * tex).astype(np.float32)[..., None]
        rgb = sky * (1 - mask) + leaf * mask
    img = np.clip(rgb * 255, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(1, 5))):  # tree trunks
        x0, tw = int(rng.integers(0, w)), int(rng.integers(w // 60, w // 15))
        shade = int(rng.integers(40, 110))
        cv2.rectangle(img, (x0, 0), (x0 + tw, h), (shade, shade - 10, max(0, shade - 25)), -1)
    if rng.random() < 0.6:  # an animal-like body
        cx, cy = int(rng.integers(w // 6, 5 * w // 6)), int(rng.integers(h // 2, 5 * h // 6))
        ax, ay = int(rng.integers(w // 20, w // 6)), int(rng.integers(h // 20, h // 8))
        fur = tuple(int(c) for c in rng.integers(60, 160, 3))
        cv2.ellipse(img, (cx, cy), (ax, ay), float(rng.uniform(-20, 20)), 0, 360, fur, -1)
    grain = rng.normal(0, 7 if night else 5, (h, w, 1 if night else 3)).astype(np.float32)
    img = np.clip(img.astype(np.float32) + grain, 0, 255).astype(np.uint8)
    if night:
        img = np.repeat(img[..., :1], 3, axis=2) if img.shape[2] == 3 else img
    strip = max(12, h // 27)  # the data strip camera traps burn into every frame
    img[h - strip:] = 0
    stamp = f"CAM{index % 7:02d}  2024-05-{1 + index % 28:02d} {index % 24:02d}:{index * 7 % 60:02d}  {12 + index % 9}C"
    cv2.putText(img, stamp, (strip // 2, h - strip // 4), cv2.FONT_HERSHEY_SIMPLEX, strip / 36, (255, 255, 255),
                max(1, strip // 20), cv2.LINE_AA)
    return img


def image_dir(root: str | Path, size: tuple[int, int], quality: int, seed: int) -> Path:
    return Path(root) / f"{size[0]}x{size[1]}-q{quality}-s{seed}"


def ensure_images(count: int, size: tuple[int, int] = FULL_HD, quality: int = 90, seed: int = 0,
                  root: str | Path = DEFAULT_IMAGES, workers: int = 1) -> list[Path]:
    """Paths of `count` generated JPEGs, writing only the ones not on disk yet (in `workers` processes)."""
    out = image_dir(root, size, quality, seed)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"frame_{i:05d}.jpg" for i in range(count)]
    todo = [(paths[i], i, size, quality, seed) for i in range(count) if not paths[i].exists()]
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=mp.get_context("spawn")) as pool:
            list(pool.map(_write_frame, todo, chunksize=4))
    else:
        for item in todo:
            _write_frame(item)
    return paths


def _write_frame(item: tuple[Path, int, tuple[int, int], int, int]) -> None:
    path, index, size, quality, seed = item
    data = encode_jpeg(camera_trap_frame(index, size, seed), quality)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a run killed half-way never leaves a truncated "cached" image


def load_bytes(paths: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in paths]


def make_archive(images: list[Path], dest: str | Path, count: int, cameras: int = 8) -> Path:
    """An archive of `count` files under `dest/<camera>/<name>.jpg`, hard-linking (or copying) the
    generated images in rotation, so a 10x larger archive costs no extra disk."""
    dest = Path(dest)
    for i in range(count):
        target = dest / f"CAM{i % cameras:02d}" / f"IMG_{i:06d}.jpg"
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = images[i % len(images)]
        try:
            os.link(source, target)
        except OSError:
            target.write_bytes(source.read_bytes())
    return dest


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT (default %(default)s; small set: 640x480)")
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(DEFAULT_IMAGES))
    args = parser.parse_args(argv)
    paths = ensure_images(args.count, parse_size(args.size), args.quality, args.seed, args.out)
    sizes = np.array([p.stat().st_size for p in paths]) / 1e6
    print(f"{len(paths)} images in {paths[0].parent}: {sizes.min():.2f}-{sizes.max():.2f} MB, "
          f"mean {sizes.mean():.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
