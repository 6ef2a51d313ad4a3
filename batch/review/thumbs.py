"""Thumbnails with boxes drawn on them, read from the image URIs the tables store (local, s3://, or http(s):// for a
source recorded by its URL).

A missing or unreadable image never stops a report: `Thumbnails.render` returns None for it and
records the reason, and the page shows a placeholder and lists it.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from batch.review.defaults import DEFAULT_SIDE
from ground.storage import Storage
from model_store.core.imaging import decode_image_at_least
from model_store.tables.archive import is_web, open_location, read_web
from model_store.tables.roots import relocate

THUMB_DIR = "thumbs"
# Colours that stay distinct on day and IR-night frames; a label keeps its colour across the page.
PALETTE = ["#ffb000", "#00d0ff", "#ff4fd8", "#7dff5a", "#ff5a36", "#b18cff", "#ffffff", "#33ffc4"]


@dataclass(frozen=True)
class DrawBox:
    """One box to draw: normalised [x, y, w, h] from the top-left, a caption and a style."""

    x: float
    y: float
    w: float
    h: float
    caption: str
    color: str
    dashed: bool = False
    mask: tuple[int, int, str] | None = None  # a segmentation model's mask: height, width, COCO RLE counts


def mask_key(mask) -> tuple[int, int, str] | None:
    """A table row's mask (a COCO RLE dict, or null) in the hashable form DrawBox keeps."""
    if not isinstance(mask, dict) or not mask.get("counts"):
        return None
    h, w = (int(v) for v in mask["size"])
    return h, w, str(mask["counts"])


@dataclass(frozen=True)
class ThumbJob:
    uri: str
    boxes: tuple[DrawBox, ...]
    variant: str = ""  # the same image drawn differently (per label, per comparison) gets its own file
    frame: int | None = None  # a clip's sampled frame to draw (its number in the detections table)


@dataclass
class Thumbnails:
    """Renders thumbnails into `out_dir/thumbs/` and remembers which images could not be read."""

    out_dir: Path
    side: int = DEFAULT_SIDE
    workers: int = 8
    failures: dict[str, str] = field(default_factory=dict)  # uri -> reason
    archive: str | None = None  # the archive's root now, when it moved since the run: gone local files are found there
    _stores: dict[str, Storage] = field(default_factory=dict)

    def render_all(self, jobs: Sequence[ThumbJob]) -> dict[ThumbJob, str | None]:
        """Relative path (from the report's index.html) of each job's thumbnail, None if unreadable."""
        (self.out_dir / THUMB_DIR).mkdir(parents=True, exist_ok=True)
        for job in jobs:  # one filesystem object per bucket, made before the threads share it
            if "://" in job.uri and not is_web(job.uri):
                self._store_for(job.uri)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return dict(zip(jobs, pool.map(self.render, jobs), strict=True))

    def render(self, job: ThumbJob) -> str | None:
        name = hashlib.sha1(f"{job.uri}\0{job.variant}\0{job.frame}\0{job.boxes!r}".encode()).hexdigest()[:20] + ".jpg"
        rel = f"{THUMB_DIR}/{name}"
        target = self.out_dir / rel
        if target.exists():
            return rel
        try:
            image = self._load(job.uri) if job.frame is None else self._frame(job.uri, job.frame)
        except Exception as exc:  # noqa: BLE001 - any unreadable image becomes a placeholder, never an abort
            self.failures[job.uri] = f"{type(exc).__name__}: {exc}"
            return None
        draw_boxes(image, job.boxes)
        tmp = target.with_name(f".{name}.tmp")
        image.save(tmp, "JPEG", quality=82)
        os.replace(tmp, target)
        return rel

    def _load(self, uri: str) -> Image.Image:
        if is_web(uri):  # a source recorded by its URL (an Antenna capture: serve/antenna/records.py)
            data = read_web(uri)
        elif "://" in uri:
            store, key = self._store_for(uri)
            data = store.read_bytes(key)
        else:
            with open(self._here(uri), "rb") as f:
                data = f.read()
        side = self.side

        def at_least(w: int, h: int) -> tuple[int, int]:
            scale = min(1.0, side / max(w, h, 1))
            return math.ceil(w * scale), math.ceil(h * scale)

        rgb, _ = decode_image_at_least(data, at_least=at_least)  # JPEGs decode at 1/2..1/8 scale: fast
        image = Image.fromarray(rgb)
        image.thumbnail((side, side))
        return image

    def _frame(self, uri: str, number: int) -> Image.Image:
        """A clip's frame, decoded where the clip lies (a seek and a few frames: model_store/core/video.py)."""
        from model_store.core.video import ClipReader  # late: only reports of clips need FFmpeg's libraries

        if "://" in uri:
            store, _ = self._store_for(uri)
            with store.fs.open(uri, "rb", block_size=4 * 2**20, cache_type="readahead") as f, ClipReader(f) as r:
                return Image.fromarray(r.frame_numbered(number, self.side))
        with ClipReader(self._here(uri)) as r:
            return Image.fromarray(r.frame_numbered(number, self.side))

    def _here(self, path: str) -> str:
        """A local file's path now: as recorded, or, when it is gone and the archive moved, under its new root."""
        if self.archive is None or os.path.exists(path):
            return path
        return relocate(self.archive, path) or path

    def _store_for(self, uri: str) -> tuple[Storage, str]:
        scheme, _, rest = uri.partition("://")
        bucket, _, key = rest.partition("/")
        root = f"{scheme}://{bucket}"
        if root not in self._stores:
            self._stores[root] = open_location(root)
        return self._stores[root], key


def draw_boxes(image: Image.Image, boxes: Sequence[DrawBox]) -> None:
    """Draw boxes (normalised coordinates) with their captions onto `image` in place."""
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    w, h = image.size
    width = max(2, round(min(w, h) / 120))
    for b in boxes:
        x0, y0 = b.x * w, b.y * h
        x1, y1 = (b.x + b.w) * w, (b.y + b.h) * h
        if b.mask is not None:
            _mask_outline(draw, b.mask, (w, h), b.color, max(1, width // 2))
        if b.dashed:
            _dashed_rectangle(draw, (x0, y0, x1, y1), b.color, width)
        else:
            draw.rectangle((x0, y0, x1, y1), outline=b.color, width=width)
        if b.caption:
            tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), b.caption, font=font)
            ty = y0 - (ty1 - ty0) - 4 if y0 > (ty1 - ty0) + 4 else y0 + width
            tx = max(0.0, min(x0, w - (tx1 - tx0) - 4))  # keep the caption inside the picture
            draw.rectangle((tx, ty, tx + (tx1 - tx0) + 4, ty + (ty1 - ty0) + 4), fill=b.color)
            draw.text((tx + 2, ty + 2 - ty0), b.caption, fill="#000000", font=font)


def _mask_outline(draw: ImageDraw.ImageDraw, mask: tuple[int, int, str], size: tuple[int, int], color: str,
                  width: int) -> None:
    """The outline of a mask (COCO RLE in image pixels) drawn on a picture of `size` (width, height)."""
    from model_store.core.masks import outline  # here: only a segmentation model's report has masks to draw

    h, w, counts = mask
    for polygon in outline({"size": [h, w], "counts": counts}, side=max(size)):
        points = [(x * size[0], y * size[1]) for x, y in polygon]
        draw.line([*points, points[0]], fill=color, width=width)


def _dashed_rectangle(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], color: str,
                      width: int, dash: int = 6) -> None:
    x0, y0, x1, y1 = box
    for a, b, horizontal in (((x0, y0), x1, True), ((x0, y1), x1, True), ((x0, y0), y1, False),
                             ((x1, y0), y1, False)):
        start = a[0] if horizontal else a[1]
        pos = start
        while pos < b:
            end = min(pos + dash, b)
            if horizontal:
                draw.line((pos, a[1], end, a[1]), fill=color, width=width)
            else:
                draw.line((a[0], pos, a[0], end), fill=color, width=width)
            pos += 2 * dash


def label_colors(labels: Sequence[str]) -> dict[str, str]:
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
